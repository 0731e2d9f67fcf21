"""The `replicate` backend: a Replicate training of a LoRA trainer model (no machine to rent, no SSH).

Replicate's LLM trainers take JSONL of `{"text"}` rows, not tool schemas, so every example is rendered with
Nursery's own chat template for the run's base (`training.rendering.render_conversation`: the same text a
local run trains on) into one `text` row; the trainer then trains on the whole text (no loss masking of the
prompt: the one difference from a local run, said in the log and README). The file goes through Replicate's
files API (no public URL needed), the training is created on the trainer's latest version with a destination
model (created when missing), its status and logs become the job's progress, and the output weights are
unpacked into the job's output/ for the normal registration into models/.

A trainer whose base Nursery cannot load is refused before anything is uploaded: Replicate's own LLM trainers
(`KNOWN_TRAINER_BASES`, from replicate.com/docs/guides/fine-tune-a-language-model) train Llama-2, which is no
Nursery base. For any other trainer the adapter's `base_model_name_or_path` must be the run's base, else the run
fails and nothing is registered. Cost: Replicate bills seconds of the trainer's hardware while processing; the
rate comes from the `hardware` option (the SKU the trainer's page names; default gpu-a40-large-8x, the LLM
trainers' 8x A40) through `cloud.replicate.HARDWARE_USD_PER_S` (replicate.com/pricing), or
NURSERY_REPLICATE_USD_PER_S when set. max_dph refuses hardware above it before anything is uploaded; max_cost
cancels the training once its processing seconds cost that much.

Settings: REPLICATE_API_TOKEN (or [replicate] api_token), REPLICATE_BASE_URL (the SDK's override: the
emulator), REPLICATE_OWNER (or [replicate] owner: the default destination's owner), NURSERY_REPLICATE_POLL_S.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ... import paths
from ...base_models import load_tokenizer, resolve
from ...cloud.credentials import load_secrets
from ...cloud.replicate import TERMINAL_STATUSES, ReplicateClient, usd_per_second
from ...errors import BackendError, InvalidConfig, InvalidInput, NotFound
from ...rows import JobRow
from ...store import now
from ...training.config import TrainConfig
from ...training.rendering import render_conversation
from ..context import RunContext
from ..errors import Cancelled
from ..events import PROGRESS, START
from ..supervise import result_from_output
from .managed import recover_run, release_run
from .options import env_float as _env
from .options import refuse_options, require_key
from .remote import BudgetReached
from .together import read_jsonl

KIND = "replicate"
# Replicate's own LLM trainers and the base each trains (replicate.com/docs/guides/fine-tune-a-language-model).
KNOWN_TRAINER_BASES = {f"meta/llama-2-{size}{chat}": f"meta-llama/Llama-2-{size}{'-chat' if chat else ''}-hf"
                       for size in ("7b", "13b", "70b") for chat in ("", "-chat")}
MACHINE_OPTIONS = ("gpu", "gpu_count", "offer_id", "min_gpu_ram_gb", "image", "disk_gb", "ssh_server", "host",
                   "port", "user", "key_path", "python", "remote_root")
_MODEL_REF = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_LOSS = re.compile(r"""['"]loss['"]\s*:\s*([0-9.eE+-]+)""")


def replicate_owner() -> str | None:
    """The default destination owner: REPLICATE_OWNER, else secrets.toml [replicate] owner."""
    owner = os.environ.get("REPLICATE_OWNER") or (load_secrets().get("replicate") or {}).get("owner")
    return str(owner).strip() or None if owner else None


def refuse_unloadable_trainer(trainer: str, base_model: str) -> None:
    """InvalidConfig when `trainer` is known to train a base Nursery cannot load, or a different base than the
    run's (rule: the adapter must load on the run's base for test, compare, evaluate and deploy)."""
    base = KNOWN_TRAINER_BASES.get(trainer)
    if base is None:
        return
    try:
        loadable = resolve(base).hf_id
    except (NotFound, InvalidInput):
        raise InvalidConfig(f"Replicate trainer {trainer} trains {base}, which Nursery cannot load (see "
                            "list-models for the bases it can): pick a trainer for your base model") from None
    if loadable != resolve(base_model).hf_id:
        raise InvalidConfig(f"Replicate trainer {trainer} trains {base}, not this run's base {base_model}")


def render_text_rows(examples: list[dict], tokenizer, path: Path) -> int:
    """Writes each canonical example as `{"text": <the conversation in Nursery's chat template>}`; returns the
    number of rows."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps({"text": render_conversation(tokenizer, ex)}, ensure_ascii=False) + "\n")
    return len(examples)


def trainer_input(cfg: TrainConfig, train_url: str) -> tuple[dict, list[str]]:
    """The cog LLM trainer inputs for the run (replicate/cog-llama-template train.py names) and notes on every
    value that changed."""
    notes = []
    epochs = max(1, math.ceil(cfg.epochs))
    if epochs != cfg.epochs:
        notes.append(f"epochs {cfg.epochs:g} -> {epochs} (the trainer takes whole epochs)")
    inp: dict[str, Any] = {
        "train_data": train_url, "num_train_epochs": epochs, "train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum, "learning_rate": cfg.learning_rate,
        "warmup_ratio": cfg.warmup_ratio, "lora_rank": cfg.r, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout,
        "lora_target_modules": ",".join(cfg.target_modules), "seed": cfg.seed}
    if cfg.max_steps:
        inp["max_steps"] = cfg.max_steps
    if cfg.lora_layers:
        notes.append(f"lora_layers {cfg.lora_layers} not available on Replicate: LoRA on every layer")
    if cfg.decision_weight != 1.0:
        notes.append(f"decision_weight {cfg.decision_weight:g} not available on Replicate: plain loss")
    return inp, notes


class ReplicateBackend:
    """Runs a job as a Replicate training (see module docstring)."""

    kind = KIND
    label = "Replicate"

    def __init__(self, client_factory: Callable[[], Any] | None = None):
        self._client_factory = client_factory

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]:
        """{trainer, destination, hardware}. InvalidConfig without an API token or a destination owner;
        InvalidInput for a missing or malformed trainer/destination, hardware without a known price, or a
        machine option Replicate cannot honour."""
        require_key(KIND, self.label)
        refuse_options(options, MACHINE_OPTIONS, self.label, "a managed training: the trainer picks the hardware")
        trainer = str(options.get("trainer") or "").strip()
        if not trainer:
            raise InvalidInput("Replicate needs trainer: the owner/name of a LoRA trainer model for your base",
                               field="trainer")
        if not _MODEL_REF.match(trainer):
            raise InvalidInput(f"trainer must be owner/name in lowercase, got {trainer!r}", field="trainer")
        dest = str(options.get("destination") or "").strip() or None
        if dest is not None and not _MODEL_REF.match(dest):
            raise InvalidInput(f"destination must be owner/name in lowercase, got {dest!r}", field="destination")
        if dest is None and replicate_owner() is None:
            raise InvalidConfig("Replicate needs a destination model: give destination owner/name, or set "
                                "REPLICATE_OWNER (or [replicate] owner in .streamlit/secrets.toml)")
        hardware = str(options.get("hardware") or "").strip() or None
        try:
            usd_per_second(hardware)
        except ValueError as e:
            raise InvalidInput(str(e), field="hardware") from None
        return {"trainer": trainer, "destination": dest, "hardware": hardware}

    def client(self) -> Any:
        return self._client_factory() if self._client_factory is not None else ReplicateClient()

    # -------------------------------------------------------------------------------------- run
    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]:
        started = time.time()
        req = dict((job.get("provider_state") or {}).get("request") or {})
        budget = dict(job.get("budget") or {})
        cfg = TrainConfig.from_dict(job.get("config") or {})
        trainer = req["trainer"]
        refuse_unloadable_trainer(trainer, job["base_model"])
        rate, rate_source = usd_per_second(req.get("hardware"))
        ctx.log(f"Replicate bills ${rate:.6f}/s (${rate * 3600:.2f}/h) for this training: {rate_source}")
        if budget.get("max_dph") and rate * 3600.0 > float(budget["max_dph"]) + 1e-12:
            raise BackendError(f"Replicate hardware costs ${rate * 3600:.2f}/h ({rate_source}), above your cap of "
                               f"max ${float(budget['max_dph']):g}/h: nothing was uploaded or started")
        state: dict[str, Any] = {"provider": KIND, "request": req, "phase": "rendering"}
        ctx.update(provider_state=state)
        client = self.client()
        file_id: str | None = None
        training: dict[str, Any] = {}
        try:
            stage = ctx.job_dir / "replicate"
            stage.mkdir(exist_ok=True)
            tok = load_tokenizer(job["base_model"])
            n = render_text_rows(read_jsonl(ctx.job_dir / "data" / "train.jsonl"), tok, stage / "train.jsonl")
            ctx.log(f"rendered {n} examples with Nursery's chat template into Replicate text rows (the trainer "
                    "trains on the whole text: prompts are not masked out as in a local run)")
            if ctx.should_stop():
                raise Cancelled("cancelled before upload")
            state["phase"] = "uploading"
            ctx.update(provider_state=state)
            info = client.upload_file(stage / "train.jsonl")
            file_id = info["id"]
            version = client.trainer_version(trainer)
            dest = req.get("destination") or \
                f"{replicate_owner()}/nursery-{paths.slugify(job['output_name']).lower()}"[:120]
            owner, name = dest.split("/", 1)
            client.ensure_model(owner, name, description=f"Nursery adapter {job['output_name']}")
            inp, notes = trainer_input(cfg, info["urls"]["get"])
            for note in notes:
                ctx.log(f"Replicate: {note}")
            if ctx.should_stop():
                raise Cancelled("cancelled before the training was created")
            training = client.create_training(trainer, version, destination=dest, input=inp)
            state.update(phase="starting", training_id=training["id"], destination=dest, mapping=notes)
            ctx.update(provider_state=state, device="Replicate (managed)")
            ctx.store.record_instance({"id": training["id"], "provider": KIND, "job_id": job["id"],
                                       "label": f"nursery-{job['id']}", "state": "starting", "gpu_name": None,
                                       "dph": None, "data": {"trainer": trainer, "destination": dest}})
            ctx.log(f"created Replicate training {training['id']} on {trainer} -> {dest}")
            training = self._follow(ctx, client, training, state, budget, started, rate)
            out = ctx.job_dir / "output"
            if out.exists():
                shutil.rmtree(out)
            names = client.download_weights(training, out)
            ctx.log(f"downloaded the weights ({len(names)} files)")
            self._check_base(out, job)
            result = result_from_output(ctx.job_dir, {"output_dir": str(out)}, started)
            cost = self._cost(training, rate)
            result["actual"].update(provider=KIND, training_id=training["id"], cost_usd=cost,
                                    version=(training.get("output") or {}).get("version"))
            ctx.update(cost_usd=cost)
            return result
        finally:
            try:
                self._release(ctx, client, training, file_id, state)
            finally:
                client.close()

    @staticmethod
    def _check_base(out: Path, job: JobRow) -> None:
        cfg = json.loads((out / "adapter_config.json").read_text())
        got, want = str(cfg.get("base_model_name_or_path") or ""), resolve(job["base_model"]).hf_id
        if got != want:
            shutil.rmtree(out, ignore_errors=True)
            raise BackendError(f"the trainer made an adapter for {got or 'an unnamed base'}, not for this run's base "
                               f"{want}: it was not registered (pick a trainer for {job['base_model']})")

    @staticmethod
    def _cost(t: dict, rate: float) -> float | None:
        secs = (t.get("metrics") or {}).get("predict_time")
        return round(float(secs) * rate, 6) if secs else None

    def _follow(self, ctx: RunContext, client: Any, t: dict, state: dict, budget: dict, started: float,
                rate: float) -> dict:
        """Polls the training until it ends, turning its logs into job events (a `loss` line is one progress
        step); cancels it on a cancel, shutdown or cap. Returns the succeeded training."""
        poll = _env("NURSERY_REPLICATE_POLL_S", 5.0)
        seen, step, status, stop_why, processing_since = 0, 0, t.get("status"), None, None
        while True:
            if stop_why is None:
                spent = (time.time() - processing_since) * rate if processing_since else 0.0
                if ctx.should_stop():
                    stop_why = "cancel"
                elif ctx.detached():
                    stop_why = "shutdown"
                elif (budget.get("max_hours") and time.time() - started > float(budget["max_hours"]) * 3600.0) \
                        or (budget.get("max_cost") and spent > float(budget["max_cost"])):
                    stop_why = "budget"
                if stop_why:
                    ctx.log(f"asking Replicate to cancel training {t['id']} ({stop_why})")
                    client.cancel_training(t["id"])
            t = client.get_training(t["id"])
            lines, seen = client.new_log_lines(t, seen)
            for line in lines:
                ctx.log(f"Replicate: {line}")
                m = _LOSS.search(line)
                if m:
                    step += 1
                    ctx.emit({"kind": PROGRESS, "step": step, "loss": float(m.group(1))})
            if t.get("status") != status:
                status = t.get("status")
                state["phase"] = status
                ctx.update(provider_state=state)
                if status == "processing":
                    processing_since = time.time()
                    ctx.emit({"kind": START, "device": "Replicate"})
            ctx.heartbeat()
            if status in TERMINAL_STATUSES:
                break
            time.sleep(poll)
        if status == "succeeded":
            return t
        if stop_why == "cancel":
            raise Cancelled(f"cancelled: Replicate training {t['id']} was canceled at step {step}")
        if stop_why == "budget":
            raise BudgetReached(f"budget cap reached: Replicate training {t['id']} was canceled at step {step}")
        if stop_why == "shutdown":
            raise BackendError(f"Replicate training {t['id']} was canceled because the dashboard shut down")
        raise BackendError(f"Replicate training {t['id']} {status}: {t.get('error') or 'no reason given'} "
                           "(nothing is left running)")

    def _release(self, ctx: RunContext, client: Any, t: dict, file_id: str | None, state: dict) -> None:
        """Makes sure the training is over (cancel when not) and deletes the uploaded data file."""
        def stop() -> None:
            if client.get_training(t["id"]).get("status") not in TERMINAL_STATUSES:
                client.cancel_training(t["id"])
                ctx.log(f"Replicate training {t['id']} is {client.get_training(t['id']).get('status')}")

        release_run(ctx, state, run_id=t.get("id"), label="Replicate", what="Replicate training", stop=stop,
                    files=[file_id] if file_id else [], delete_file=client.delete_file,
                    manual=f"cancel it at replicate.com/p/{t.get('id')}")

    def recover(self, job: JobRow, ctx: RunContext) -> dict | None:
        """The dashboard died mid-run: cancel the training it left (the run is not re-attached)."""
        tid = (job.get("provider_state") or {}).get("training_id")
        if not tid:
            return None
        client = self.client()
        recover_run(ctx, client, tid, what="Replicate training", verb="canceled",
                    is_over=lambda: client.get_training(tid).get("status") in TERMINAL_STATUSES,
                    cancel=lambda: client.cancel_training(tid))
        return None
        client = self.client()
        try:
            if client.get_training(tid).get("status") not in TERMINAL_STATUSES:
                client.cancel_training(tid)
                ctx.log(f"canceled Replicate training {tid} left by an interrupted run")
            ctx.store.update_instance(tid, state="destroyed", destroyed_at=now())
        finally:
            client.close()
        return None
