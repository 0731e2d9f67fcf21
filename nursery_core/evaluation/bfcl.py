"""Turns Berkeley Function Calling Leaderboard test files (+ possible answers) into canonical evaluation examples.

Each example keeps BFCL's possible answer in `meta.possible_answer`, so the checker accepts every alternative;
the assistant turn holds one concrete call per expected call (each parameter's first acceptable value).
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InvalidInput
from ..jsontext import read_text, records
from ..records import Where, normalise_example, normalise_tool
from .checker import gold_from_possible_answer

# BFCL category (from the id) → our record category; live_ variants behave the same.
SUPPORTED = {
    "simple": "call", "simple_python": "call", "multiple": "call", "parallel": "parallel",
    "parallel_multiple": "parallel", "irrelevance": "no_call",
    "live_simple": "call", "live_multiple": "call", "live_parallel": "parallel",
    "live_parallel_multiple": "parallel", "live_irrelevance": "no_call",
}
NO_CALL_ANSWER = "None of the available functions can do that, so I will not call any of them."


def bfcl_category(entry_id: str) -> str:
    """`simple_python_12` → `simple_python`; `live_simple_0-0-0` → `live_simple`."""
    return re.sub(r"_\d+(?:-\d+)*$", "", str(entry_id))


def read_jsonl(path: Path, what: str) -> list[tuple[int, dict]]:
    """BFCL's `.json` files are JSON Lines; a plain JSON array is accepted too. A UTF-8 BOM and CRLF line ends
    are read as every Nursery reader reads them (jsontext); NaN, Infinity and duplicate keys are refused."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{what} not found", file=str(path))
    rows = records(read_text(path), str(path))
    for n, obj in rows:
        if not isinstance(obj, dict):
            raise InvalidInput("each line must be a JSON object", file=str(path), line=n)
    return rows


def read_answers(path: Path | None) -> dict[str, tuple[int, list]]:
    """id → (line, ground_truth); the shape is checked when an entry uses it."""
    if path is None:
        return {}
    answers = {}
    for n, obj in read_jsonl(Path(path), "answers file"):
        if "id" not in obj or not isinstance(obj.get("ground_truth"), list):
            raise InvalidInput("each line needs 'id' and a 'ground_truth' list", file=str(path), line=n,
                               field="ground_truth")
        answers[str(obj["id"])] = (n, obj["ground_truth"])
    return answers


def _checked_answer(gt: list, file: str, line: int) -> list:
    for k, call in enumerate(gt):
        if not (isinstance(call, dict) and len(call) == 1 and isinstance(next(iter(call.values())), dict)):
            raise InvalidInput("a ground-truth call must be {function_name: {param: [values]}}",
                               file=file, line=line, field=f"ground_truth[{k}]")
        for p, alts in next(iter(call.values())).items():
            if not isinstance(alts, list):
                raise InvalidInput(f"parameter {p!r}: acceptable values must be a list", file=file,
                                   line=line, field=f"ground_truth[{k}].{p}")
    if not gt:
        raise InvalidInput("the ground truth lists no call", file=file, line=line, field="ground_truth")
    return gt


def bfcl_examples(test_file: Path | str, answers_file: Path | str | None = None) -> list[dict]:
    """Canonical examples for every entry of a BFCL test file; raises InvalidInput naming file/line/field."""
    test_file = Path(test_file)
    answers = read_answers(Path(answers_file) if answers_file else None)
    out = []
    for n, entry in read_jsonl(test_file, "BFCL test file"):
        where = Where(str(test_file), n)
        eid = entry.get("id")
        if not eid:
            raise where.error("entry has no 'id'", "id")
        cat = bfcl_category(eid)
        if cat not in SUPPORTED:
            raise where.error(f"BFCL category {cat!r} is not supported: use simple, multiple, parallel, "
                              "parallel_multiple or irrelevance (or their live_ variants)", "id")
        turns = entry.get("question")
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], list):
            raise where.error("'question' must be a list of turns, each a list of messages", "question")
        if len(turns) > 1:
            raise where.error("multi-turn BFCL entries are not supported", "question")
        funcs = entry.get("function")
        if not isinstance(funcs, list) or not funcs:
            raise where.error("'function' must be a non-empty list of function docs", "function")
        tools = [normalise_tool(f, where, f"function[{i}]") for i, f in enumerate(funcs)]
        messages = [dict(m) for m in turns[0]]
        meta = {"source": "bfcl", "bfcl_id": eid, "bfcl_category": cat}
        if SUPPORTED[cat] == "no_call":
            messages.append({"role": "assistant", "content": NO_CALL_ANSWER})
            meta.update(category="no_call", possible_answer=[])
        else:
            if eid not in answers:
                raise where.error(f"no possible answer for {eid!r}: pass the matching possible_answer file "
                                  "(--answers)", "id")
            possible = _checked_answer(answers[eid][1], str(answers_file), answers[eid][0])
            gold = gold_from_possible_answer(possible)
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": c} for i, c in enumerate(gold)]})
            meta.update(category="parallel" if len(gold) > 1 else "call", possible_answer=possible)
        # BFCL's answers are authoritative even where they bend the schema (its "variable" answers).
        out.append(normalise_example({"id": eid, "tools": tools, "messages": messages, "meta": meta}, where,
                                     validate_calls=False))
    if not out:
        raise InvalidInput("the BFCL test file has no entries", file=str(test_file))
    return out


def read_bfcl(path: Path | str, answers: Path | str | None = None) -> tuple[list[dict], list[int], dict]:
    """The `import-dataset --format bfcl` reader: (examples, their line numbers, report). An entry whose
    only answer breaks its own schema (a BFCL "variable" answer) cannot be stored and is skipped, reported."""
    from ..records import call_errors, tools_by_name

    examples = bfcl_examples(path, answers)
    kept, lines, skipped, notes = [], [], [], []
    for line, ex in enumerate(examples, start=1):
        by_name = tools_by_name(ex["tools"])
        errs = [e for c in (ex["messages"][-1].get("tool_calls") or [])
                for e in call_errors(by_name[c["function"]["name"]], c["function"]["arguments"])]
        if errs:
            skipped.append(ex["id"])
            notes.append(f"skipped {ex['id']}: its answer does not fit its own schema ({errs[0]})")
            continue
        kept.append(ex)
        lines.append(line)
    if not kept:
        raise InvalidInput("no BFCL entry could be imported", file=str(path))
    cats: dict[str, int] = {}
    for ex in kept:
        cats[ex["meta"]["bfcl_category"]] = cats.get(ex["meta"]["bfcl_category"], 0) + 1
    return kept, lines, {"format": "bfcl", "records": len(examples), "imported": len(kept),
                         "bfcl_categories": cats, "notes": notes, "skipped_ids": skipped,
                         **({"skipped": {"answer breaks its own schema (a BFCL variable answer)": len(skipped)}}
                            if skipped else {}),
                         "answers_file": str(answers) if answers else None}
