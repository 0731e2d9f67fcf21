"""Shared-prefix packing (training/packing.py): training examples per second with and without it, one run.

The same generated default-tools data (requests_per_tool_set examples in a row offer one tool list), the same
base, LoRA shape, batch size, epochs and threads; the only difference is TrainConfig.share_prefix. Each side
trains on the same examples in the same process, alternating `--rounds` times so the machine's other load falls
on both. Prints examples/s, tokens run per example and the ratio.

    .venv/bin/python bench/prefix_sharing.py [--examples 48] [--batch-size 8] [--rounds 1] [--per-tool-set 8]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--per-tool-set", type=int, default=8, help="generator's requests_per_tool_set")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=float, default=1.0)
    args = ap.parse_args(argv)

    from nursery_core.base_models import EMBEDDED_ALIAS, ensure_local
    from nursery_core.data.generator import generate_examples
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    from nursery_core.training import trainer
    from nursery_core.training.config import TrainConfig

    exs, _ = generate_examples(DEFAULT_TOOL_NAMES, args.examples, "low", seed=0,
                               requests_per_tool_set=args.per_tool_set)
    src = str(ensure_local(EMBEDDED_ALIAS))
    base = TrainConfig(base_model=EMBEDDED_ALIAS, base_model_dir=src, batch_size=args.batch_size, epochs=args.epochs,
                       eval_fraction=0.0, eval_file="", num_threads=args.threads)
    rows: dict[str, list[dict]] = {"plain": [], "shared": []}
    print(f"{args.examples} examples (requests_per_tool_set {args.per_tool_set}), batch {args.batch_size}, "
          f"{args.epochs} epoch(s), {args.threads} thread(s); load average {os.getloadavg()[0]:.2f}", flush=True)
    for _ in range(args.rounds):
        for side in ("plain", "shared"):
            job = Path(tempfile.mkdtemp(prefix="nursery-prefix-")) / "job"
            (job / "data").mkdir(parents=True)
            (job / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in exs))
            t = time.perf_counter()
            m = trainer.train(base.with_overrides(share_prefix=side == "shared"), job)
            rows[side].append({"train_s": m["train_seconds"], "wall_s": time.perf_counter() - t,
                               "examples_per_s": m["examples_per_s"], "real_tokens": m["real_tokens"],
                               "computed_tokens": m["computed_tokens"], "steps": m["steps"],
                               "final_loss": m["final_loss"]})
            r = rows[side][-1]
            print(f"  {side:<6} {r['train_s']:7.1f} s  {r['examples_per_s']:.3f} examples/s  tokens run "
                  f"{r['computed_tokens']} of {r['real_tokens']}  steps {r['steps']}  final loss "
                  f"{r['final_loss']:.4f}  [load {os.getloadavg()[0]:.2f}]", flush=True)

    def total(side: str, key: str) -> float:
        return sum(r[key] for r in rows[side])

    ratio = total("plain", "train_s") / total("shared", "train_s")
    print(f"\nexamples/s shared / plain = {ratio:.2f}  (tokens run: "
          f"{total('shared', 'computed_tokens') / total('plain', 'computed_tokens'):.2f} of plain's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
