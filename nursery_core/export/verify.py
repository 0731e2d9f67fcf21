"""Proves an export before it ships: the GGUF, run by llama.cpp (xllamacpp's embedded llama-server, the engine
Ollama runs), must tokenize the rendered prompts like the HF tokenizer and make the same greedy tool calls
as the merged HF model on the model's eval prompts.

Both sides decode free: unconstrained greedy decoding, no guarded-decoding grammar, because Ollama runs the GGUF
free too (Nursery's guard lives in its own inference, not in the Modelfile), so this is what Ollama users get.

Outputs are compared on token ids decoded by the HF tokenizer: llama.cpp drops control tokens from its own
text, which would hide a `<tool_call>` registered as a special token. The HF side checks llama.cpp's answer
in one forward pass and only decodes step by step past a disagreement (`hf_greedy_against`): the same result
as plain greedy decoding, at a fraction of the CPU time.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ..engines.llamacpp_server import GGUFRunner  # noqa: F401  (verification runs the GGUF with it)
from ..errors import InvalidInput, NurseryError

DEFAULT_THRESHOLD = 0.95
DEFAULT_LIMIT = 20
DEFAULT_MAX_NEW_TOKENS = 96
DECODING = "free"  # what verification runs: unconstrained greedy, as Ollama decodes
DECODING_NOTE = ("Verified with free (unconstrained) greedy decoding, which is how Ollama runs this model: "
                 "Nursery's guarded decoding (tool calls constrained to the offered schemas) does not apply in "
                 "Ollama.")

Progress = Callable[[str, dict], None]


def bindings_available() -> bool:
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        return False
    return True


def _builtin_prompts() -> list[dict]:
    """A handful of requests over the default tools, for models without an eval split."""
    from ..data.tools import DEFAULT_TOOLS

    asks = ["What is 12.5 times 8?", "Remember that the garage code is 4821.", "What time is it in Tokyo?",
            "What's the weather like in Lisbon?", "Search the web for the latest Python release.",
            "Hello! How are you today?"]
    return [{"id": f"builtin-{i}", "messages": [{"role": "user", "content": q}], "tools": DEFAULT_TOOLS,
             "gold": None} for i, q in enumerate(asks)]


def eval_prompt_set(dataset: str | None, limit: int = DEFAULT_LIMIT) -> tuple[list[dict], str]:
    """(prompts, source): the dataset's eval split cut before the first assistant turn, else built-ins."""
    from ..training.rendering import eval_prompts

    if dataset:
        try:
            from ..datasets import load_examples

            examples = load_examples(dataset, "eval", limit=limit)
        except (NurseryError, OSError, ValueError):  # dataset deleted, its file gone or not JSONL: the built-ins
            examples = []
        prompts = []
        for ex in examples:
            msgs, gold = eval_prompts(ex)
            if msgs and msgs[-1]["role"] in ("user", "tool"):
                prompts.append({"id": ex.get("id"), "messages": msgs, "tools": ex.get("tools"), "gold": gold})
        if prompts:
            return prompts[:limit], f"dataset {dataset} (eval split)"
    return _builtin_prompts()[:limit], "built-in prompts"


def _cut_ids(ids: list[int], stop_ids: set[int]) -> list[int]:
    for k, t in enumerate(ids):
        if t in stop_ids:
            return ids[:k]
    return ids


def _stop_ids(tokenizer) -> set[int]:
    """Token ids that end an assistant turn on either side (eos, the family's end-of-turn, <|endoftext|>)."""
    from ..training.rendering import end_of_turn

    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for text in (end_of_turn(tokenizer), "<|endoftext|>", "<|eot_id|>", "</s>"):
        tid = tokenizer.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return ids


def hf_greedy_against(model, tok, prompt_ids: list[int], candidate: list[int], stop_ids: set[int],
                      max_new_tokens: int) -> list[int]:
    """The HF model's greedy continuation of prompt_ids (cut before its stop token), found by checking
    llama.cpp's `candidate` in one forward pass and generating only past the first disagreement.

    Exactly what step-by-step greedy decoding gives (each position's argmax given the same prefix), at the cost
    of one prefill when the two runtimes agree, which on a CPU is minutes less per prompt."""
    import torch

    ids = torch.tensor([prompt_ids + candidate])
    with torch.inference_mode():
        pred = model(input_ids=ids).logits[0, len(prompt_ids) - 1:].argmax(-1).tolist()
    k = next((i for i, t in enumerate(candidate) if pred[i] != t), len(candidate))
    if k == len(candidate) and (k >= max_new_tokens or pred[k] in stop_ids):
        return list(candidate)  # HF makes every choice llama.cpp made, and stops where it stopped
    out = list(candidate[:k]) + [pred[k]]
    if pred[k] in stop_ids:
        return out[:-1]
    if len(out) >= max_new_tokens:
        return out
    full = torch.tensor([prompt_ids + out])
    with torch.inference_mode():
        gen = model.generate(input_ids=full, attention_mask=torch.ones_like(full), do_sample=False,
                             max_new_tokens=max_new_tokens - len(out), eos_token_id=sorted(stop_ids),
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else sorted(stop_ids)[0])
    return _cut_ids(out + gen[0, full.shape[1]:].tolist(), stop_ids)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def verify_export(merged_dir: Path | str, gguf_path: Path | str, prompts: list[dict], *,
                  threshold: float = DEFAULT_THRESHOLD, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Runs both models greedily and free (no grammar) on the prompts. Returns {score, passed, tokenization_ok,
    decoding, rows, ...}: score = share of prompts whose parsed tool calls (names and arguments) are the same."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..base_models import family_of_template
    from ..evaluation.parser import parse_tool_calls
    from ..training.rendering import prepare_tokenizer, render_prompt

    if not prompts:
        raise InvalidInput("no prompts to verify the export with", field="prompts")
    progress = progress or (lambda step, info: None)
    merged_dir = Path(merged_dir)
    started = time.monotonic()
    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    meta_family = None
    meta = merged_dir / "nursery_merge.json"
    if meta.exists():
        import json

        meta_family = json.loads(meta.read_text()).get("family")
    prepare_tokenizer(tok, meta_family or family_of_template(tok.chat_template), keep_installed=True)
    stop_ids = _stop_ids(tok)
    texts = [render_prompt(tok, p["messages"], p.get("tools")) for p in prompts]
    hf_prompt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]

    # llama.cpp side first: it is fast, and its server is closed before the HF model is loaded.
    gguf_rows = []
    with GGUFRunner(gguf_path, n_ctx=max(2048, max(len(x) for x in hf_prompt_ids) + max_new_tokens + 64)) as g:
        adds_bos = bool(g.tokenize("", add_special=True))
        bos = tok.bos_token or ""
        for k, text in enumerate(texts):
            # A template that writes BOS itself (llama3) leaves it to the runtime in Ollama, which adds it.
            run_text = text[len(bos):] if adds_bos and bos and text.startswith(bos) else text
            ids = g.tokenize(run_text, add_special=True)
            out = _cut_ids(g.complete(run_text, max_new_tokens), stop_ids)
            gguf_rows.append((ids, out))
            progress("gguf", {"done": k + 1, "total": len(texts)})

    model = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
    model.eval()
    hf_outs = []
    for k, (prompt_ids, (_, g_out)) in enumerate(zip(hf_prompt_ids, gguf_rows)):
        hf_outs.append(hf_greedy_against(model, tok, prompt_ids, g_out, stop_ids, max_new_tokens))
        progress("hf", {"done": k + 1, "total": len(texts)})
    del model

    rows = []
    for k, p in enumerate(prompts):
        g_ids, g_out = gguf_rows[k]
        g_text = str(tok.decode(g_out, skip_special_tokens=False)).strip()  # one id sequence decodes to one str
        h_text = str(tok.decode(hf_outs[k], skip_special_tokens=False)).strip()
        h_calls, g_calls = parse_tool_calls(h_text).calls, parse_tool_calls(g_text).calls
        user = next((m.get("content") for m in reversed(p["messages"]) if m["role"] == "user"), "")
        rows.append({
            "index": k, "id": p.get("id"), "prompt": _short(user),
            "hf_output": h_text, "gguf_output": g_text,
            "hf_calls": h_calls, "gguf_calls": g_calls,
            "same_call": h_calls == g_calls, "same_text": h_text == g_text,
            "same_tokens": g_ids == hf_prompt_ids[k],
            "prompt_tokens": len(hf_prompt_ids[k]), "gguf_prompt_tokens": len(g_ids),
        })
    n = len(rows)
    score = sum(r["same_call"] for r in rows) / n
    tokenization_ok = all(r["same_tokens"] for r in rows)
    return {
        "score": round(score, 4), "threshold": threshold, "passed": score >= threshold and tokenization_ok,
        "tokenization_ok": tokenization_ok, "same_text": round(sum(r["same_text"] for r in rows) / n, 4),
        "prompts": n, "with_calls": sum(1 for r in rows if r["hf_calls"] or r["gguf_calls"]),
        "max_new_tokens": max_new_tokens, "decoding": DECODING, "decoding_note": DECODING_NOTE,
        "seconds": round(time.monotonic() - started, 2), "rows": rows,
    }
