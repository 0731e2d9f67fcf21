"""Guarded decoding's cost on this machine: the guard's time per token (ms, median and p95) as greedy decoding runs
it, the full mask per token (fill the vocabulary bitmask and apply it to the logits: what sampling pays), and
end-to-end tokens/s free vs guarded, in one run over the default tools' eval prompts with the embedded
SmolLM2-135M (or an adapter of it).

    .venv/bin/python bench/guarded_decoding.py [--prompts 8] [--max-new-tokens 64] [--batch-size 4]
                                               [--adapter DIR] [--threads N]

Also prints the one-time costs (llguidance tokenizer, grammar check, first matcher) and how many guarded outputs
differ from the free ones, and whether any of those free outputs was valid (it never should be: greedy guarded
decoding only removes invalid continuations). Runs in a throw-away NURSERY_HOME; the materialised base is cached.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8, help="eval prompts of the default tools to run")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--adapter", default=None, help="a trained adapter directory of the embedded base")
    ap.add_argument("--base-cache", default=os.environ.get("NURSERY_BENCH_BASE",
                                                           str(Path.home() / ".cache" / "nursery-bench")),
                    help="where the materialised SmolLM2 is kept between runs")
    args = ap.parse_args(argv)
    os.environ["NURSERY_HOME"] = tempfile.mkdtemp(prefix="nursery-guard-bench-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from nursery_core.base_models import EMBEDDED_ALIAS, load_base, materialise_embedded
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    from nursery_core.datasets import load_examples
    from nursery_core.guard import processor
    from nursery_core.guard.grammar import plan_for
    from nursery_core.inference import _stop_ids, generate_with
    from nursery_core.training.rendering import eval_prompts

    if args.threads:
        torch.set_num_threads(args.threads)
    base_dir = materialise_embedded(Path(args.base_cache) / EMBEDDED_ALIAS)
    nursery_generate_data(DEFAULT_TOOL_NAMES, max(60, args.prompts * 10), seed=0, name="bench", eval_fraction=0.1)
    examples = load_examples("bench", "eval", limit=args.prompts)
    prompts = [{"messages": eval_prompts(ex)[0], "tools": ex["tools"]} for ex in examples]
    model, tok, _ = load_base(str(base_dir))
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()

    # One-time costs, paid once per process (tokenizer) and once per tool list (grammar, matcher).
    t0 = time.perf_counter()
    processor._state(tok, _stop_ids(tok))
    t1 = time.perf_counter()
    plans = [plan_for(p["tools"]) for p in prompts]
    t2 = time.perf_counter()
    for g in dict.fromkeys(p.grammar for p in plans if p.guarded):
        processor.new_matcher(tok, _stop_ids(tok), g)
    t3 = time.perf_counter()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch threads {torch.get_num_threads()}")
    print(f"one-time: llguidance tokenizer {t1 - t0:.2f} s; grammar build+check {1000 * (t2 - t1):.0f} ms for "
          f"{len(set(p.grammar for p in plans))} tool lists; first matchers {1000 * (t3 - t2):.0f} ms")

    guards: list = []
    made = processor.ToolCallGuard.for_rows

    def keep(cls, *a, **kw):
        guards.append(made(*a, **kw))
        return guards[-1]

    processor.ToolCallGuard.for_rows = classmethod(keep)
    results = {}
    for mode in ("free", "guarded"):
        started = time.perf_counter()
        out = generate_with(model, tok, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            guarded=mode == "guarded")
        wall = time.perf_counter() - started
        tokens = sum(len(tok.encode(o, add_special_tokens=False)) + 1 for o in out)
        results[mode] = (out, wall, tokens)
        print(f"{mode:>8}: {len(prompts)} prompts, {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tokens/s "
              f"({out.decoding['decoding']})")

    # Greedy (as run): a row costs one token check unless its top token is refused, then a full mask.
    greedy_ms, checked, masked, total_guard = [], 0, 0, 0.0
    for g in guards:
        for seconds, active, full in g.steps:
            total_guard += seconds
            if active:
                greedy_ms.append(1000 * seconds / active)
                checked, masked = checked + active, masked + full
    # Full mask per token (sampling, and greedy's refused rows): replay the guarded answers token by token.
    full_ms = []
    vocab = model.get_output_embeddings().weight.shape[0]
    for p, text in zip(plans, results["guarded"][0]):
        if not p.guarded:
            continue
        m, _ = processor.new_matcher(tok, _stop_ids(tok), p.grammar)
        bitmask = torch.zeros(1, (processor._state(tok, _stop_ids(tok)).ll.vocab_size + 31) // 32,
                              dtype=torch.int32)
        logits = torch.randn(1, vocab)
        for t in tok.encode(text, add_special_tokens=False) + [_stop_ids(tok)[0]]:
            started = time.perf_counter()
            m.unsafe_compute_mask_ptr(bitmask.data_ptr(), bitmask.numel() * 4)
            processor.mask_logits(logits, [0], processor.allowed_tokens(bitmask, vocab))
            full_ms.append(1000 * (time.perf_counter() - started))
            if not m.consume_token(t):
                break
    (free, f_wall, _), (guarded, g_wall, _) = results["free"], results["guarded"]
    print(f"guard per token, greedy as run: median {statistics.median(greedy_ms):.3f} ms, p95 "
          f"{_pct(greedy_ms, 0.95):.3f} ms ({masked} of {checked} row-steps needed the full mask); guard total "
          f"{total_guard:.2f} s = {100 * total_guard / g_wall:.1f}% of the guarded run")
    print(f"full mask per token (fill + apply, {vocab} logits): median {statistics.median(full_ms):.3f} ms, p95 "
          f"{_pct(full_ms, 0.95):.3f} ms, max {max(full_ms):.1f} ms over {len(full_ms)} tokens")
    print(f"end to end: guarded/free time {g_wall / f_wall:.2f} (the rest of the gap is different output lengths "
          f"and machine noise)")
    grammar_ok = []
    for p, f in zip(plans, free):
        grammar_ok.append(p.guarded and processor.accepts(tok, _stop_ids(tok), p.grammar, f, ended=False))
    changed = [i for i, (f, g) in enumerate(zip(free, guarded)) if f != g]
    print(f"outputs changed by the guard: {len(changed)} of {len(prompts)}; of those, free output valid: "
          f"{sum(grammar_ok[i] for i in changed)} (expected 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
