"""CLI for the Training Forge: estimate-cost, train-local, job-status, list-jobs, cancel-job, list-models,
delete-model (imports of torch and friends happen inside the handlers)."""
from __future__ import annotations

import json
import sys

from ..errors import InvalidInput
from ..formatting import duration
from ..jobs import events
from ..status import JobStatus
from . import Command, CommandResult


def _estimate(args):
    from ..estimate import nursery_estimate_cost
    out = nursery_estimate_cost(args.dataset, base_model=args.base_model, epochs=args.epochs,
                                remeasure=args.remeasure)
    if args.provider:
        from ..jobs.train_cloud import nursery_price_quote
        out["price_quote"] = nursery_price_quote(args.dataset, args.base_model, args.provider, args.epochs)
    return out


def quote_lines(q: dict) -> list[str]:
    """A provider's price quote as lines, each estimate labelled with its source."""
    return [f"price on {q['provider']} ({q['epochs']} epoch(s)):"] + [
        f"  {e['source']}'s estimate: {'n/a' if e['usd'] is None else '$%.4f' % e['usd']} ({e['how']})"
        for e in q["estimates"]]


def _human_estimate(e: dict) -> str:
    lines = [f"{e['dataset']} on {e['base_model']}: {e['tokens']['total']:,} tokens/epoch "
             f"({e['tokens']['method']}), {e['epochs']} epoch(s), {e['flops']['lora_total']:.3g} FLOPs (LoRA)",
             f"memory needed ≈ {e['memory']['total_gb']:.1f} GB",
             f"{'GPU':<18} {'fits':<5} {'time':>10} {'$/h':>11} {'est. $':>13}"]
    for r in e["gpus"]:
        lines.append(f"{r['gpu']:<18} {'yes' if r['fits'] else 'no':<5} {_dur(r['seconds']):>10} "
                     f"{r['usd_per_hour'][0]:>5.2f}-{r['usd_per_hour'][1]:<5.2f} "
                     f"{r['usd'][0]:>6.3f}-{r['usd'][1]:<6.3f}")
    cpu = e.get("local_cpu") or {}
    if cpu.get("seconds") is not None:
        lines.append(f"this machine (CPU, {cpu.get('method')}): {_dur(cpu['seconds'])}")
    probe = cpu.get("probe")
    if probe:
        lines.append(f"  probe {'kept from' if probe.get('reused') else 'measured'} {probe.get('measured_at')}: "
                     f"{probe.get('tokens_per_s')} tokens/s; it {probe.get('what', 'timed a few training steps')}")
    if e.get("price_quote"):
        lines += quote_lines(e["price_quote"])
    return "\n".join(lines)


def _dur(s) -> str:
    return duration(s, "-")


def add_hyper_args(cmd, cloud: bool = False):
    """The run options train-local (and train-cloud, cloud=True) take, generated from their declarations
    (TrainConfig's field metadata, run_options.CloudRunOptions), plus --set for any setting by name."""
    from ..run_options import add_run_arguments

    add_run_arguments(cmd.parser, cloud=cloud)
    return cmd.arg("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="any training setting by its name, e.g. --set dropout=0.05 --set grad_accum=4 (repeatable)")


def parse_setting(item: str) -> tuple[str, object]:
    """A --set KEY=VALUE pair: the value as JSON when it parses (numbers, lists, booleans), else the text."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise InvalidInput(f"--set needs KEY=VALUE, got {item!r}", field="--set")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw.strip()
    return key.strip(), value


def _hyper(args) -> dict:
    """The hyper-parameters of a parsed train-local/train-cloud line: --set pairs, then the named options."""
    from ..run_options import run_arguments

    hyper = dict(parse_setting(item) for item in getattr(args, "settings", None) or [])
    hyper.update(run_arguments(args)[0])
    return hyper


def print_progress(ev: dict) -> None:
    """--wait's live output: one line per progress/eval/log event, on stderr."""
    line = _progress_line(ev)
    if line:
        print(line, file=sys.stderr, flush=True)


def _progress_line(ev: dict) -> str | None:
    k = ev["kind"]
    if k == events.PROGRESS:
        data = ev.get("data") or {}
        return (f"step {ev['step']}/{data.get('total_steps', '?')} loss {ev['loss']:.4f} "
                f"lr {ev['learning_rate']:.2e} {ev['tokens_per_s'] or 0:.0f} tok/s eta {_dur(data.get('eta_s'))}")
    if k == events.EVAL:
        return f"step {ev['step']} eval_loss {ev['eval_loss']:.4f}"
    if k in (events.LOG, events.ERROR):
        return ev.get("message")
    if k == events.START:
        d = ev.get("data") or {}
        return f"training on {d.get('device')}: {d.get('num_examples')} examples, {d.get('total_steps')} steps"
    if k in (events.DONE, events.CANCELLED):
        return k
    return None


def _train_local(args):
    from ..jobs.api import nursery_cancel_job, nursery_train_local, wait_for_job

    status = nursery_train_local(args.dataset, base_model=args.base_model, output_name=args.output,
                                 **_hyper(args))
    if not args.wait:
        return status
    from ..jobs.runner import JobRunner

    runner = JobRunner().start(recover=False)
    print(f"job {status['id']} queued (output model {status['output_name']})", file=sys.stderr)

    try:
        final = wait_for_job(status["id"], on_event=print_progress)
    except KeyboardInterrupt:
        print("interrupted: cancelling the run", file=sys.stderr)
        nursery_cancel_job(status["id"])
        final = wait_for_job(status["id"], timeout=30)
    finally:
        runner.shutdown()
    return CommandResult(final, 0 if final["status"] == JobStatus.SUCCEEDED else 1)


def _human_status(s: dict) -> str:
    lines = [f"job {s['id']} [{s['kind']}] {s['status']}  {s['dataset']} → {s['output_name']} on {s['base_model']}"]
    if s.get("total_steps"):
        lines.append(f"step {s['step']}/{s['total_steps']} ({(s['progress'] or 0) * 100:.0f}%)  "
                     f"loss {s['last_loss']}  eval {s['eval_loss']}  {s['tokens_per_s'] or 0:.0f} tok/s  "
                     f"eta {_dur(s.get('eta_s'))}  elapsed {_dur(s.get('elapsed_s'))}  {s.get('device') or ''}")
    if s.get("error"):
        lines.append(f"error: {s['error']}")
    if s.get("model_name"):
        lines.append(f"model: {s['model_name']}")
    actual = s.get("actual") or {}
    if "together_estimate_usd" in actual:  # a Together run: its own price estimate beside Nursery's and the bill
        usd = lambda v: "n/a" if v is None else f"${float(v):.4f}"  # noqa: E731
        lines.append(f"price: Together's estimate {usd(actual.get('together_estimate_usd'))}, Nursery's estimate "
                     f"{usd(actual.get('nursery_estimate_usd'))}, billed {usd(actual.get('cost_usd'))}")
    return "\n".join(lines)


def _human_jobs(rows: list[dict]) -> str:
    if not rows:
        return "no jobs"
    return "\n".join(f"{r['id']}  {r['status']:<11} {r['kind']:<6} {r['dataset']} → {r['output_name']} "
                     f"step {r['step']}/{r['total_steps']}" for r in rows)


def _human_models(rows: list[dict]) -> str:
    out = []
    for r in rows:
        if r["kind"] == "base":
            out.append(f"{r['name']:<32} base    {r['family']:<7} {'local' if r['local'] else 'hub'}")
        else:
            ev = (r.get("evaluation") or {}).get("ast_accuracy")
            out.append(f"{r['name']:<32} adapter base={r['base_model']} data={r['dataset']} "
                       f"loss={r['final_loss']} eval_loss={r['eval_loss']}" + (f" acc={ev}" if ev is not None else ""))
    return "\n".join(out)


def _api():
    from ..jobs import api
    return api


def _registry():
    from .. import registry
    return registry


def register(sub) -> None:
    Command(sub, "estimate-cost", "estimate tokens, FLOPs, memory, time and $ of training a dataset", _estimate,
            _human_estimate) \
        .arg("dataset").arg("--base-model", default="smollm2-135m", help="alias or local model directory") \
        .arg("--epochs", type=float, default=None, help="epochs (default: the training default)") \
        .arg("--remeasure", action="store_true",
             help="time a few training steps on this machine again instead of reusing the kept measurement") \
        .arg("--provider", default=None,
             help="also the provider's own price beside Nursery's (together: uploads the splits to price them, "
                  "then deletes them)")
    train = Command(sub, "train-local", "train a LoRA adapter on this machine (queued as a background job)",
                    _train_local, _human_status) \
        .arg("dataset").arg("--base-model", default="smollm2-135m", help="alias or local model directory") \
        .arg("--output", default=None, help="name of the trained model (default: derived from the dataset)") \
        .arg("--wait", action="store_true", help="run it now in this process and stream progress on stderr")
    add_hyper_args(train)
    Command(sub, "job-status", "status, progress, losses and log tail of a job",
            lambda a: _api().nursery_job_status(a.job_id),
            _human_status).arg("job_id")
    Command(sub, "list-jobs", "training jobs, newest first",
            lambda a: _api().nursery_list_jobs(
                status=a.status, limit=a.limit, offset=a.offset), _human_jobs) \
        .arg("--status", default=None).arg("--limit", type=int, default=50).arg("--offset", type=int, default=0)
    Command(sub, "cancel-job", "cancel a queued or running job (stops within 10 s)",
            lambda a: _api().nursery_cancel_job(a.job_id),
            _human_status).arg("job_id")
    Command(sub, "list-models", "trained adapters with lineage, and the base models",
            lambda a: _registry().nursery_list_models(
                include_base=not a.adapters_only, limit=a.limit, offset=a.offset), _human_models) \
        .arg("--adapters-only", action="store_true").arg("--limit", type=int, default=200) \
        .arg("--offset", type=int, default=0)
    Command(sub, "delete-model", "delete a trained model (its directory and its row)",
            lambda a: _registry().delete_model(a.name)).arg("name")

