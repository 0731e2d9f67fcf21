"""CPU precision: Nursery's trainer in fp32 vs bf16 autocast, same examples, recipe and seed, in one process.

`dtype=bfloat16` trains under bf16 autocast on a CPU (weights and LoRA parameters stay fp32; matrix multiplies
run in bf16, in hardware on CPUs with Intel AMX or AVX512-BF16). This bench prints what that buys:
real (non-padding) tokens per second of the training loop, per wall second and per CPU second of the process,
and the final training loss of each, for the default recipe on the default multi-tool dataset.

The two precisions alternate (fp32, bf16, fp32, bf16 ... `--rounds` times) so that load from other work on a
shared machine falls on both; the ratio is taken from the medians.

Run: .venv/bin/python bench/cpu_precision.py [--num-examples 24] [--epochs 1] [--rounds 2] [--set KEY=VALUE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


from nursery_core.testing import add_bench_arguments, bench_home  # noqa: E402


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_once(recipe, train: list[dict], job: Path) -> dict:
    """One training of `train` under `recipe`; the loop's wall and CPU seconds and its real tokens."""
    from nursery_core.training import trainer as nt

    (job / "data").mkdir(parents=True)
    (job / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in train), encoding="utf-8")
    cfg = recipe.with_overrides(dataset_file="data/train.jsonl", eval_file="", eval_fraction=0.0)
    cpu: dict[str, float] = {}

    def emit(ev: dict) -> None:
        if ev.get("kind") == "start":
            cpu["begin"] = time.process_time()
        elif ev.get("kind") == "progress":
            cpu["end"] = time.process_time()

    m = nt.train(cfg, job, emit=emit)
    return {"loop_s": m["train_seconds"], "loop_cpu_s": cpu["end"] - cpu["begin"], "real_tokens": m["real_tokens"],
            "tokens_per_s": m["real_tokens"] / m["train_seconds"],
            "tokens_per_cpu_s": m["real_tokens"] / max(1e-9, cpu["end"] - cpu["begin"]),
            "final_loss": m["final_loss"], "steps": m["steps"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-examples", type=int, default=24, help="training examples (default tools, low, seed 0)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="fp32/bf16 pairs, alternated")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field")
    add_bench_arguments(ap)
    args = ap.parse_args(argv)

    home = bench_home(args.home, "nursery-precision-")
    from nursery_core.base_models import EMBEDDED_ALIAS
    from nursery_core.cli.training import parse_setting
    from nursery_core.data.generator import generate_examples
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    from nursery_core.testing import link_embedded_base
    from nursery_core.training.config import TrainConfig
    import torch

    link_embedded_base(home, args.base_cache)
    train, _ = generate_examples(DEFAULT_TOOL_NAMES, args.num_examples, "low", seed=0)
    recipe = TrainConfig(base_model=EMBEDDED_ALIAS, epochs=args.epochs, device="cpu").with_overrides(
        **dict(parse_setting(s) for s in args.set))
    print(f"native bf16 on this CPU: {torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()}; {len(train)} examples, {args.epochs} epoch(s); "
          f"load avg {_load()}", flush=True)
    rows: dict[str, list[dict]] = {"float32": [], "bfloat16": []}
    for r in range(args.rounds):
        for dtype in ("float32", "bfloat16"):
            row = run_once(recipe.with_overrides(dtype=dtype), train, home / f"job-{dtype}-{r}")
            rows[dtype].append(row)
            print(f"  round {r + 1} {dtype:<9} {row['tokens_per_s']:7.1f} tok/s  {row['tokens_per_cpu_s']:6.1f} "
                  f"tok/CPU-s  loop {row['loop_s']:6.1f}s  final loss {row['final_loss']:.4f}  "
                  f"[load {_load()}]", flush=True)

    def med(dtype: str, key: str) -> float:
        return statistics.median(x[key] for x in rows[dtype])

    wall = med("bfloat16", "tokens_per_s") / med("float32", "tokens_per_s")
    cpu = med("bfloat16", "tokens_per_cpu_s") / med("float32", "tokens_per_cpu_s")
    print(f"\nratio bf16/fp32 real tokens/s = {wall:.2f} per wall second, {cpu:.2f} per CPU second "
          f"(medians of {args.rounds}); final loss fp32 {med('float32', 'final_loss'):.4f}, "
          f"bf16 {med('bfloat16', 'final_loss'):.4f}")
    if args.json:
        print(json.dumps({"rows": rows, "ratio_wall": wall, "ratio_cpu": cpu}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
