"""TrainConfig: the single source of truth for a training run, saved as config.json next to its outputs."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence, get_type_hints

from ..errors import InvalidConfig
from ..options import Option, options_of

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SCHEDULERS = ("cosine", "linear", "constant")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def _f(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field carrying its help text (and bounds) for the UI form and the CLI."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    """Every knob of a LoRA run. Paths in a job's config.json are relative to the job directory.

    The defaults are the recipe bench/quality.py measured best for the embedded SmolLM2-135M on a 2-core CPU
    (bench/QUALITY.md): LoRA r16 on every linear layer of the top 12 blocks, no dropout, lr 2e-3, 3 epochs,
    micro-batches of 8 sharing their tool prompt, no accumulation, practice examples half as many again as the
    training split, bf16 autocast on a CPU with AMX. On a GPU, lora_layers=0 (every block) costs little more."""

    base_model: str = _f("smollm2-135m", "base model alias (see list-models) or a local HF model directory",
                         group="model")
    base_model_dir: str = _f("", "local directory (or hub id) the worker loads the base from", group="paths")
    dataset_file: str = _f("data/train.jsonl", "canonical JSONL with the training examples", group="paths")
    eval_file: str = _f("data/eval.jsonl", "canonical JSONL with the eval examples ('' = split off "
                        "eval_fraction of the training file)", group="paths")
    output_dir: str = _f("output", "where the adapter, tokenizer, config and metrics are written", group="paths")
    # LoRA shape
    r: int = _f(16, "LoRA rank", min=1, max=1024, group="lora", label="LoRA r",
                  cli=("--lora-r",))
    alpha: float = _f(32.0, "LoRA alpha (scale = alpha / r)", min=0.0, max=4096.0, group="lora",
                      min_exclusive=True, label="LoRA alpha", cli=("--lora-alpha",))
    dropout: float = _f(0.0, "LoRA dropout (default 0: on a CPU its random masks cost a quarter of each step)",
                        min=0.0, max=0.9, group="lora", label="LoRA dropout", step=0.05)
    target_modules: list[str] = _f(ALL_LINEAR, "module names that get LoRA adapters (all linear layers "
                                   "by default)", group="lora")
    lora_layers: int = _f(12, "LoRA only on the top N transformer layers (0 = all); backward then stops at the "
                          "lowest adapted layer, and on a CPU the frozen layers below run once per example rather "
                          "than once per epoch, so fewer layers train faster", min=0, max=1024, group="lora",
                          label="LoRA on top N blocks (0 = all)")
    # optimisation
    learning_rate: float = _f(2e-3, "peak learning rate (AdamW)", min=0.0, max=1.0, group="optim",
                              min_exclusive=True, label="Learning rate", cli=("--lr",), step=1e-4, format="%.5f")
    epochs: float = _f(3.0, "passes over the training examples (ignored when max_steps > 0)", min=0.0,
                       max=1000.0, group="optim", min_exclusive=True, step=1.0)
    max_steps: int = _f(0, "stop after this many optimizer steps (0 = run the epochs)", min=0,
                        max=10_000_000, group="optim",
                    label="Max steps (0 = epochs)")
    batch_size: int = _f(8, "examples per micro-batch", min=1, max=4096, group="optim")
    grad_accum: int = _f(1, "micro-batches per optimizer step", min=1, max=1024, group="optim",
                    label="Gradient accumulation")
    max_length: int = _f(2560, "tokens per example (longer ones are truncated)", min=16, max=131072,
                         group="optim", label="Max length (tokens)")
    warmup_ratio: float = _f(0.05, "fraction of the steps spent warming the learning rate up", min=0.0,
                             max=0.9, group="optim", step=0.01)
    weight_decay: float = _f(0.0, "AdamW weight decay", min=0.0, max=1.0, group="optim", step=0.01)
    scheduler: str = _f("cosine", "learning-rate schedule after warm-up", choices=SCHEDULERS, group="optim")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 = off)", min=0.0, max=1000.0, group="optim",
                                 label="Max gradient norm")
    group_by_length: bool = _f(True, "batch examples of similar length together (less padding)",
                               group="optim")
    seed: int = _f(0, "random seed (shuffling, LoRA init, dropout)", min=0, max=2**31 - 1, group="optim")
    decision_weight: float = _f(1.0, "loss weight of each answer's first token, where the model decides between a "
                                "tool call and a plain answer (1 = plain token mean; higher teaches when not to "
                                "call with the same data)", min=0.0, max=100.0, group="optim",
                                label="Decision-token weight")
    share_prefix: bool = _f(True, "micro-batches gather examples whose prompts start with the same tokens (the "
                            "same tool list) and run that prompt once per batch, each example attending to it and "
                            "to itself only: the same loss for several times fewer tokens (exact; see "
                            "training/packing.py)", group="optim", label="Share tool prompts in a batch")
    # training-data recipe (applied to the training split when the job is prepared; the eval split is never touched)
    function_masking: float = _f(0.0, "share of training examples whose tool and parameter names become random "
                                 "identifiers (tools shuffled, descriptions kept), so the model learns to read "
                                 "descriptions rather than names; the Hammer models found a third to a half best",
                                 min=0.0, max=1.0, group="data", label="Function masking share", step=0.05)
    mix_dataset: str = _f("", "another stored dataset whose training split is mixed into this run's training "
                          "examples, e.g. imported general tool-calling data ('' = none)", group="data",
                          label="Mix in dataset")
    mix_fraction: float = _f(0.0, "how many examples to mix in from mix_dataset, as a fraction of this dataset's "
                             "training examples (0.5 = half as many again; at most all of mix_dataset)",
                             min=0.0, max=10.0, group="data", label="Mix fraction", step=0.1)
    practice_fraction: float = _f(0.5, "practice examples over everyday tools no dataset of yours uses "
                                  "(data/practice_tools.py), generated for the run and added to its training "
                                  "split, as a fraction of it (0.5 = half as many again): the model learns to read "
                                  "tools it never saw and to decline what the offered ones cannot do",
                                  min=0.0, max=4.0, group="data", label="Practice tools share", step=0.1)
    # evaluation
    eval_fraction: float = _f(0.1, "eval share split off the training file when there is no eval file",
                              min=0.0, max=0.5, group="eval", step=0.05)
    eval_every: int = _f(0, "steps between eval-loss measurements on up to 32 eval examples (0 = once per "
                         "epoch, or halfway through a single epoch); the whole eval set is scored at the end",
                         min=0, max=10_000_000, group="eval")
    # hardware
    device: str = _f("auto", "auto | cpu | cuda", choices=DEVICES, group="hardware")
    dtype: str = _f("auto", "auto = bfloat16 autocast on a CPU with AMX (else float32), bfloat16 (else "
                    "float16) autocast on GPU", choices=DTYPES,
                    group="hardware")
    num_threads: int = _f(0, "CPU threads for torch (0 = one per core)", min=0, max=1024, group="hardware")

    # ------------------------------------------------------------------------------ validation / io
    def validate(self) -> "TrainConfig":
        """Raises InvalidConfig naming the first bad field; returns self so calls can chain."""
        hints = get_type_hints(type(self))
        for f in fields(self):
            v = getattr(self, f.name)
            meta = f.metadata
            if hints[f.name] in (int, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise InvalidConfig(f"{f.name} must be a number, got {v!r}")
                if hints[f.name] is int and not isinstance(v, int):
                    raise InvalidConfig(f"{f.name} must be a whole number, got {v!r}")
                if math.isnan(v) or math.isinf(v):
                    raise InvalidConfig(f"{f.name} must be a finite number, got {v!r}")
                lo, hi = meta.get("min"), meta.get("max")
                if lo is not None and (v < lo or (meta.get("min_exclusive") and v == lo)):
                    op = ">" if meta.get("min_exclusive") else ">="
                    raise InvalidConfig(f"{f.name} must be {op} {lo}, got {v!r} ({meta['help']})")
                if hi is not None and v > hi:
                    raise InvalidConfig(f"{f.name} must be <= {hi}, got {v!r} ({meta['help']})")
            if "choices" in meta and v not in meta["choices"]:
                raise InvalidConfig(f"{f.name} must be one of {', '.join(meta['choices'])}, got {v!r}")
        if not isinstance(self.target_modules, list) or not self.target_modules or not all(
                isinstance(m, str) and m.strip() for m in self.target_modules):
            raise InvalidConfig("target_modules must be a non-empty list of module names, e.g. q_proj,v_proj")
        if not isinstance(self.group_by_length, bool):
            raise InvalidConfig(f"group_by_length must be true or false, got {self.group_by_length!r}")
        if not str(self.base_model).strip():
            raise InvalidConfig("base_model must not be empty")
        if not str(self.dataset_file).strip():
            raise InvalidConfig("dataset_file must not be empty")
        if not isinstance(self.mix_dataset, str):
            raise InvalidConfig(f"mix_dataset must be a dataset name, got {self.mix_dataset!r}")
        if self.mix_fraction > 0 and not self.mix_dataset.strip():
            raise InvalidConfig("mix_fraction is set but mix_dataset is empty: name the stored dataset to mix in")
        if self.device == "cpu" and self.dtype == "float16":
            raise InvalidConfig("dtype float16 needs a GPU; use dtype auto, bfloat16 or float32 on the CPU")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Builds a config from a dict; unknown keys are an error (a typo must not be silently ignored)."""
        if not isinstance(data, dict):
            raise InvalidConfig("a training config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfig(f"unknown training setting(s): {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")
        values = dict(data)
        if isinstance(values.get("target_modules"), str):
            values["target_modules"] = [m.strip() for m in values["target_modules"].split(",") if m.strip()]
        return cls(**values)

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise InvalidConfig(f"{path}: cannot read the training config ({e})") from None
        return cls.from_dict(data)

    def with_overrides(self, **hyper: Any) -> "TrainConfig":
        """A copy with the given fields changed (None values are ignored); unknown names are an error."""
        data = self.to_dict()
        data.update({k: v for k, v in hyper.items() if v is not None})
        return type(self).from_dict(data)


def field_help() -> dict[str, dict]:
    """Per-field default, help and bounds (the MCP tool schema reads this)."""
    out = {}
    for f in fields(TrainConfig):
        default = f.default_factory() if callable(f.default_factory) else f.default
        out[f.name] = {"default": default, **dict(f.metadata)}
    return out


NOT_HYPER_GROUPS = ("paths", "model")  # set per job by the launcher, never a hyper-parameter


def train_options(names: Sequence[str] | None = None) -> list[Option]:
    """TrainConfig's fields as Options (all of them, or those named, in that order). Read at call time, so a
    field added to TrainConfig reaches every surface that calls this. Raises KeyError for an unknown name."""
    opts = {o.name: o for o in options_of(TrainConfig)}
    return list(opts.values()) if names is None else [opts[n] for n in names]


def hyper_options() -> list[Option]:
    """The settings a run may override: every field outside the paths and model groups."""
    return [o for o in train_options() if o.group not in NOT_HYPER_GROUPS]


HYPER_FIELDS = [o.name for o in hyper_options()]
"""The hyper-parameter names when this module was imported (surfaces call hyper_options() instead)."""
