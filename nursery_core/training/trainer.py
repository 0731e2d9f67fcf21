"""Nursery's LoRA trainer: one plain PyTorch loop from a TrainConfig and a job directory to a saved adapter.

Why not HF Trainer: the speed on a 2-core CPU comes from never touching padding and never projecting prompt
positions onto the vocabulary. Batches are length-grouped and padded per batch, and the loss runs the LM head
only on the assistant positions (the ones with labels), which is exact and skips most of the largest matmul
and the softmax over the vocabulary.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidConfig, InvalidInput
from ..jobs import events
from . import distributed, packing
from .config import TrainConfig

log = logging.getLogger("nursery.train")
MID_RUN_EVAL_EXAMPLES = 32  # eval-loss checkpoints during a run score at most this many eval examples
Emit = Callable[[dict], None]


def _ts() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cpu_count() -> int:
    """Torch threads for this process: physical cores it may run on (a second hyper-thread on a core only
    competes for the same vector units in these matmul-bound loops), at least 1."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text()
        except OSError:
            return max(1, len(allowed))
        cores.add(siblings.strip())
    return max(1, len(cores))


# ------------------------------------------------------------------------------------------- data
def read_jsonl(path: Path) -> list[dict]:
    """Canonical examples from a JSONL file; a broken line is reported with its file and line."""
    out: list[dict] = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInput(f"not valid JSON ({e.msg})", file=str(path), line=i) from None
            if not isinstance(ex, dict) or not isinstance(ex.get("messages"), list):
                raise InvalidInput("an example needs a 'messages' list", file=str(path), line=i, field="messages")
            out.append(ex)
    return out


def split_examples(config: TrainConfig, job_dir: Path) -> tuple[list[dict], list[dict]]:
    """(train, eval): the eval file when there is one, else eval_fraction split off by the seed."""
    train = read_jsonl(job_dir / config.dataset_file)
    if not train:
        raise InvalidInput("no training examples", file=str(job_dir / config.dataset_file))
    evals = read_jsonl(job_dir / config.eval_file) if config.eval_file else []
    if not evals and config.eval_fraction > 0 and len(train) >= 10:
        rng = random.Random(config.seed)
        idx = list(range(len(train)))
        rng.shuffle(idx)
        k = max(1, int(len(train) * config.eval_fraction))
        held = set(idx[:k])
        evals = [train[i] for i in sorted(held)]
        train = [ex for i, ex in enumerate(train) if i not in held]
    return train, evals


def encode_all(tokenizer, examples: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Encoded examples that keep at least one label token, and how many were dropped."""
    from .rendering import encode_example

    kept, dropped = [], 0
    for ex in examples:
        enc = encode_example(tokenizer, ex, max_length)
        if any(t != -100 for t in enc["labels"]):
            kept.append(enc)
        else:
            dropped += 1
    return kept, dropped


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
    """Micro-batches of example indices for one epoch: shuffled by seed; with grouping, each batch holds
    examples of similar length (sorted inside mega-buckets of 16 batches) and the batch order is shuffled."""
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if not group_by_length:
        return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    mega = batch_size * 16
    batches = []
    for m in range(0, len(idx), mega):
        chunk = sorted(idx[m:m + mega], key=lambda k: lengths[k], reverse=True)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(encoded: list[dict], pad_id: int, device):
    """Pads one batch to its own longest example (right padding); returns tensors on the device."""
    import torch

    width = max(len(e["input_ids"]) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def decision_weights(encoded: list[dict], width: int, weight: float, device):
    """Per-position loss weights for one collated batch, shape (batch, width): `weight` at each trained turn's
    first token (the call-or-answer decision, see rendering.encode_example), 1 elsewhere; None when weight is 1.

    One token in ~40 of an answer decides whether the model calls at all, so with plain token-mean loss a
    wrong decision costs as little as one wrong quote mark; weighting it is the decision-token lever measured
    in bench/QUALITY.md (session 6)."""
    import torch

    if weight == 1.0:
        return None
    w = torch.ones((len(encoded), width), dtype=torch.float32)
    for row, e in enumerate(encoded):
        for pos in e.get("decisions") or []:
            if pos < width:
                w[row, pos] = weight
    return w.to(device)


# ------------------------------------------------------------------------------------------ model
@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware tiles (Intel AMX, the `amx_bf16` flag Linux lists
    in /proc/cpuinfo). False where the file is missing or unreadable (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in fh)
    except OSError:
        return False


def resolve_device(config: TrainConfig):
    """(device, autocast dtype or None, load dtype). On a CPU the weights load in fp32. There `auto` autocasts
    to bf16 when the CPU has AMX (`cpu_has_amx`): with shared-prefix packing the step is matrix-multiply bound,
    and bench/cpu_precision.py measured 1.75x the fp32 tokens/s on an idle AMX CPU (session 9; session 5's
    0.89x was before packing, on a machine loaded 4-8). Without AMX `auto` stays fp32 and bf16 is opt-in
    (`dtype=bfloat16`); `float32` forces fp32. On CUDA, bf16 (else fp16) autocast. Raises InvalidConfig for
    cuda without a GPU."""
    import torch

    want = config.device
    if want == "cuda" and not torch.cuda.is_available():
        raise InvalidConfig("device cuda was asked for but no CUDA GPU is available")
    device = "cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu"
    if device == "cpu":
        if config.dtype == "bfloat16" or (config.dtype == "auto" and cpu_has_amx()):
            return torch.device("cpu"), torch.bfloat16, torch.float32
        return torch.device("cpu"), None, torch.float32
    if config.dtype == "float32":
        return torch.device("cuda"), None, torch.float32
    if config.dtype == "float16" or (config.dtype == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.device("cuda"), torch.float16, torch.float16
    return torch.device("cuda"), torch.bfloat16, torch.bfloat16


def load_tokenizer(config: TrainConfig):
    """(tool-ready tokenizer, chat family, source dir or hub id): exactly what training renders and labels with
    (the rendered-prompt view uses it too, so it shows what the trainer sees)."""
    from transformers import AutoTokenizer

    from ..base_models import REGISTRY, ensure_local, family_of_template, resolve
    from .rendering import prepare_tokenizer

    src = config.base_model_dir or str(ensure_local(config.base_model))
    tok = AutoTokenizer.from_pretrained(src)
    try:
        spec = resolve(config.base_model)
        family = spec.family if spec.alias in REGISTRY and not spec.local_dir else family_of_template(
            tok.chat_template)
    except Exception:  # noqa: BLE001 — a base the registry cannot resolve (hub id, bare directory): its template decides
        family = family_of_template(tok.chat_template)
    prepare_tokenizer(tok, family)
    return tok, family, src


def load_model_and_tokenizer(config: TrainConfig, load_dtype):
    """The base model and its tool-ready tokenizer from base_model_dir (a local dir or a hub id)."""
    from transformers import AutoModelForCausalLM

    tok, family, src = load_tokenizer(config)
    try:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=load_dtype, attn_implementation="sdpa")
    except (ValueError, ImportError):  # an architecture without SDPA support
        model = AutoModelForCausalLM.from_pretrained(src, dtype=load_dtype)
    model.config.use_cache = False
    return model, tok, family


def add_lora(model, config: TrainConfig):
    """Wraps the model with LoRA on the configured modules that exist in it (a clear error if none do)."""
    from peft import get_peft_model

    lcfg, targets = lora_config(model, config)
    return get_peft_model(model, lcfg), targets


def lora_config(model, config: TrainConfig):
    """(peft LoraConfig, target module names) for this model: the run's LoRA shape, also handed to other
    trainers by bench/vs_trl.py so both train the same adapter."""
    import torch
    from peft import LoraConfig

    linear_names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    targets = [t for t in config.target_modules if t in linear_names]
    if not targets:
        raise InvalidConfig(f"none of target_modules {config.target_modules} exist in this model; its linear "
                            f"layers are: {', '.join(sorted(linear_names))}")
    missing = sorted(set(config.target_modules) - set(targets))
    if missing:
        log.info("target modules not in this model (skipped): %s", ", ".join(missing))
    layer_kw: dict[str, Any] = {}
    if config.lora_layers:
        n_layers, pattern = _decoder_layers(model)
        if n_layers:
            top = min(config.lora_layers, n_layers)
            layer_kw = {"layers_to_transform": list(range(n_layers - top, n_layers)), "layers_pattern": pattern}
        else:
            log.info("lora_layers ignored: no numbered transformer layer list found in this model")
    lcfg = LoraConfig(r=config.r, lora_alpha=config.alpha,  # type: ignore[arg-type]  # peft annotates an int; it scales by any number
                      lora_dropout=config.dropout, target_modules=targets,
                      bias="none", task_type="CAUSAL_LM", **layer_kw)
    return lcfg, targets


def _decoder_layers(model) -> tuple[int, str | None]:
    """(number of transformer blocks, the name of their ModuleList, e.g. "layers" or "h"); (0, None) if none."""
    import torch

    best = (0, None)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > best[0]:
            best = (len(mod), name.rsplit(".", 1)[-1])
    return best


class LossFn:
    """Sum of token losses over the label positions only; the LM head sees just those hidden states."""

    def __init__(self, peft_model, trunk=None):
        causal = peft_model.get_base_model()
        self.trunk = trunk  # a TrunkCache, or None
        self.peft_model = peft_model
        self.decoder = getattr(causal, "get_decoder", lambda: None)()
        self.head = causal.get_output_embeddings()
        # Models that post-process logits (soft-capping, scaling) take the plain path to stay exact.
        cfg = causal.config
        self.fast = (self.decoder is not None and self.head is not None
                     and not getattr(cfg, "final_logit_softcapping", None)
                     and getattr(cfg, "logit_scale", None) in (None, 1, 1.0))

    def __call__(self, ids, mask, labels, keys: list | None = None, weights=None, position_ids=None,
                 lengths: list[int] | None = None):
        """keys name the batch's rows for the trunk cache (None: no caching); weights (batch, T) scale each
        label position's loss (decision_weights; None: all 1). mask is the 2-D padding mask collate builds, or a
        packed batch's 4-D block mask (packing.collate_rows) with its position_ids and real row lengths.
        Returns (weighted loss sum, label tokens)."""
        import torch.nn.functional as F

        packed = mask is not None and mask.dim() == 4
        cached = self.fast and self.trunk is not None and keys is not None and mask is not None
        if cached and not packed:
            lengths = mask.sum(dim=1).tolist()  # real tokens per row, for the cache

        # Right padding (what collate builds) sits after every real token, so causal attention never lets a
        # real position see it: the mask changes nothing the loss reads. Dropping it lets SDPA take its fused
        # causal kernel instead of materialising a (batch, heads, T, T) masked score matrix per layer.
        if not packed and mask is not None and bool((mask[:, :-1] >= mask[:, 1:]).all()):
            mask = None
        shift = labels[:, 1:]
        sel = shift != -100
        n = int(sel.sum())
        if self.fast:
            hidden = (self.trunk.hidden(ids, keys, lengths, mask, position_ids) if cached and (packed or mask is None)
                      else self.decoder(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                                        use_cache=False)[0])
            logits = self.head(hidden[:, :-1][sel]).float()
        else:
            logits = self.peft_model(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                                     use_cache=False).logits[:, :-1][sel]
            logits = logits.float()
        if weights is None:
            return F.cross_entropy(logits, shift[sel], reduction="sum"), n
        per_token = F.cross_entropy(logits, shift[sel], reduction="none")
        return (per_token * weights[:, 1:][sel]).sum(), n


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = int(round(config.warmup_ratio * total_steps))

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / (warm + 1)
        if config.scheduler == "constant":
            return 1.0
        progress = (step - warm) / max(1, total_steps - warm)
        if config.scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return f


# ------------------------------------------------------------------------------------------- loop
class Stopped(Exception):
    """Raised inside the loop when a stop was requested; the adapter so far is saved first."""


def train(config: TrainConfig, job_dir: Path | str, emit: Emit = lambda e: None,
          should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Trains and saves the adapter to job_dir/output_dir; returns the metrics (with "stopped": True when a
    stop was requested, in which case the adapter so far is saved)."""
    config.validate()
    rank = distributed.Rank.from_env()
    if not rank.is_main:
        emit = lambda e: None  # noqa: E731 — rank 0 alone reports
    run = _Run(config, Path(job_dir), emit, should_stop, rank)
    run.setup()
    stopped = run.loop()
    if not rank.is_main:  # rank 0 scores and saves; the others are done
        distributed.finish()
        return {"final_loss": None if math.isnan(run.loss_val) else run.loss_val, "steps": run.step,
                "stopped": stopped, "rank": rank.rank, "world_size": rank.world_size}
    eval_loss = None if stopped else run.final_eval()
    metrics = run.metrics(stopped, eval_loss)
    save_outputs(run.model, run.tok, config, metrics, run.job_dir / config.output_dir)
    distributed.finish()
    return metrics


class _Run:
    """One training run's state (model with its adapter, encoded data, optimiser, counters), in the order the
    run uses it: setup (device, data, model, optimiser), loop (optimiser steps, mid-run evals), final_eval,
    metrics."""

    def __init__(self, config: TrainConfig, job_dir: Path, emit: Emit, should_stop: Callable[[], bool],
                 rank: distributed.Rank | None = None):
        self.config, self.job_dir, self.emit, self.should_stop = config, job_dir, emit, should_stop
        self.rank = rank or distributed.Rank.from_env()
        self.history: list[dict] = []
        self.eval_history: list[dict] = []
        self.step, self.epoch, self.real_tokens, self.computed_tokens, self.examples_seen = 0, 0, 0, 0, 0
        self.loss_val = float("nan")
        self.eval_seconds = 0.0
        self.started = 0.0
        self.train_seconds = 0.0

    # ------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Seeds, device, data (encoded, masked), base model + LoRA, optimiser and schedule; emits `start`."""
        import torch

        config, rank = self.config, self.rank
        # Processes sharing a CPU split its cores between them.
        torch.set_num_threads(config.num_threads or max(1, cpu_count() // rank.world_size))
        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.device, self.amp_dtype, load_dtype = resolve_device(config)
        if rank.distributed:
            self.device = distributed.init(rank, self.device.type)
        train_ex, eval_ex = split_examples(config, self.job_dir)
        if self.stop_agreed():
            raise Stopped()
        model, self.tok, self.family = load_model_and_tokenizer(config, load_dtype)
        self.train_enc, dropped = encode_all(self.tok, train_ex, config.max_length)
        self.eval_enc, _ = encode_all(self.tok, eval_ex, config.max_length)
        if dropped:
            self.emit({"kind": events.LOG, "message": f"{dropped} example(s) had no assistant tokens within "
                                                      f"max_length={config.max_length} and were skipped"})
        if not self.train_enc:
            raise InvalidConfig(f"no example keeps an assistant answer within max_length={config.max_length}; "
                                "raise max_length")
        self.model, targets = add_lora(model, config)
        self.model.to(self.device)
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.n_trainable = sum(p.numel() for p in self.trainable)
        from .trunk_cache import TrunkCache

        # One optimizer step takes grad_accum micro-batches on each of the world_size processes.
        self.micro_per_step = config.grad_accum * rank.world_size
        passes = (config.max_steps * self.micro_per_step * config.batch_size / len(self.train_enc)
                  if config.max_steps else config.epochs)
        self.trunk = TrunkCache.build(self.model, config.lora_layers, self.device) if passes > 1 else None
        self.loss_fn = LossFn(self.model, self.trunk)
        self.step_fn: Any = _data_parallel(self.model, self.loss_fn, self.device) if rank.distributed else self.loss_fn
        self.lengths = [len(e["input_ids"]) for e in self.train_enc]
        # With share_prefix the micro-batches are fixed for the run (examples sharing a prompt prefix together,
        # packing.make_units) and only their order changes per epoch; otherwise they are drawn per epoch.
        self.units = (packing.make_units(self.train_enc, config.batch_size, config.seed) if config.share_prefix
                      else None)
        # each unit's packed rows, built once: units do not change during the run
        self.packed = ({tuple(u): packing.pack_unit(self.train_enc, u) for u in self.units}
                       if self.units is not None else {})
        micro_per_epoch = (len(self.units) if self.units is not None
                           else math.ceil(len(self.train_enc) / config.batch_size))
        self.steps_per_epoch = math.ceil(micro_per_epoch / self.micro_per_step)
        self.total_steps = config.max_steps or max(1, math.ceil(self.steps_per_epoch * config.epochs))
        self.eval_every = config.eval_every or min(self.steps_per_epoch, max(1, math.ceil(self.total_steps / 2)))
        self.opt = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=config.weight_decay,
                                     foreach=True)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(config, self.total_steps))
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype is torch.float16 else None
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        # Checkpoints during the run score a fixed, evenly spread sample; the end of the run scores every example.
        n_eval = len(self.eval_enc)
        self.eval_sample = list(range(n_eval))[::max(1, math.ceil(n_eval / MID_RUN_EVAL_EXAMPLES))]
        device = self.device
        where = (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda"
                 else f" ({torch.get_num_threads()} threads)")
        self.emit({"kind": events.START, "total_steps": self.total_steps, "device": str(device) + where,
            "num_examples": len(self.train_enc), "num_eval_examples": n_eval, "trainable_params": self.n_trainable,
            "target_modules": targets, "family": self.family, "world_size": rank.world_size, "ts": _ts()})

    def stop_agreed(self) -> bool:
        """Whether any process was asked to stop (every process must take the same branch)."""
        flag = 1.0 if self.should_stop() else 0.0
        if self.rank.distributed:
            flag = distributed.all_sum([flag], self.device)[0]
        return flag > 0

    def autocast(self):
        import torch

        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------------------------- eval
    def evaluate(self, final: bool = False) -> float | None:
        """Token-mean loss on the eval split (the fixed sample mid-run, every example when final)."""
        import torch

        if not self.eval_enc:
            return None
        t0 = time.perf_counter()
        self.model.eval()
        total, count = 0.0, 0
        eval_enc, bs = self.eval_enc, self.config.batch_size
        with torch.inference_mode():
            order = sorted(range(len(eval_enc)) if final else self.eval_sample,
                           key=lambda i: len(eval_enc[i]["input_ids"]))
            for b in range(0, len(order), bs):
                chunk = order[b:b + bs]
                ids, mask, labels = collate([eval_enc[i] for i in chunk], self.pad_id, self.device)
                with self.autocast():
                    s, n = self.loss_fn(ids, mask, labels, [f"e{i}" for i in chunk])
                total, count = total + float(s), count + n
        self.model.train()
        self.eval_seconds += time.perf_counter() - t0
        return total / max(1, count)

    def final_eval(self) -> float | None:
        eval_loss = self.evaluate(final=True)
        if eval_loss is not None:
            self.eval_history.append({"step": self.step, "eval_loss": eval_loss})
            self.emit({"kind": events.EVAL, "step": self.step, "eval_loss": round(eval_loss, 6), "ts": _ts()})
        return eval_loss

    # ------------------------------------------------------------------------------------- loop
    def loop(self) -> bool:
        """Optimiser steps until total_steps (progress and mid-run eval events); True when stopped early."""
        self.started = time.perf_counter()
        try:
            while self.step < self.total_steps:
                batches = self.epoch_batches()
                for g in range(0, len(batches), self.micro_per_step):
                    if self.step >= self.total_steps:
                        break
                    self.optimiser_step(batches[g:g + self.micro_per_step])
                    if self.stop_agreed():
                        raise Stopped()
                self.epoch += 1
        except Stopped:
            return True
        finally:
            self.train_seconds = time.perf_counter() - self.started - self.eval_seconds
        return False

    def epoch_batches(self) -> list[list[int]]:
        """This epoch's micro-batches (lists of training-example indices) in order."""
        if self.units is None:
            return batch_order(self.lengths, self.config.batch_size, self.config.seed, self.epoch,
                               self.config.group_by_length)
        order = list(range(len(self.units)))
        random.Random(self.config.seed * 1_000_003 + self.epoch).shuffle(order)
        return [self.units[u] for u in order]

    def micro_batch(self, b: list[int]) -> tuple[tuple, int]:
        """(the loss function's arguments for micro-batch b, tokens its forward pass runs): plain rows padded
        per batch, or with share_prefix its packed rows (one per shared prefix, packing.pack_unit)."""
        rows = [self.train_enc[i] for i in b]
        if self.units is None:
            ids, mask, labels = collate(rows, self.pad_id, self.device)
            weights = decision_weights(rows, ids.shape[1], self.config.decision_weight, self.device)
            return (ids, mask, labels, [f"t{i}" for i in b], weights), sum(len(r["input_ids"]) for r in rows)
        packed = self.packed[tuple(b)]
        ids, mask, labels, pos, weights = packing.collate_rows(packed, self.pad_id, self.device,
                                                               self.config.decision_weight)
        lengths = [len(r.input_ids) for r in packed]
        keys = ["t" + "+".join(map(str, r.members)) for r in packed]
        return (ids, mask, labels, keys, weights, pos, lengths), sum(lengths)

    def optimiser_step(self, group: list[list[int]]) -> None:
        """One accumulated step over a group of micro-batches (token-mean loss over the whole group), the group
        shared out across the data-parallel processes."""
        import torch

        train_enc, opt, scaler, rank = self.train_enc, self.opt, self.scaler, self.rank
        # every process sees the whole step's batches, so it knows the global label count unasked
        group_labels = sum(sum(1 for t in train_enc[i]["labels"][1:] if t != -100) for b in group for i in b)
        mine = group[rank.rank::rank.world_size]
        work = mine or group[:1]  # a process with no batch left still joins the all-reduce
        step_loss, step_tokens, step_computed, step_examples = 0.0, 0.0, 0.0, 0.0
        for k, b in enumerate(work):
            if not rank.distributed and self.should_stop():
                raise Stopped()
            args, computed = self.micro_batch(b)
            # gradients are all-reduced once per step, at the last micro-batch
            sync = (contextlib.nullcontext() if not rank.distributed or k == len(work) - 1
                    else self.step_fn.no_sync())
            with sync:
                with self.autocast():
                    s, n = self.step_fn(*args)
                # DDP averages gradients over the processes; scaling by world_size makes that average the
                # token-mean over the whole global step, what one process would compute. A stand-in batch (no
                # batch of its own left) adds a zero gradient.
                loss = s * rank.world_size / max(1, group_labels) if mine else s * 0.0
                (scaler.scale(loss) if scaler else loss).backward()
            if mine:
                step_loss += float(s.detach())
                step_tokens += sum(len(train_enc[i]["input_ids"]) for i in b)
                step_computed += computed
                step_examples += len(b)
        if rank.distributed:
            step_loss, step_tokens, step_computed, step_examples = distributed.all_sum(
                [step_loss, step_tokens, step_computed, step_examples], self.device)
        self.real_tokens += int(step_tokens)
        self.computed_tokens += int(step_computed)
        self.examples_seen += int(step_examples)
        if scaler:
            scaler.unscale_(opt)
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        lr = self.sched.get_last_lr()[0]
        self.sched.step()
        opt.zero_grad(set_to_none=True)
        self.step += 1
        step, total = self.step, self.total_steps
        self.loss_val = step_loss / max(1, group_labels)
        elapsed = time.perf_counter() - self.started - self.eval_seconds
        self.history.append({"step": step, "loss": self.loss_val})
        self.emit({"kind": events.PROGRESS, "step": step, "total_steps": total, "loss": round(self.loss_val, 6),
                   "lr": lr, "tokens_per_s": round(self.real_tokens / max(elapsed, 1e-9), 2),
                   "eta_s": round(elapsed / step * (total - step), 2),
                   "epoch": round(step / self.steps_per_epoch, 4), "ts": _ts()})
        if step % self.eval_every == 0 and step < total and rank.is_main:
            ev = self.evaluate()
            if ev is not None:
                self.eval_history.append({"step": step, "eval_loss": ev})
                self.emit({"kind": events.EVAL, "step": step, "eval_loss": round(ev, 6), "ts": _ts()})

    # ---------------------------------------------------------------------------------- metrics
    def metrics(self, stopped: bool, eval_loss: float | None) -> dict:
        """metrics.json's content: losses, steps, seconds (training excludes eval time), tokens/s, device."""
        import torch

        train_seconds = self.train_seconds
        trunk = self.trunk
        return {
            "final_loss": None if math.isnan(self.loss_val) else self.loss_val, "eval_loss": eval_loss,
            "steps": self.step, "total_steps": self.total_steps, "epochs": round(self.step / self.steps_per_epoch, 4),
            "num_examples": len(self.train_enc), "num_eval_examples": len(self.eval_enc),
            "train_seconds": round(train_seconds, 3), "eval_seconds": round(self.eval_seconds, 3),
            "real_tokens": self.real_tokens, "tokens_per_s": round(self.real_tokens / max(train_seconds, 1e-9), 2),
            "computed_tokens": self.computed_tokens,
            "examples_per_s": round(self.examples_seen / max(train_seconds, 1e-9), 3),
            "trainable_params": self.n_trainable, "device": str(self.device), "threads": torch.get_num_threads(),
            "world_size": self.rank.world_size, "history": self.history, "eval_history": self.eval_history, "stopped": stopped, "family": self.family,
            "trunk_cache": None if trunk is None else {
                "frozen_layers": trunk.split, "cached_rows": len(trunk.store), "bytes": trunk.used,
                "hits": trunk.hits, "misses": trunk.misses},
        }


def _data_parallel(model, loss_fn: LossFn, device):
    """The loss as a DistributedDataParallel module: DDP all-reduces the LoRA gradients during backward, which it
    does only for forwards that went through its own wrapper (the frozen base has no gradients to sync)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    class LossModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model  # registers the parameters DDP syncs

        def forward(self, ids, mask, labels, keys=None, weights=None, position_ids=None, lengths=None):
            return loss_fn(ids, mask, labels, keys, weights, position_ids, lengths)

    return DistributedDataParallel(LossModule(), device_ids=[device.index] if device.type == "cuda" else None)


def save_outputs(model, tok, config: TrainConfig, metrics: dict, out_dir: Path) -> None:
    """adapter_config.json + adapter_model.safetensors, tokenizer (with the tool template), run config and
    metrics. The run config is `training_config.json`, not config.json, so loaders never mistake the
    adapter directory for a full model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The base is recorded by Nursery's alias/path (resolved by base_models.load_base), not the job-local dir.
    for pc in model.peft_config.values():
        pc.base_model_name_or_path = config.base_model
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    config.save(out_dir / "training_config.json")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
