"""Quality benchmark: does Nursery's default recipe teach the embedded SmolLM2-135M to call the default tools?

Generates the default multi-tool dataset (all DEFAULT_TOOLS), trains the embedded default with the default
TrainConfig through the jobs API on this machine's CPU, evaluates the adapter on the held-out split with the
BFCL-style checker, and prints the bare base model's score beside it. Target: >= 90% AST accuracy after
< 15 minutes of CPU training. Runs in a throw-away NURSERY_HOME (the materialised base is cached).

    .venv/bin/python bench/quality.py [--num-examples 210] [--variation low] [--set learning_rate=3e-3 ...]

What was tried, and the measurements, are in bench/QUALITY.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-examples", type=int, default=210,
                    help="examples to generate (210, 157 trained: with the default recipe 13-14 minutes of a "
                         "2-core CPU; 250 measured 834-915 s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variation", default="low", choices=["low", "medium", "high"],
                    help="generator variation level (low: at most 3 tools per example, no distractors)")
    ap.add_argument("--eval-fraction", type=float, default=0.25,
                    help="share of the generated examples held out for the evaluation")
    ap.add_argument("--max-new-tokens", type=int, default=160,
                    help="generation cap in the evaluation (a two-call answer is about 120 tokens)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a TrainConfig field (JSON value), e.g. learning_rate=2e-3")
    ap.add_argument("--eval-limit", type=int, default=None, help="evaluate on at most N held-out examples")
    ap.add_argument("--skip-base", action="store_true", help="do not evaluate the bare base model")
    ap.add_argument("--base-cache", default=os.environ.get("NURSERY_BENCH_BASE",
                                                           str(Path.home() / ".cache" / "nursery-bench")),
                    help="where the materialised SmolLM2 is kept between runs")
    ap.add_argument("--home", default=None, help="NURSERY_HOME to use (default: a temporary directory)")
    ap.add_argument("--json", action="store_true", help="print one JSON document at the end")
    args = ap.parse_args(argv)

    home = Path(args.home or tempfile.mkdtemp(prefix="nursery-quality-"))
    os.environ["NURSERY_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from nursery_core.base_models import EMBEDDED_ALIAS, materialise_embedded
    from nursery_core.cli.training import parse_setting
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    from nursery_core.evaluate import nursery_evaluate
    from nursery_core.jobs.api import nursery_job_status, nursery_train_local
    from nursery_core.jobs.runner import JobRunner
    from nursery_core.status import JobStatus
    from nursery_core.training.config import TrainConfig

    cached = materialise_embedded(Path(args.base_cache) / EMBEDDED_ALIAS)
    link = home / "base_models" / EMBEDDED_ALIAS
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(cached, target_is_directory=True)

    overrides = dict(parse_setting(item) for item in args.set)
    recipe = TrainConfig().with_overrides(**overrides).validate()
    n = args.num_examples
    t0 = time.time()
    ds = nursery_generate_data(DEFAULT_TOOL_NAMES, n, args.variation, seed=args.seed, name="quality",
                               eval_fraction=args.eval_fraction)
    print(f"load average at start: {_load()}")
    print(f"dataset ({args.variation}): {ds['num_examples']} examples {ds['categories']}, split {ds['split']['train']} train / "
          f"{ds['split']['eval']} eval ({time.time() - t0:.0f}s)", flush=True)

    runner = JobRunner().start()
    try:
        job = nursery_train_local("quality", EMBEDDED_ALIAS, "quality-adapter", **overrides)
        last = None
        while True:
            st = nursery_job_status(job["id"], log_lines=0)
            if JobStatus(st["status"]).is_final:
                break
            if st.get("step") != last:
                last = st.get("step")
                print(f"  step {st.get('step')}/{st.get('total_steps')} loss {st.get('last_loss')} "
                      f"eta {st.get('eta_s')}s", flush=True)
            time.sleep(5)
    finally:
        runner.shutdown()
    if st["status"] != JobStatus.SUCCEEDED.value:
        print(f"training {st['status']}: {st.get('error')}", file=sys.stderr)
        return 1
    from nursery_core.store import get_store

    model = get_store().get_model("quality-adapter")
    train_s = (model.get("metrics") or {}).get("train_seconds") or st.get("elapsed_s")
    metrics = model.get("metrics") or {}
    print(f"trained in {train_s:.0f}s [load avg {_load()}] (final loss {model.get('final_loss')}, eval loss "
          f"{model.get('eval_loss')}, {metrics.get('tokens_per_s')} real tokens/s, trunk cache "
          f"{metrics.get('trunk_cache')})", flush=True)

    t1 = time.time()
    tuned = nursery_evaluate("quality-adapter", "quality", split="eval", limit=args.eval_limit, batch_size=8,
                             max_new_tokens=args.max_new_tokens)
    eval_s = time.time() - t1
    base = None if args.skip_base else nursery_evaluate(EMBEDDED_ALIAS, "quality", split="eval",
                                                        limit=args.eval_limit, batch_size=8,
                                                        max_new_tokens=args.max_new_tokens)
    keys = ["ast_accuracy", "format_validity", "call_recall", "no_call_recall", "name_accuracy", "arg_f1",
            "schema_validity"]
    print(f"\n{'metric':<18} {'adapter':>8} {'base':>8}")
    for k in keys:
        a = tuned["metrics"][k]
        b = base["metrics"][k] if base else None
        print(f"{k:<18} {'-' if a is None else f'{a:.3f}':>8} {'-' if b is None else f'{b:.3f}':>8}")
    for cat, m in tuned["metrics"]["per_category"].items():
        print(f"  [{cat}] n={m['num_examples']} ast={m['ast_accuracy']}")
    acc = tuned["metrics"]["ast_accuracy"] or 0.0
    ok = acc >= 0.9 and train_s < 15 * 60
    print(f"\nrecipe: {json.dumps({k: getattr(recipe, k) for k in ('learning_rate', 'r', 'alpha', 'dropout', 'epochs', 'batch_size', 'grad_accum', 'lora_layers', 'max_length', 'target_modules')})}")
    print(f"examples {n} ({args.variation}); load avg at end {_load()}; train {train_s:.0f}s; eval {eval_s:.0f}s for {tuned['num_examples']} examples; "
          f"AST {acc:.1%} vs base {base['metrics']['ast_accuracy'] if base else '-'}; target met: {ok}")
    if args.json:
        print(json.dumps({"train_seconds": train_s, "ast_accuracy": acc, "base": base and base["metrics"],
                          "adapter": tuned["metrics"], "recipe": recipe.to_dict(), "num_examples": n}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
