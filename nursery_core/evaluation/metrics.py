"""Per-example scores of a model's output against an example, and their aggregation (overall and per category).

Metric set of reference §2.6: BFCL-style AST accuracy, output-format validity, call/no-call decision
precision and recall, function-name accuracy, strict argument exact match, argument-level F1, schema
validity, hallucinated tool and parameter names, call-count match. Every proportion among them comes with a
Wilson 95 % interval (`ci95`), and `small_sample` flags fewer than SMALL_SAMPLE examples.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Iterable

from ..records import compiled_validator
from ..training.rendering import eval_prompts
from .checker import check_calls, check_param, find_tool, possible_answer_from_gold
from .formats import parse_output


def category_of(example: dict) -> str:
    meta = example.get("meta") or {}
    return meta.get("bfcl_category") or meta.get("category") or "call"


def possible_answer_of(example: dict, gold: list[dict]) -> list[dict]:
    """BFCL's possible answer when the example carries one (imported), else built from the gold calls."""
    meta = example.get("meta") or {}
    if isinstance(meta.get("possible_answer"), list):
        return meta["possible_answer"]
    return possible_answer_from_gold(gold, example.get("tools") or [])


def _canon(call: dict) -> str:
    return json.dumps({"name": call.get("name"), "arguments": call.get("arguments") or {}}, sort_keys=True,
                      ensure_ascii=False)


def schema_errors(tool: dict | None, arguments: dict) -> list[str]:
    """jsonschema errors of a call's arguments, plus keys the schema does not declare."""
    if tool is None:
        return ["unknown tool"]
    params = tool.get("parameters") or {"type": "object", "properties": {}}
    errs = [f"{'.'.join(str(p) for p in e.path) + ': ' if e.path else ''}{e.message}"
            for e in compiled_validator(params).iter_errors(arguments)]
    if params.get("additionalProperties") is not True:
        errs += [f"unknown parameter {k!r}" for k in arguments if k not in (params.get("properties") or {})]
    return errs


def _arg_counts(tools: list[dict], calls: list[dict], possible: list[dict]) -> tuple[int, int, int]:
    """(tp, fp, fn) over arguments: each expected call is paired with the unpaired output call of the same name
    that gets most arguments right; an argument is right when the checker accepts its value."""
    tp = fp = fn = 0
    free = list(range(len(calls)))
    for answer in possible:
        (name, params), = answer.items()
        tool = find_tool(tools, name) or {}
        props = (tool.get("parameters") or {}).get("properties") or {}
        mandatory = {k for k, alts in params.items() if "" not in alts}
        best, best_ok = None, -1
        for j in free:
            if calls[j].get("name") != name:
                continue
            ok = {k for k, v in (calls[j].get("arguments") or {}).items()
                  if k in params and check_param(k, v, props.get(k) or {}, params[k])[0]}
            if len(ok) > best_ok:
                best, best_ok, best_set = j, len(ok), ok
        if best is None:
            fn += len(mandatory)
            continue
        free.remove(best)
        tp += len(best_set)
        fp += len(calls[best].get("arguments") or {}) - len(best_set)
        fn += len(mandatory - best_set)
    for j in free:
        fp += len(calls[j].get("arguments") or {})
    return tp, fp, fn


def score_example(example: dict, output: str, output_format: str = "nursery") -> dict:
    """Everything measured on one example's output (the first trained assistant turn is the target).
    `output_format` "nursery" is the strict Hermes parser Nursery's models are held to; the others
    (evaluation/formats.py) read other models' outputs; the form used is kept as `output_format`."""
    _, gold = eval_prompts(example)
    tools = example.get("tools") or []
    possible = possible_answer_of(example, gold)
    parsed, used = parse_output(output, output_format)
    calls = parsed.calls
    check = check_calls(tools, calls, possible, attempted_call=parsed.attempted_call, format_ok=parsed.format_ok)
    tp, fp, fn = _arg_counts(tools, calls, possible)
    valid_calls, errors, halluc_tools, halluc_params, n_params = 0, [], [], [], 0
    for c in calls:
        tool = find_tool(tools, c["name"])
        if tool is None:
            halluc_tools.append(c["name"])
        else:
            props = (tool.get("parameters") or {}).get("properties") or {}
            n_params += len(c["arguments"])
            halluc_params += [f"{c['name']}.{k}" for k in c["arguments"] if k not in props]
        errs = schema_errors(tool, c["arguments"])
        if errs:
            errors.append({"name": c["name"], "errors": errs})
        else:
            valid_calls += 1
    expected_names = sorted(next(iter(a)) for a in possible)
    return {
        "id": example.get("id"), "category": category_of(example), "output": output, "output_format": used,
        "calls": calls, "format_ok": parsed.format_ok, "parse_errors": parsed.errors, "gold": gold,
        "ast_ok": check.valid, "ast_error": check.error, "error_type": check.error_type,
        "should_call": bool(possible), "did_call": bool(calls) or parsed.attempted_call,
        "name_ok": sorted(c["name"] for c in calls) == expected_names,
        "exact_ok": parsed.format_ok and sorted(map(_canon, calls)) == sorted(map(_canon, gold)),
        "count_ok": len(calls) == len(possible),
        "arg_tp": tp, "arg_fp": fp, "arg_fn": fn,
        "calls_total": len(calls), "calls_schema_valid": valid_calls, "schema_errors": errors,
        "params_total": n_params, "hallucinated_tools": halluc_tools, "hallucinated_params": halluc_params,
    }


Z95 = 1.959963984540054  # the standard normal quantile for a two-sided 95 % interval
SMALL_SAMPLE = 30  # below this many examples views warn that an accuracy is too uncertain to compare


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval (Wilson, E. B. 1927, "Probable inference, the law of succession, and statistical
    inference", JASA 22(158):209-212) for `successes` out of `n` trials: (low, high) as fractions in [0, 1],
    rounded to 4 places; None when n is 0. With p = k/n:
    centre = (p + z²/2n) / (1 + z²/n),  half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero-width at 0 % or 100 %."""
    if not n:
        return None
    if successes < 0 or successes > n:
        raise ValueError(f"successes must be between 0 and n ({n}), not {successes}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def small_sample_warning(n: int | None) -> str | None:
    """The warning views show under an accuracy measured on fewer than SMALL_SAMPLE examples."""
    if n is None or n >= SMALL_SAMPLE:
        return None
    return (f"only {n} example{'s' if n != 1 else ''} (under {SMALL_SAMPLE}): the 95 % interval is wide, "
            "so small differences mean nothing")


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return round(2 * p * r / (p + r), 4) if p + r else 0.0


def aggregate(details: list[dict]) -> dict:
    """The metric set over a list of per-example details (micro-averaged)."""
    n = len(details)
    s = lambda key: sum(1 for d in details if d[key])  # noqa: E731
    tp_call = sum(1 for d in details if d["should_call"] and d["did_call"])
    fp_call = sum(1 for d in details if not d["should_call"] and d["did_call"])
    fn_call = sum(1 for d in details if d["should_call"] and not d["did_call"])
    tn_call = n - tp_call - fp_call - fn_call
    call_p, call_r = _ratio(tp_call, tp_call + fp_call), _ratio(tp_call, tp_call + fn_call)
    atp, afp, afn = (sum(d[k] for d in details) for k in ("arg_tp", "arg_fp", "arg_fn"))
    arg_p, arg_r = _ratio(atp, atp + afp), _ratio(atp, atp + afn)
    calls = sum(d["calls_total"] for d in details)
    params = sum(d["params_total"] for d in details)
    h_tools = Counter(name for d in details for name in d["hallucinated_tools"])
    h_params = Counter(name for d in details for name in d["hallucinated_params"])
    # (successes, trials) of every proportion, for its value and its Wilson interval
    counts = {
        "ast_accuracy": (s("ast_ok"), n), "format_validity": (s("format_ok"), n),
        "call_precision": (tp_call, tp_call + fp_call), "call_recall": (tp_call, tp_call + fn_call),
        "no_call_precision": (tn_call, tn_call + fn_call), "no_call_recall": (tn_call, tn_call + fp_call),
        "name_accuracy": (s("name_ok"), n), "arg_exact_match": (s("exact_ok"), n),
        "arg_precision": (atp, atp + afp), "arg_recall": (atp, atp + afn),
        "schema_validity": (sum(d["calls_schema_valid"] for d in details), calls),
        "count_match": (s("count_ok"), n),
        "hallucinated_tool_rate": (sum(h_tools.values()), calls),
        "hallucinated_param_rate": (sum(h_params.values()), params),
    }
    ci95 = {k: list(iv) for k, (num, den) in counts.items() if (iv := wilson_interval(num, den)) is not None}
    return {
        "num_examples": n,
        "ast_accuracy": _ratio(*counts["ast_accuracy"]),
        "format_validity": _ratio(*counts["format_validity"]),
        "call_precision": call_p, "call_recall": call_r, "call_f1": _f1(call_p, call_r),
        "no_call_precision": _ratio(*counts["no_call_precision"]),
        "no_call_recall": _ratio(*counts["no_call_recall"]),
        "name_accuracy": _ratio(*counts["name_accuracy"]),
        "arg_exact_match": _ratio(*counts["arg_exact_match"]),
        "arg_precision": arg_p, "arg_recall": arg_r, "arg_f1": _f1(arg_p, arg_r),
        "schema_validity": _ratio(*counts["schema_validity"]),
        "count_match": _ratio(*counts["count_match"]),
        "predicted_calls": calls,
        "hallucinated_tool_rate": _ratio(*counts["hallucinated_tool_rate"]),
        "hallucinated_param_rate": _ratio(*counts["hallucinated_param_rate"]),
        "hallucinated_tool_names": dict(h_tools.most_common(20)),
        "hallucinated_param_names": dict(h_params.most_common(20)),
        "ci95": ci95,
        "small_sample": n < SMALL_SAMPLE,
        "warning": small_sample_warning(n),
    }


def summarise(details: Iterable[dict]) -> dict:
    """Overall metrics plus `per_category`."""
    details = list(details)
    by_cat: dict[str, list[dict]] = {}
    for d in details:
        by_cat.setdefault(d["category"], []).append(d)
    out: dict[str, Any] = aggregate(details)
    out["per_category"] = {c: aggregate(ds) for c, ds in sorted(by_cat.items())}
    return out
