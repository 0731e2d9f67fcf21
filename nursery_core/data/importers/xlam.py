"""xLAM / APIGen rows (Salesforce xlam-function-calling-60k and its kin): `query`, `tools` and `answers`, the
last two as JSON strings (or already parsed); each row is one user request answered by one or more calls
(parallel). Tool parameters in xLAM's flat form become JSON Schema in records.normalise_tool."""
from __future__ import annotations

from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like
from .common import Builder, Skip, supplied_tools


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and "query" in rec and "answers" in rec


def ref(rec: dict, i: int) -> str:
    return f"row {i + 1}" + (f" (id {rec.get('id')})" if rec.get("id") is not None else "")


def convert(rec: dict) -> dict:
    b = Builder()
    query = rec.get("query")
    if not isinstance(query, str) or not query.strip():
        raise Skip("an empty query")
    answers = rec.get("answers")
    if isinstance(answers, str):
        try:
            answers = decode_json_like(answers) if answers.strip() else []
        except InvalidInput:
            raise Skip("an 'answers' string that is not JSON") from None
    if isinstance(answers, dict):
        answers = [answers]
    if not isinstance(answers, list) or not answers:
        raise Skip("no answer calls")
    tools = supplied_tools(rec.get("tools"), b)
    b.user(query)
    for c in answers:
        if not isinstance(c, dict):
            raise Skip("an answer that is not a call object")
        b.call(c.get("name"), c.get("arguments", c.get("parameters", {})), src="answers")
    out = {"messages": b.messages(), "transformations": b.counts}
    if tools:
        out["tools"] = tools
    return out
