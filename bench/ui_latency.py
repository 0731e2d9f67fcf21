"""Interactive inference latency as the Model Cradle sees it, before and after, in one run on this machine:
time to the first streamed token (cold: a fresh pool loads the model; warm: the model is in the pool), decode
tokens/s, and a 2-prompt compare (adapter vs its bare base, the UI's defaults: guarded, greedy, 256 new tokens),
run four times per side: "first" (the first compare of these tools: llama.cpp's base server has no KV of the
system turn yet) and "again" (the median of the three that follow). Then, on llama.cpp: (a) "the first compare
after a restart" (both models' servers closed and started again, warm before the clock runs, the same tools: the
system turn is loaded from the prompt KV store, nursery_core/engines/prompt_kv.py, not computed; run once
without the store, NURSERY_PROMPT_KV_MB=0, and once with it, each saying where the servers' prefixes came from;
torch keeps no prompt KV, so its median compare is the "before") and (b) "the first compare of new tools after prepare()"
(a tool list neither server has seen, read into both by interactive.prepare as the Compare tab does while the
user picks the tools and types the prompts; prepare's own seconds are printed apart, as time spent typing, and
the compare is timed against torch on the same new tools).

"before" is the code path the dashboard used originally, reproduced with today's functions: torch, no
prompt-prefix KV cache (every call runs the whole system turn with the tools again), no stop after the tool
calls (a row writes on until end of turn or max_new_tokens) and the compare's two models one after the other.
"after" is the default now: interactive calls are served by llama.cpp (nursery_core/engines/llamacpp.py: a GGUF
copy of each model, warm in a server process of its own, which keeps the prompts' KV) and stop once their calls
are complete; a compare runs both models at once and each model's prompts at once in its server's slots. Both
sides run the same prompts, guarded and greedy, and the bench checks that the two engines give the same calls
on every prompt.

Measured with the default (f16, the adapter merged, a solo server on 2 threads for streams, batch servers on 1
thread each), torch on both cores, SmolLM2-135M with a random LoRA. The ratio depends on the host: these 2-core
machines are not all the same CPU, and llama.cpp's AVX2 build is what differs most between them (torch's
"before" was 0.73-0.77 s on both hosts below).

Session 12, an AMD EPYC host: it has AVX-512, which this wheel does not use. Two runs, idle: warm first token
0.73 -> 0.09 s (8.2x) and 0.77 -> 0.09 s (8.6x); decode 14 -> 72 tokens/s; the compare "again" 11.4 -> 1.2 s
and 10.8 -> 1.2 s (9.2x both); "first" 2.1x and 2.0x; (a) 4.6x and 5.4x with the store (4.8 s without it); (b) 6.1x
and 6.4x. Here llama.cpp computes a 17-token user turn in 37 ms on two threads and decodes 92 tokens/s on one. A
build for this CPU (GGML_NATIVE, AVX-512) was tried: it was 3-9 % faster and takes 5 minutes to compile on 2
cores, so it was not adopted.

Session 11, an Intel host with AMX, slower for llama.cpp: warm first token
0.77 s -> 0.16 s (4.8x), decode 13.1 -> 33.4 tokens/s, the compare "again" 9.7 s -> 2.2 s (4.3x), "first"
10.4 s -> 9.0 s; (a) 4.3 s with the store against 7.7 s without it; (b) 2.4x. Before the solo server (session 9:
one thread per server for everything) the warm first token was 0.21 s (2.7x against that run's 0.56 s). With
NURSERY_LLAMACPP_TYPE=packaged (the packaged Q4_1 base, the adapter as a LoRA GGUF over it): first token 0.72 s ->
0.15 s (4.9x), compare "again" 9.9 s -> 1.9 s (5.3x), but fewer of torch's calls (bench/llamacpp_fidelity.py).
This xllamacpp wheel is built for AVX2 only (no AVX-512, no AMX on a CPU that has both): a 15-token user turn
takes ~130 ms on two threads, and decoding reads the whole f16 model (270 MB) per token.

    python bench/ui_latency.py [--adapter DIR] [--repeats 3]

--adapter: a trained LoRA adapter directory (adapter_config.json, weights, tokenizer files) to test; without it a
LoRA with small random weights over the embedded SmolLM2 is made on the fly (it answers like the base: text).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


PROMPTS = ["What's the weather in Oslo tomorrow?", "Remember that the garage code is 4821.",
           "What is 17 times 23?", "Search the web for the latest Python release."]
COMPARE_PROMPTS = PROMPTS[:2]
COMPARE_REPEATS = 3  # repeated compares after the first ("again" is their median)


def _random_adapter(base_dir: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                          task_type="CAUSAL_LM", init_lora_weights=False))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.mul_(0.01)
    pm.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out))
    return out


def _stream(model: str, prompt: str, tools: list[dict], after: bool) -> dict:
    """One streamed answer as the Test tab runs it; before = torch without prefix cache or stop, after = the
    default (stream_generate with engine "auto": llama.cpp, stopping after the calls)."""
    from nursery_core.inference import GenerationSettings, analyse_completion, build_messages, get_pool, stream_with
    from nursery_core.interactive import stream_generate

    s = GenerationSettings.of(None, max_new_tokens=256, guarded=True, stop_after_calls=after)
    item = {"messages": build_messages(prompt), "tools": tools}
    pool = get_pool()
    start = time.perf_counter()
    first, chunks = None, []
    report: dict = {}
    if after:
        stream = stream_generate(model, item, s, report=report)
    else:
        report["engine"] = "torch"
        stream = pool.stream(model, lambda m, tok, cache: stream_with(m, tok, item, s))
    for chunk in stream:
        if first is None:
            first = time.perf_counter() - start
        chunks.append(chunk)
    total = time.perf_counter() - start
    text = "".join(chunks)
    n_tokens = len(_tokenizer()(text, add_special_tokens=False)["input_ids"])
    calls = analyse_completion(text, tools)["calls"]
    return {"ttft": first or total, "total": total, "tokens": n_tokens, "text": text, "engine": report.get("engine"),
            "calls": [(c["name"], c["arguments"]) for c in calls],
            "tok_s": (n_tokens - 1) / (total - first) if first and total > first and n_tokens > 1 else None}


_TOK = []


def _tokenizer():
    if not _TOK:
        from nursery_core.base_models import EMBEDDED_ALIAS, load_tokenizer

        _TOK.append(load_tokenizer(EMBEDDED_ALIAS))
    return _TOK[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", default=None, help="a trained adapter directory to test (default: a random LoRA)")
    ap.add_argument("--repeats", type=int, default=3, help="warm calls per side (the median is reported)")
    ap.add_argument("--base-cache", default=os.environ.get("NURSERY_BENCH_BASE",
                                                           str(Path.home() / ".cache" / "nursery-bench")))
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="nursery-ui-latency-"))
    os.environ["NURSERY_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from nursery_core.base_models import EMBEDDED_ALIAS
    from nursery_core.compare import nursery_compare_models
    from nursery_core.data.tools import DEFAULT_TOOLS
    from nursery_core.inference import ModelPool, get_pool
    from nursery_core import inference, paths
    from nursery_core.store import get_store
    from nursery_core.testing import link_embedded_base

    base_dir = link_embedded_base(home, args.base_cache)
    name = "bench-adapter"
    dest = paths.model_dir(name)
    if args.adapter:
        shutil.copytree(args.adapter, dest)
        source = f"adapter {args.adapter}"
    else:
        _random_adapter(base_dir, dest)
        source = "a random LoRA (answers like the base)"
    get_store().add_model({"name": name, "kind": "adapter", "path": str(dest), "base_model": EMBEDDED_ALIAS})
    tools = [t for t in DEFAULT_TOOLS if t["function"]["name"] in
             ("get_weather", "memory_store", "calculator", "web_search")]
    import torch
    # torch on every core, as in a dashboard started by `make run`, whatever OMP_NUM_THREADS this shell has (a
    # "before" held to one thread made session 8's ratios twice what they are)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"# ui_latency: SmolLM2-135M + {source}; torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")

    from nursery_core.engines import llamacpp
    from nursery_core.engines.gguf_cache import served_type, serves_unmerged

    os.environ["NURSERY_ENGINE"] = "auto"
    from nursery_core.engines.llamacpp_server import default_threads, solo_threads

    how = "as a LoRA GGUF over it" if serves_unmerged(dest, base_dir) else "merged into one GGUF"
    print(f"# after: llama.cpp, base GGUF {served_type(base_dir)}, the adapter {how}; {solo_threads()} thread(s) "
          f"per solo server (streams), {default_threads()} per batch server (compare)")
    from nursery_core.interactive import engine_status

    status = engine_status(name)
    if status["engine"] != "llama.cpp":
        print(f"llama.cpp cannot serve here ({status['reason']}): nothing to compare")
        return 1
    # the one-time cost: GGUF copies of the adapter (merged) and of the base, cached under NURSERY_HOME
    for m in (name, EMBEDDED_ALIAS):
        start = time.perf_counter()
        llamacpp.get_llamacpp_pool().served(m)
        print(f"GGUF copy of {m} built and served in {time.perf_counter() - start:.1f} s (once per model version)")

    # cold: fresh pools (what the first Test click of a dashboard process pays), each side
    cold = {}
    for side, after in (("before", False), ("after", True)):
        inference._POOL = ModelPool()  # noqa: SLF001
        llamacpp.get_llamacpp_pool().clear()
        start = time.perf_counter()
        r = _stream(name, PROMPTS[0], tools, after)
        cold[side] = time.perf_counter() - start - (r["total"] - r["ttft"])
    print(f"first token, cold (load + first token): before {cold['before']:.1f} s, after {cold['after']:.1f} s")

    # warm: the model is loaded on both engines
    pool = get_pool()
    pool.warm(name)
    warm = {"before": [], "after": []}
    same_calls = True
    for k in range(args.repeats):
        for prompt in PROMPTS:
            b = _stream(name, prompt, tools, after=False)
            a = _stream(name, prompt, tools, after=True)
            warm["before"].append(b)
            warm["after"].append(a)
            same = b["calls"] == a["calls"]
            same_calls &= same
            if not same:
                print(f"  different calls on {prompt!r}: torch {b['calls']} vs llama.cpp {a['calls']}")
    engines = sorted({r["engine"] for r in warm["after"]})
    med = {side: statistics.median(r["ttft"] for r in rs) for side, rs in warm.items()}
    tps = {side: statistics.median([r["tok_s"] for r in rs if r["tok_s"]] or [0.0]) for side, rs in warm.items()}
    tok = {side: statistics.median(r["tokens"] for r in rs) for side, rs in warm.items()}
    print(f"first token, warm (median of {len(warm['before'])}): before {med['before']:.2f} s, after "
          f"{med['after']:.2f} s -> {med['before'] / med['after']:.1f}x (after served by {', '.join(engines)})")
    for side in ("before", "after"):
        print(f"  {side}: " + ", ".join(f"{r['ttft']:.2f}" for r in warm[side]) + " s")
    print(f"decode: before {tps['before']:.1f} tok/s, after {tps['after']:.1f} tok/s; answer length (median) "
          f"before {tok['before']:.0f}, after {tok['after']:.0f} tokens")
    print(f"same tool calls from torch (before) and llama.cpp (after) on every prompt: {same_calls}")

    # compare: 2 prompts, adapter vs its bare base, as the Compare tab runs it, with both models loaded on both
    # engines (torch pool; llama.cpp servers started). Each side runs it 1 + REPEATS times: "first" is the first
    # compare of these tools (llama.cpp's base server has no KV of the system turn yet), "again" the median of
    # the repeats (torch, which keeps no prompt KV, costs the same)
    pool.warm(EMBEDDED_ALIAS)
    llamacpp.get_llamacpp_pool().served(EMBEDDED_ALIAS)
    times: dict[str, list[float]] = {}
    results = {}

    def compare(side: str, tool_list: list[dict]) -> float:
        os.environ["NURSERY_ENGINE"] = "auto" if side == "after" else "torch"
        start = time.perf_counter()
        results[side] = nursery_compare_models(name, EMBEDDED_ALIAS, COMPARE_PROMPTS, tools=tool_list,
                                               max_new_tokens=256, stop_after_calls=side == "after")
        os.environ["NURSERY_ENGINE"] = "auto"
        return time.perf_counter() - start

    same = True

    def same_calls_now() -> bool:
        return all(ra["a"]["calls"] == rb["a"]["calls"] and ra["b"]["calls"] == rb["b"]["calls"]
                   for ra, rb in zip(results["before"]["rows"], results["after"]["rows"]))

    for side in ("before", "after"):
        times[side] = [compare(side, tools) for _ in range(1 + COMPARE_REPEATS)]
    same &= same_calls_now()
    served = {k: v["engine"] for k, v in results["after"]["engines"].items()}
    b, a = times["before"][0], times["after"][0]
    print(f"compare, 2 prompts, adapter vs base (first of these tools): before {b:.1f} s, after {a:.1f} s -> "
          f"{b / a:.1f}x")
    b, a = (statistics.median(times[side][1:]) for side in ("before", "after"))
    print(f"compare, 2 prompts, adapter vs base (again, median of {COMPARE_REPEATS}): before {b:.1f} s, after "
          f"{a:.1f} s -> {b / a:.1f}x")
    for side in ("before", "after"):
        print(f"  {side}: " + ", ".join(f"{t:.1f}" for t in times[side]) + " s")

    # (a) the first compare after a restart (the dashboard restarted, or both servers evicted): new servers,
    # started warm before the clock runs, the same tools; their system turn comes from the prompt KV store
    # (engines/prompt_kv.py) instead of being computed. torch keeps no prompt KV: its cost is "before" above
    # (a) is run twice: without the store (NURSERY_PROMPT_KV_MB=0: what a restart cost before it), then with it;
    # how each server's prefix got into its slots is recorded (engines/llamacpp.fill_prefix's answer)
    filled: list[str] = []
    fill = llamacpp.fill_prefix

    def recording_fill(runner, slot, ids):
        filled.append(fill(runner, slot, ids))
        return filled[-1]

    llamacpp.fill_prefix = recording_fill  # type: ignore[assignment]
    restarts = {}
    for label, mb in (("without the store", "0"), ("with the store", None)):
        if mb is None:
            os.environ.pop("NURSERY_PROMPT_KV_MB", None)
        else:
            os.environ["NURSERY_PROMPT_KV_MB"] = mb
        llamacpp.get_llamacpp_pool().clear()
        for m in (name, EMBEDDED_ALIAS):
            llamacpp.get_llamacpp_pool().served(m)
        filled.clear()
        restarts[label] = (compare("after", tools), sorted(filled))
        same &= same_calls_now()
    llamacpp.fill_prefix = fill  # type: ignore[assignment]
    b = statistics.median(times["before"])
    (off, off_src), (on, on_src) = restarts["without the store"], restarts["with the store"]
    print(f"compare after a restart (servers started again, same tools): after {on:.1f} s with the prompt KV "
          f"store (prefixes: {', '.join(on_src)}), {off:.1f} s without it ({', '.join(off_src)}); before "
          f"{b:.1f} s (torch's median: it keeps no prompt KV) -> {b / on:.1f}x")

    # (b) the first compare of a new tool list after prepare(): the Compare tab reads the tool list into warm
    # servers while the user picks the tools and types the prompts, so prepare's seconds are time spent typing,
    # not waiting for the answer; printed apart
    from nursery_core.interactive import prepare

    new_tools = [t for t in DEFAULT_TOOLS if t["function"]["name"] in
                 ("get_current_time", "memory_search", "send_email", "create_calendar_event")]
    prepared = [prepare(m, new_tools) for m in (name, EMBEDDED_ALIAS)]
    new_after = compare("after", new_tools)
    new_before = compare("before", new_tools)
    same &= same_calls_now()
    print(f"compare of new tools after prepare(): before {new_before:.1f} s, after {new_after:.1f} s -> "
          f"{new_before / new_after:.1f}x; prepare() itself took "
          + " + ".join(f"{p['seconds']:.1f} s ({p['model']}: {p['source']}, {p['tokens']} tokens)" for p in prepared)
          + " while the user picks the tools and types the prompts (not counted in 'after')")
    print(f"  same calls: {same}; after served by {served}; load average {os.getloadavg()[0]:.1f}")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
