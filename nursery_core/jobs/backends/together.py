"""The `together` backend: a managed LoRA fine-tune on Together.ai (no machine to rent, no SSH).

Upload the job's training (and validation) split in Together's `messages` + `tools` format, check the run's
hyper-parameters against Together's limits for the base model and map them to Together's fields (every change
is logged and kept in provider_state["mapping"]), ask Together's own price estimate (refused above max_cost or
when Together says the account cannot pay), create the fine-tune, follow its status and events into the job's
progress, then download the adapter archive into the job's output/ so the runner registers it in models/ like
any other adapter. Cancel (and a dashboard shutdown) maps to Together's cancel; `finally` makes sure the
fine-tune is terminal and deletes the uploaded files. The Together model name is the base's hub id (a local
base directory is sent as its path: only an emulator knows such a name).

Settings: TOGETHER_API_KEY (or [together] api_key), TOGETHER_BASE_URL (the SDK's own override: the emulator),
NURSERY_TOGETHER_POLL_S (seconds between status polls, default 10), NURSERY_TOGETHER_CANCEL_WAIT_S.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ...base_models import resolve
from ...cloud.together import TERMINAL_STATUSES, TogetherClient, nursery_price, write_training_file
from ...errors import BackendError, InvalidConfig
from ...estimate import count_base_tokens
from ...rows import JobRow
from ...store import now
from ...training.config import ALL_LINEAR, TrainConfig
from ..context import RunContext
from ..errors import Cancelled
from ..events import PROGRESS, START
from ..supervise import result_from_output
from .managed import recover_run, release_run
from .options import env_float as _env
from .options import refuse_options, require_key
from .remote import BudgetReached

KIND = "together"
# Together's words (FinetuneJobStatus, event levels), not Nursery event kinds that happen to be spelled alike
CANCELLED_STATUSES = frozenset({"cancelled"})
ERROR_LEVELS = frozenset({"error"})
# The options that mean something only for a rented machine; Together runs on its own hardware.
MACHINE_OPTIONS = ("gpu", "gpu_count", "offer_id", "min_gpu_ram_gb", "image", "disk_gb", "ssh_server", "host",
                   "port", "user", "key_path", "python", "remote_root", "trainer", "destination",
                   "hardware")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def together_model(base_model: str) -> str:
    """The name Together knows the base by: the registry's hub id (a local directory: its path)."""
    return resolve(base_model).hf_id


def map_hyper(cfg: TrainConfig, limits: dict, *, model: str, training_file: str, suffix: str,
              validation_file: str | None) -> tuple[dict, list[str]]:
    """(Together's create body, notes on every value that had to change). Source of the limits: Together's
    `GET /v1/fine-tunes/models/limits` (FinetuneModelLimits). Raises InvalidConfig for a LoRA rank above the
    model's maximum (a different rank is a different adapter: never changed silently)."""
    lora = limits.get("lora_training") or {}
    notes: list[str] = []
    max_rank = int(lora.get("max_rank") or cfg.r)
    if cfg.r > max_rank:
        raise InvalidConfig(f"LoRA r {cfg.r} is above Together's maximum of {max_rank} for {model}: lower r")
    epochs = max(1, math.ceil(cfg.epochs))
    if epochs != cfg.epochs:
        notes.append(f"epochs {cfg.epochs:g} -> {epochs} (Together trains whole epochs)")
    if cfg.max_steps:
        notes.append(f"max_steps {cfg.max_steps} ignored (Together trains whole epochs: {epochs})")
    batch = cfg.batch_size * cfg.grad_accum
    lo, hi = int(lora.get("min_batch_size") or 1), int(lora.get("max_batch_size") or batch)
    if not lo <= batch <= hi:
        notes.append(f"batch size {batch} -> {min(max(batch, lo), hi)} (Together's range for {model}: {lo}-{hi})")
        batch = min(max(batch, lo), hi)
    seq = cfg.max_length
    lo_s, hi_s = int(limits.get("min_max_seq_length") or 1), int(limits.get("max_seq_length_sft") or seq)
    if not lo_s <= seq <= hi_s:
        notes.append(f"max_length {seq} -> {min(max(seq, lo_s), hi_s)} (Together's range: {lo_s}-{hi_s})")
        seq = min(max(seq, lo_s), hi_s)
    modules = "all-linear" if list(cfg.target_modules) == list(ALL_LINEAR) else ",".join(cfg.target_modules)
    if cfg.lora_layers:
        notes.append(f"lora_layers {cfg.lora_layers} not available on Together: LoRA on every layer")
    if cfg.decision_weight != 1.0:
        notes.append(f"decision_weight {cfg.decision_weight:g} not available on Together: plain SFT loss")
    body = TogetherClient.lora_request(
        model=model, training_file=training_file, suffix=suffix, n_epochs=epochs,
        learning_rate=cfg.learning_rate, batch_size=batch, lora_r=cfg.r, lora_alpha=int(round(cfg.alpha)),
        lora_dropout=cfg.dropout, lora_trainable_modules=modules, validation_file=validation_file,
        n_evals=1 if validation_file else 0, warmup_ratio=cfg.warmup_ratio, max_seq_length=seq,
        random_seed=cfg.seed)
    return body, notes


def nursery_estimate(base_model: str, train_rows: list[dict], eval_rows: list[dict], n_epochs: int,
                     n_evals: int) -> dict:
    """Nursery's price for a Together run: the base's tokens of each split (estimate.count_base_tokens) at
    Together's per-token rate (cloud.together.nursery_price); {"source": "Nursery", "usd", "tokens", "how"}."""
    train = count_base_tokens(train_rows, base_model)["total"] if train_rows else 0
    evals = count_base_tokens(eval_rows, base_model)["total"] if eval_rows and n_evals else 0
    return {"source": "Nursery", **nursery_price(train, n_epochs, evals, n_evals, resolve(base_model).params)}


def together_estimate(est: dict) -> dict:
    """Together's own answer to POST /v1/fine-tunes/estimate-price as {"source": "Together", "usd" (None when
    it gave none), "how"}."""
    if not est.get("estimation_available", True):
        return {"source": "Together", "usd": None,
                "how": f"Together gave no estimate: {est.get('unavailable_reason') or 'no reason given'}"}
    how = "Together's estimate-price API"
    if est.get("estimated_train_token_count") is not None:
        how += f", {int(est['estimated_train_token_count']):,} training tokens by its count"
    return {"source": "Together", "usd": round(float(est.get("estimated_total_price") or 0.0), 6), "how": how}


def _usd(v: float | None) -> str:
    return "n/a" if v is None else f"${float(v):.4f}"


class TogetherBackend:
    """Runs a job as a Together.ai LoRA fine-tune (see module docstring)."""

    kind = KIND
    label = "Together.ai"

    def __init__(self, client_factory: Callable[[], Any] | None = None):
        self._client_factory = client_factory

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]:
        """Nothing to choose (Together picks its hardware): {}; InvalidConfig without an API key, InvalidInput
        for a machine option (gpu, offer_id, host, ...) that Together cannot honour."""
        require_key(KIND, self.label)
        refuse_options(options, MACHINE_OPTIONS, self.label, "a managed fine-tune: Together picks the hardware")
        return {}

    def quote(self, dataset: str, base_model: str, config: TrainConfig) -> dict[str, Any]:
        """Both price estimates before a run, each labelled with its source: Nursery's (token counts at
        Together's rate) and Together's own (the dataset's splits are uploaded in Together's format, priced by
        POST /v1/fine-tunes/estimate-price, and deleted). Returns {"provider", "epochs", "estimates":
        [Nursery's, Together's]}; Together's `usd` is None with the reason in `how` when no key is set."""
        from ...datasets import load_examples
        from ...errors import InvalidConfig as NoKey

        train, evals = load_examples(dataset, "train"), load_examples(dataset, "eval")
        n_epochs, n_evals = max(1, math.ceil(config.epochs)), 1 if evals else 0
        ours = nursery_estimate(base_model, train, evals, n_epochs, n_evals)
        try:
            require_key(KIND, self.label)
        except NoKey as e:
            return {"provider": KIND, "epochs": n_epochs,
                    "estimates": [ours, {"source": "Together", "usd": None, "how": f"not asked: {e}"}]}
        client, files = self.client(), []
        try:
            with tempfile.TemporaryDirectory(prefix="nursery-together-quote-") as tmp:
                ids = []
                for name, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
                    if rows:
                        write_training_file(rows, Path(tmp) / name)
                        files.append(client.upload_file(Path(tmp) / name)["id"])
                        ids.append(files[-1])
                    else:
                        ids.append(None)
                est = client.estimate_price(training_file=ids[0], model=together_model(base_model),
                                            n_epochs=n_epochs, n_evals=n_evals, validation_file=ids[1])
            return {"provider": KIND, "epochs": n_epochs, "estimates": [ours, together_estimate(est)]}
        finally:
            try:
                for fid in files:
                    client.delete_file(fid)
            finally:
                client.close()

    def client(self) -> Any:
        return self._client_factory() if self._client_factory is not None else TogetherClient()

    # -------------------------------------------------------------------------------------- run
    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]:
        started = time.time()
        budget = dict(job.get("budget") or {})
        cfg = TrainConfig.from_dict(job.get("config") or {})
        state: dict[str, Any] = {"provider": KIND, "request": {}, "phase": "uploading"}
        client = self.client()
        files: list[str] = []
        ft: dict[str, Any] = {}
        try:
            model = together_model(job["base_model"])
            stage = ctx.job_dir / "together"
            stage.mkdir(exist_ok=True)
            train_id, val_id = self._upload(ctx, client, stage, files, state)
            limits = client.model_limits(model)
            if limits.get("supports_tools") is False:
                raise BackendError(f"Together cannot fine-tune {model} on tool-calling data (supports_tools is "
                                   "false): pick another base model")
            suffix = "".join(c if c.isalnum() or c == "-" else "-" for c in job["output_name"])[:40]
            body, notes = map_hyper(cfg, limits, model=model, training_file=train_id, suffix=suffix,
                                    validation_file=val_id)
            for n in notes:
                ctx.log(f"Together: {n}")
            state["mapping"] = notes
            self._check_price(ctx, client, state, budget, job, body)
            if ctx.should_stop():
                raise Cancelled("cancelled before the fine-tune was created")
            state["phase"] = "creating"
            ctx.update(provider_state=state)
            ft = client.create_fine_tune(body)
            state.update(phase="queued", fine_tune_id=ft["id"], model=model)
            ctx.update(provider_state=state, device="Together.ai (managed)")
            ctx.store.record_instance({"id": ft["id"], "provider": KIND, "job_id": job["id"],
                                       "label": f"nursery-{job['id']}", "state": "starting", "gpu_name": None,
                                       "dph": None, "data": {"model": model}})
            ctx.log(f"created Together fine-tune {ft['id']} on {model}")
            ft = self._follow(ctx, client, ft, state, budget, started)
            out = ctx.job_dir / "output"
            if out.exists():
                shutil.rmtree(out)
            state["phase"] = "downloading"
            ctx.update(provider_state=state)
            names = client.download_adapter(ft["id"], out)
            ctx.log(f"downloaded the adapter ({len(names)} files)")
            result = result_from_output(ctx.job_dir, {"output_dir": str(out)}, started)
            cost = self._cost(ft)
            result["actual"].update(provider=KIND, fine_tune_id=ft["id"], steps=ft.get("steps_completed"),
                                    token_count=ft.get("token_count"), cost_usd=cost,
                                    together_estimate_usd=state.get("together_estimate_usd"),
                                    nursery_estimate_usd=state.get("nursery_estimate_usd"))
            ctx.update(cost_usd=cost)
            return result
        finally:
            try:
                self._release(ctx, client, ft, files, state)
            finally:
                client.close()

    def _upload(self, ctx: RunContext, client: Any, stage: Path, files: list[str],
                state: dict) -> tuple[str, str | None]:
        """Writes and uploads the training (and, when there is one, validation) split; returns their file ids."""
        ctx.update(provider_state=state)
        ids: list[str | None] = []
        for split, name in (("train", "train.jsonl"), ("eval", "eval.jsonl")):
            rows = read_jsonl(ctx.job_dir / "data" / name)
            if not rows:
                ids.append(None)
                continue
            path = stage / f"{split}.jsonl"
            counts = write_training_file(rows, path)
            ctx.log(f"Together {split} file: {counts['rows']} rows in messages+tools format "
                    f"({counts['arguments_encoded']} tool-call arguments encoded as JSON strings, "
                    f"{counts['tools_rows']} rows with tools)")
            if ctx.should_stop():
                raise Cancelled("cancelled during upload")
            info = client.upload_file(path)
            files.append(info["id"])
            ids.append(info["id"])
        if ids[0] is None:
            raise BackendError("the job has no training examples to upload")
        state["files"] = list(files)
        return ids[0], ids[1]

    def _check_price(self, ctx: RunContext, client: Any, state: dict, budget: dict, job: JobRow, body: dict) -> None:
        est = client.estimate_price(training_file=body["training_file"], model=body["model"],
                                    n_epochs=body["n_epochs"], n_evals=body.get("n_evals", 0),
                                    validation_file=body.get("validation_file"))
        ours = nursery_estimate(job["base_model"], read_jsonl(ctx.job_dir / "data" / "train.jsonl"),
                                read_jsonl(ctx.job_dir / "data" / "eval.jsonl"), body["n_epochs"],
                                body.get("n_evals", 0) if body.get("validation_file") else 0)
        state.update(nursery_estimate_usd=ours["usd"], nursery_estimate_how=ours["how"])
        theirs = together_estimate(est)
        state["together_estimate_usd"] = theirs["usd"]
        ctx.log("price estimates: " + "; ".join(f"{e['source']}'s {_usd(e['usd'])} ({e['how']})"
                                                for e in (theirs, ours)))
        if theirs["usd"] is None:
            if budget.get("max_cost") is not None:
                raise BackendError("Together gave no price estimate, so the max_cost cap cannot be checked: "
                                   "remove max_cost or try again")
            return
        price = float(theirs["usd"])
        if est.get("allowed_to_proceed") is False:
            raise BackendError(f"Together says this account cannot pay for the run (estimate ${price:.4f}, "
                               f"limit ${float(est.get('user_limit') or 0):.2f}): add credit")
        cap = budget.get("max_cost")
        if cap is not None and price > float(cap) + 1e-12:
            raise BackendError(f"Together's price estimate ${price:.4f} is above your cap of max ${float(cap):g}; "
                               "nothing was started")

    def _follow(self, ctx: RunContext, client: Any, ft: dict, state: dict, budget: dict, started: float) -> dict:
        """Polls the fine-tune until it is terminal, turning its events and steps into job events; cancels it
        on a cancel or shutdown. Returns the completed job; raises Cancelled or BackendError otherwise."""
        poll = _env("NURSERY_TOGETHER_POLL_S", 10.0)
        seen, step, status = 0, -1, ft.get("status")
        stop_why = None
        while True:
            over = budget.get("max_hours") and time.time() - started > float(budget["max_hours"]) * 3600.0
            if stop_why is None and (ctx.should_stop() or ctx.detached() or over):
                stop_why = "cancel" if ctx.should_stop() else "shutdown" if ctx.detached() else "budget"
                ctx.log(f"asking Together to cancel {ft['id']}")
                client.cancel(ft["id"])
            ft = client.retrieve(ft["id"])
            events = client.events(ft["id"])
            for ev in events[seen:]:
                level = ev.get("level")
                ctx.log(f"Together: {ev.get('message')}" + (f" ({level})" if level and level != "info" else ""))
            seen = max(seen, len(events))
            if ft.get("status") != status:
                status = ft.get("status")
                state["phase"] = status
                ctx.update(provider_state=state)
                if status == "running":
                    ctx.emit({"kind": START, "total_steps": ft.get("total_steps"), "device": "Together.ai"})
            done = ft.get("steps_completed")
            if done is not None and done != step and status in ("running", "compressing", "uploading", "completed"):
                step = done
                eta = (ft.get("progress") or {}).get("seconds_remaining")
                ctx.emit({"kind": PROGRESS, "step": done, "total_steps": ft.get("total_steps"), "eta_s": eta})
            ctx.heartbeat()
            if status in TERMINAL_STATUSES:
                break
            time.sleep(poll)
        if status == "completed":
            return ft
        if status in CANCELLED_STATUSES and stop_why == "cancel":
            raise Cancelled(f"cancelled: Together fine-tune {ft['id']} was cancelled at step {step if step > 0 else 0}")
        if stop_why == "budget":
            raise BudgetReached(f"budget cap reached (max {float(budget['max_hours']):g} h): Together fine-tune "
                                f"{ft['id']} was cancelled at step {max(step, 0)}")
        if stop_why == "shutdown":
            raise BackendError(f"Together fine-tune {ft['id']} was cancelled because the dashboard shut down")
        errors = [e.get("message") for e in events if e.get("level") in ERROR_LEVELS]
        raise BackendError(f"Together fine-tune {ft['id']} ended {status}"
                           + (f": {errors[-1]}" if errors else "") + " (nothing is left running)")

    @staticmethod
    def _cost(ft: dict) -> float | None:
        # total_price is in cents (the SDK's FinetuneResponse; the CLI prints it / 100)
        return round(float(ft["total_price"]) / 100.0, 4) if ft.get("total_price") is not None else None

    def _release(self, ctx: RunContext, client: Any, ft: dict, files: list[str], state: dict) -> None:
        """Makes sure the fine-tune is terminal (cancel, then wait a little) and deletes the uploaded files."""
        def stop() -> None:
            cur = client.retrieve(ft["id"])
            if cur.get("status") not in TERMINAL_STATUSES:
                client.cancel(ft["id"])
                deadline = time.monotonic() + _env("NURSERY_TOGETHER_CANCEL_WAIT_S", 120.0)
                while cur.get("status") not in TERMINAL_STATUSES and time.monotonic() < deadline:
                    time.sleep(min(2.0, _env("NURSERY_TOGETHER_POLL_S", 10.0)))
                    cur = client.retrieve(ft["id"])
                ctx.log(f"Together fine-tune {ft['id']} is {cur.get('status')}")
            cost = self._cost(cur)
            if cost is not None:
                ctx.update(cost_usd=cost)

        release_run(ctx, state, run_id=ft.get("id"), label="Together", what="Together fine-tune", stop=stop,
                    files=files, delete_file=client.delete_file,
                    manual=f"`together fine-tuning cancel {ft.get('id')}`")

    # ------------------------------------------------------------------------------ recovery
    def recover(self, job: JobRow, ctx: RunContext) -> dict | None:
        """The dashboard died mid-run: cancel the fine-tune it left (the run is not re-attached)."""
        ft_id = (job.get("provider_state") or {}).get("fine_tune_id")
        if not ft_id:
            return None
        client = self.client()
        recover_run(ctx, client, ft_id, what="Together fine-tune",
                    is_over=lambda: client.retrieve(ft_id).get("status") in TERMINAL_STATUSES,
                    cancel=lambda: client.cancel(ft_id))
        return None
        client = self.client()
        try:
            cur = client.retrieve(ft_id)
            if cur.get("status") not in TERMINAL_STATUSES:
                client.cancel(ft_id)
                ctx.log(f"cancelled Together fine-tune {ft_id} left by an interrupted run")
            ctx.store.update_instance(ft_id, state="destroyed", destroyed_at=now())
        finally:
            client.close()
        return None

