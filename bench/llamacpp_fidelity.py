"""Does llama.cpp answer as torch does? Interactive calls (Test, Compare, serve) run on llama.cpp while evaluations
run on torch, so the two must make the same greedy calls. This replays the guarded evaluations a
`bench/quality.py` run stored in its NURSERY_HOME (torch's answers, request by request) through the llama.cpp engine
with the same settings, and prints per dataset how many requests got the same calls and the same text, and the
AST accuracy of each engine.

    python bench/quality.py --home /tmp/nursery-quality-X            # once: trains, evaluates on torch
    python bench/llamacpp_fidelity.py --home /tmp/nursery-quality-X [--model quality-adapter] [--datasets a,b]

NURSERY_LLAMACPP_TYPE (f16, q8_0, packaged) chooses the base's GGUF; --adapters merged|lora how the adapter is
served (default: as the dashboard serves it, engines/gguf_cache.adapter_mode).

Measured in session 11 on run O's adapter (SmolLM2-135M + the default recipe, bench/QUALITY.md; 174 requests:
the golden set 109, BFCL simple_python 40 and irrelevance 25), one llama.cpp thread, against torch's float32:

| llama.cpp serves | same calls | golden | simple | irrelevance | golden AST (torch 42.2 %) | simple AST (72.5 %) |
|---|---|---|---|---|---|---|
| f16, the adapter merged into one GGUF (the default) | **171 / 174** | 107 | 39 | 25 | 42.2 % | 72.5 % |
| f16 base + the adapter as a LoRA GGUF (`--adapters lora`) | 172 / 174 | 108 | 39 | 25 | 43.1 % | 72.5 % |
| packaged Q4_1 base + LoRA GGUF (`NURSERY_LLAMACPP_TYPE=packaged`) | 160 / 174 | 98 | 39 | 23 | 43.1 % | 75.0 % |

The packaged Q4_1 holds torch's very weights (the HF copy is that file dequantized), but llama.cpp multiplies a
quantized matrix by activations rounded to 8 bits, so near-ties go the other way on 1 request in 12: accuracy is
the same, the calls are not. Each run took about 8 minutes on this 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="the NURSERY_HOME of a bench/quality.py run")
    ap.add_argument("--model", default="quality-adapter", help="the evaluated model to replay")
    ap.add_argument("--datasets", default=None, help="comma-separated datasets (default: every guarded evaluation)")
    ap.add_argument("--adapters", choices=("auto", "merged", "lora"), default=None,
                    help="how the adapter is served (NURSERY_LLAMACPP_ADAPTERS)")
    ap.add_argument("--json", action="store_true", help="print one JSON document at the end")
    args = ap.parse_args(argv)
    os.environ["NURSERY_HOME"] = str(Path(args.home).resolve())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["NURSERY_ENGINE"] = "auto"
    if args.adapters:
        os.environ["NURSERY_LLAMACPP_ADAPTERS"] = args.adapters

    from nursery_core.datasets import load_examples
    from nursery_core.evaluation.api import evaluation_details, score_outputs
    from nursery_core.inference import TEXT_ANSWER_TOKENS, GenerationSettings, analyse_completion, resolve_model
    from nursery_core.interactive import engine_status, generate_batch
    from nursery_core.store import get_store
    from nursery_core.training.rendering import eval_prompts

    status = engine_status(args.model)
    if status["engine"] != "llama.cpp":
        print(f"llama.cpp cannot serve here ({status['reason']}): nothing to compare")
        return 1
    ref = resolve_model(args.model)
    served = status["label"]
    print(f"# {args.model} on llama.cpp: {served}; base {ref.base_dir.name}")
    summary = {}
    wanted = [d for d in (args.datasets or "").split(",") if d]
    for ev in reversed(get_store().list_evaluations(model=args.model)):
        settings = json.loads(ev["settings"]) if isinstance(ev["settings"], str) else (ev["settings"] or {})
        if settings.get("decoding") != "guarded" or (wanted and ev["dataset"] not in wanted):
            continue
        details = evaluation_details(ev["id"])
        examples = load_examples(ev["dataset"], ev["split"])
        if len(examples) != len(details) or any(e.get("id", d["id"]) != d["id"] for e, d in zip(examples, details)):
            print(f"  {ev['dataset']}: the dataset no longer holds the evaluated requests; skipped")
            continue
        prompts = [{"messages": eval_prompts(e)[0], "tools": e.get("tools")} for e in examples]
        s = GenerationSettings.of(None, max_new_tokens=settings.get("max_new_tokens", 256), guarded=True,
                                  text_tokens=TEXT_ANSWER_TOKENS)
        start = time.perf_counter()
        out = generate_batch(args.model, prompts, s, engine="auto")
        seconds = time.perf_counter() - start
        same_calls = same_text = 0
        for e, d, text in zip(examples, details, out):
            calls = [(c["name"], c["arguments"]) for c in analyse_completion(text, e.get("tools"))["calls"]]
            same_calls += calls == [(c["name"], c["arguments"]) for c in d["calls"]]
            same_text += text.strip() == str(d["output"]).strip()
        _, metrics = score_outputs(examples, list(out), "nursery")
        row = {"n": len(examples), "same_calls": same_calls, "same_text": same_text,
               "ast_torch": ev["ast_accuracy"], "ast_llamacpp": metrics.get("ast_accuracy"),
               "seconds": round(seconds, 1), "torch_reruns": sum("run on torch" in n for n in out.engine["notes"])}
        summary[ev["dataset"]] = row
        print(f"{ev['dataset']}: same calls {same_calls}/{len(examples)}, same text {same_text}/{len(examples)}; "
              f"AST torch {row['ast_torch']:.1%}, llama.cpp {row['ast_llamacpp']:.1%} ({seconds:.0f} s)",
              flush=True)
    total = sum(r["n"] for r in summary.values())
    same = sum(r["same_calls"] for r in summary.values())
    print(f"same calls on {same}/{total} requests")
    if args.json:
        print(json.dumps({"model": args.model, "served": served, "datasets": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
