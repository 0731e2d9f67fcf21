"""`nursery_compare_models`: two models on the same prompts, side by side — their parsed calls diffed per tool and
per argument, and over a dataset's eval split each example labelled both right / A right / B right / both wrong."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable, Sequence

from .errors import InvalidInput

OUTCOMES = ("both right", "A right, B wrong", "B right, A wrong", "both wrong")


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def diff_calls(calls_a: list[dict], calls_b: list[dict]) -> list[dict]:
    """Calls paired by tool name (in order), each with per-argument status same | different | only_a | only_b."""
    rows = []
    unused_b = list(range(len(calls_b)))
    pairs: list[tuple[dict | None, dict | None]] = []
    for call in calls_a:
        # the same-named B call that agrees most with A
        cands = [j for j in unused_b if calls_b[j]["name"] == call["name"]]
        if cands:
            j = max(cands, key=lambda j: sum(_canon(calls_b[j]["arguments"].get(k)) == _canon(v)
                                             for k, v in call["arguments"].items()))
            unused_b.remove(j)
            pairs.append((call, calls_b[j]))
        else:
            pairs.append((call, None))
    pairs += [(None, calls_b[j]) for j in unused_b]
    for a, b in pairs:
        args_a = (a or {}).get("arguments") or {}
        args_b = (b or {}).get("arguments") or {}
        args = []
        for k in list(args_a) + [k for k in args_b if k not in args_a]:
            if k in args_a and k in args_b:
                status = "same" if _canon(args_a[k]) == _canon(args_b[k]) else "different"
            else:
                status = "only_a" if k in args_a else "only_b"
            args.append({"argument": k, "a": args_a.get(k), "b": args_b.get(k), "status": status})
        if a is None or b is None:
            status = "only_a" if b is None else "only_b"
        else:
            status = "same" if all(x["status"] == "same" for x in args) else "different"
        rows.append({"tool": next(c for c in (a, b) if c is not None)["name"], "status": status, "arguments": args})
    return rows


def outcome(a_ok: bool, b_ok: bool) -> str:
    return OUTCOMES[0] if a_ok and b_ok else OUTCOMES[1] if a_ok else OUTCOMES[2] if b_ok else OUTCOMES[3]


def _last_user(messages: list[dict]) -> str:
    return next((m.get("content") or "" for m in reversed(messages) if m["role"] == "user"), "")


def compare_tools(model_a: str, model_b: str, tools: Any = None, tools_from: str | None = None) -> tuple[list[dict], str]:
    """(tools, where they came from) an interactive compare offers: given or a dataset's tools, else model A's
    training tools, else model B's (inference.resolve_tools raises its errors)."""
    from .inference import resolve_tools

    tool_list, source = resolve_tools(model_a, tools, tools_from)
    if not tool_list and tools is None and not tools_from:
        tool_list, source = resolve_tools(model_b)
    return tool_list, source


def check_compare_request(model_a: str | None, model_b: str | None, prompts: Sequence[str] | str | None,
                          dataset: str | None) -> list[str]:
    """The prompts a compare runs on, with blank ones dropped. Raises InvalidInput naming the field when a model
    is missing, or when there are neither prompts nor a dataset (or both). It is cheap, so the Compare tab asks
    it before any model loads."""
    if not model_a or not model_b:
        raise InvalidInput("choose two models to compare", field="model")
    if isinstance(prompts, str):
        prompts = [prompts]
    kept = [p for p in (prompts or []) if isinstance(p, str) and p.strip()]
    if bool(kept) == bool(dataset):
        raise InvalidInput("give either prompts or a dataset to compare on", field="prompts")
    return kept


def nursery_compare_models(model_a: str, model_b: str, prompts: list[str] | str | None = None,
                           dataset: str | None = None, split: str = "eval", limit: int | None = None, *,
                           tools: Any = None, tools_from: str | None = None, system: str | None = None,
                           max_new_tokens: int | None = None, temperature: float | None = None,
                           top_p: float | None = None, seed: int | None = None, batch_size: int | None = None,
                           guarded: bool = True, progress: Callable[[str, int, int], object] | None = None,
                           stop_after_calls: bool = True) -> dict:
    """Interactive (prompts) or batch (a dataset's split): both models answer every prompt, batched, guarded by
    default; interactive answers stop once their tool calls are complete (`stop_after_calls`) and are served by
    llama.cpp when it can (`engines`: {"A"|"B": {"engine", "notes"}}), both models at once. The result's
    `decoding` ("guarded" | "free" | "mixed") and `decoding_notes` say what ran. `progress(which, done, total)`
    ("A" | "B") is called on the caller's thread as answers finish; the two sides' calls may interleave."""
    from .evaluation.api import load_eval_examples, score_outputs
    from .inference import TEXT_ANSWER_TOKENS, GenerationSettings, analyse_completion, build_messages
    from .interactive import generate_side_by_side
    from .training.rendering import eval_prompts

    prompts = check_compare_request(model_a, model_b, prompts, dataset)
    gen = GenerationSettings.of(None, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                seed=seed, batch_size=batch_size, guarded=guarded,
                                stop_after_calls=bool(stop_after_calls and prompts),
                                text_tokens=TEXT_ANSWER_TOKENS if stop_after_calls and prompts else None)
    ran: list[dict] = []
    engines: dict[str, dict] = {}

    def run(items: list[dict]) -> tuple[list[str], list[str]]:
        # interactive prompts are served by llama.cpp when it can; a dataset's split stays on torch's batches
        outs = generate_side_by_side((("A", model_a), ("B", model_b)), items, gen, progress=progress,
                                     engine="auto" if prompts else "torch")
        for which, out in outs.items():
            ran.append(out.decoding)
            engines[which] = out.engine
        return outs["A"], outs["B"]

    def decoding() -> dict:
        modes = {d["decoding"] for d in ran}
        notes = [n for d in ran for n in d["notes"]]
        return {"decoding": modes.pop() if len(modes) == 1 else "mixed",
                "decoding_notes": list(dict.fromkeys(notes))}

    if prompts:
        tool_list, source = compare_tools(model_a, model_b, tools, tools_from)
        items = [{"messages": build_messages(p, system), "tools": tool_list} for p in prompts]
        out_a, out_b = run(items)
        rows = []
        for p, ca, cb in zip(prompts, out_a, out_b):
            a, b = analyse_completion(ca, tool_list), analyse_completion(cb, tool_list)
            rows.append({"prompt": p, "a": a, "b": b, "diff": diff_calls(a["calls"], b["calls"]),
                         "same_calls": sorted(map(_canon, a["calls"])) == sorted(map(_canon, b["calls"]))})
        return {"mode": "interactive", "model_a": model_a, "model_b": model_b, "settings": gen.to_dict(),
                **decoding(), "engines": engines, "tools": [t["function"]["name"] for t in tool_list],
                "tools_source": source, "rows": rows}

    assert dataset  # exactly one of prompts and dataset, checked above
    examples = load_eval_examples(dataset, split, limit)
    batch: list[dict] = []
    for ex in examples:
        prefix, _ = eval_prompts(ex)
        batch.append({"messages": prefix, "tools": ex.get("tools")})
    out_a, out_b = run(batch)
    det_a, met_a = score_outputs(examples, out_a)
    det_b, met_b = score_outputs(examples, out_b)
    rows = []
    for ex, item, da, db in zip(examples, batch, det_a, det_b):
        rows.append({"id": ex.get("id"), "category": da["category"], "prompt": _last_user(item["messages"]),
                     "gold": da["gold"], "outcome": outcome(da["ast_ok"], db["ast_ok"]),
                     "a": {"completion": da["output"], "calls": da["calls"], "ast_ok": da["ast_ok"],
                           "error": da["ast_error"], "format_ok": da["format_ok"]},
                     "b": {"completion": db["output"], "calls": db["calls"], "ast_ok": db["ast_ok"],
                           "error": db["ast_error"], "format_ok": db["format_ok"]},
                     "diff": diff_calls(da["calls"], db["calls"])})
    counts = Counter(r["outcome"] for r in rows)
    return {"mode": "batch", "model_a": model_a, "model_b": model_b, "dataset": dataset, "split": split,
            "settings": gen.to_dict(), **decoding(), "num_examples": len(rows),
            "summary": {o: counts.get(o, 0) for o in OUTCOMES},
            "a_metrics": met_a, "b_metrics": met_b,
            "a_ast_accuracy": met_a["ast_accuracy"], "b_ast_accuracy": met_b["ast_accuracy"], "rows": rows}
