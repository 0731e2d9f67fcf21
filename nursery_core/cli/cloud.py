"""CLI for cloud training: train-cloud (Vast.ai, an SSH server, RunPod, Together.ai, Replicate, Modal), list-offers,
reap-instances (Vast.ai instances and RunPod pods), providers."""
from __future__ import annotations

import signal
import sys

from ..status import JobStatus
from . import Command, CommandResult


def _train_cloud(args):
    from ..jobs.train_cloud import nursery_train_cloud
    from ..jobs.api import nursery_cancel_job, wait_for_job
    from ..run_options import run_arguments
    from .training import _hyper, print_progress

    cloud = run_arguments(args)[1]
    status = nursery_train_cloud(args.dataset, base_model=args.base_model, output_name=args.output, **cloud,
                                 **_hyper(args))
    if not args.wait:
        return status
    from ..jobs.backends.runpod import terminate_live_pods
    from ..jobs.backends.vast import destroy_live_instances
    from ..jobs.runner import JobRunner

    runner = JobRunner(kinds=[cloud.get("provider", "vast")]).start(recover=False)
    print(f"job {status['id']} queued on {cloud.get('provider', 'vast')} (output model {status['output_name']})", file=sys.stderr)

    def on_term(signum, frame):  # SIGTERM: same path as Ctrl-C (cancel, then destroy whatever is left)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)

    try:
        final = wait_for_job(status["id"], on_event=print_progress)
    except KeyboardInterrupt:
        print("interrupted: cancelling the run and destroying its machine", file=sys.stderr)
        try:
            nursery_cancel_job(status["id"])
            final = wait_for_job(status["id"], timeout=120)
        except KeyboardInterrupt:
            final = None
        finally:
            destroy_live_instances("interrupted")
            terminate_live_pods("interrupted")
        if final is None:
            from ..jobs.api import nursery_job_status
            final = nursery_job_status(status["id"])
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.shutdown(timeout=60)
    return CommandResult(final, 0 if final["status"] == JobStatus.SUCCEEDED else 1)


def _list_offers(args):
    from ..cloud.offers import search_offer_rows

    return search_offer_rows(max_dph=args.max_dph, min_gpu_ram_gb=args.min_gpu_ram_gb, gpu=args.gpu,
                             disk_gb=args.disk_gb or 20.0, limit=args.limit)


def _human_offers(rows: list[dict]) -> str:
    if not rows:
        return "no offer fits (raise --max-dph or lower --min-gpu-ram)"
    head = f"{'id':>10}  {'GPU':<14} {'VRAM':>6} {'$/h':>7} {'rel.':>6}  where"
    return "\n".join([head] + [f"{r['id']:>10}  {r['gpu_name']:<14} {r['gpu_ram_gb']:>5.0f}G {r['dph_total']:>7.3f} "
                               f"{r['reliability']:>6.3f}  {r['geolocation'] or ''}" for r in rows])


def _reap(args):
    from ..jobs.reaper import nursery_reap_instances
    return nursery_reap_instances(dry_run=args.dry_run)


def _human_reap(r: dict) -> str:
    if not r["orphans"]:
        return f"no orphaned nursery instances ({len(r['kept'])} in use)"
    verb = "would destroy" if r["dry_run"] else "destroyed"
    lines = [f"{verb} {len(r['orphans']) if r['dry_run'] else len(r['destroyed'])} instance(s):"]
    lines += [f"  {o.get('provider', 'vast')} {o['instance_id']} {o['label']} ({o['job_state']}) {o['gpu_name']} "
              f"${o['dph_total'] or 0:.3f}/h" for o in r["orphans"]]
    lines += [f"  failed {e.get('provider', 'vast')} {e['instance_id'] or ''}: {e['error']}" for e in r["errors"]]
    return "\n".join(lines)


def _providers(args):
    from ..cloud.providers import provider_table
    return provider_table()


def register(sub) -> None:
    from ..options import add_arguments
    from ..run_options import cloud_options
    from .training import _human_status, add_hyper_args

    c = Command(sub, "train-cloud", "train a LoRA adapter on a rented Vast.ai GPU or your own GPU server over SSH",
                _train_cloud, _human_status)
    c.arg("dataset").arg("--base-model", default="smollm2-135m", help="alias or local model directory") \
        .arg("--output", default=None, help="name of the trained model (default: derived from the dataset)") \
        .arg("--wait", action="store_true", help="run it now in this process and stream progress on stderr")
    add_hyper_args(c, cloud=True)
    offers = Command(sub, "list-offers", "live Vast.ai offers that fit, cheapest first", _list_offers, _human_offers)
    add_arguments(offers.parser, cloud_options(["max_dph", "min_gpu_ram_gb", "gpu", "disk_gb"]))
    offers.arg("--limit", type=int, default=20)
    Command(sub, "reap-instances", "destroy nursery-* Vast.ai instances and RunPod pods that no live job uses", _reap, _human_reap) \
        .arg("--dry-run", action="store_true", help="only list them")
    Command(sub, "cloud-providers", "the provider table: supported providers and which keys are set",
            _providers)
