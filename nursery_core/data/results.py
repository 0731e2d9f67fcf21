"""What a tool hands back in a multi-turn example, and the assistant's answer built from it."""
from __future__ import annotations

import ast
import json
import operator
import random
from typing import Any

from . import values as V

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}


def safe_eval(expr: str) -> float | None:
    """Arithmetic only (numbers, + - * / **, parentheses); None for anything else."""
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Pow) and abs(b) > 8:
                raise ValueError("exponent too large")
            return _BIN[type(n.op)](a, b)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        raise ValueError("not arithmetic")
    try:
        return ev(ast.parse(expr, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError, OverflowError, TypeError):
        return None


def tool_result(name: str, args: dict, rng: random.Random, action: str) -> tuple[Any, str]:
    """A plausible tool reply and the assistant's answer built from it (`action`: what the tool does, in
    words, for tools this module does not know; the answer never names the tool, which masking renames)."""
    if name == "calculator":
        v = safe_eval(args["expression"])
        v = round(v, int(args.get("precision", 2))) if v is not None else None
        return {"result": v}, (f"{args['expression']} = {v}." if v is not None else "That expression could not be evaluated.")
    if name == "get_current_time":
        tz = args.get("timezone", "UTC")
        t = f"{V.iso_date(rng)}T{V.hhmm(rng)}:00"
        return {"time": t, "timezone": tz}, f"It's currently {t.replace('T', ' ')} ({tz})."
    if name == "memory_store":
        return {"status": "saved", "id": f"mem_{rng.getrandbits(32):08x}"}, "Got it, I've saved that to memory."
    if name == "memory_search":
        fact = V.memory_fact(rng)
        return {"results": [{"content": fact}]}, f"Here's what I found: {fact}."
    if name == "web_search":
        title = f"{args['query'].capitalize()} | {rng.choice(V.COMPANIES)}"
        link = V.url(rng)
        return ({"results": [{"title": title, "url": link, "snippet": f"Everything about {args['query']}."}]},
                f'The top result is "{title}" ({link}).')
    if name == "get_weather":
        unit = args.get("unit", "celsius")
        temp = rng.randint(-5, 32) if unit == "celsius" else rng.randint(23, 90)
        cond = rng.choice(["sunny", "cloudy", "light rain", "windy", "clear", "foggy", "snowing"])
        sym = "°C" if unit == "celsius" else "°F"
        return ({"city": args["city"], "temperature": temp, "unit": unit, "conditions": cond},
                f"It's {temp}{sym} and {cond} in {args['city']} right now.")
    if name == "send_email":
        return {"status": "sent", "message_id": f"<{rng.getrandbits(40):010x}@mail>"}, f"Your email to {args['to']} has been sent."
    if name == "create_calendar_event":
        return ({"status": "created", "event_id": f"evt_{rng.getrandbits(32):08x}"},
                f'Done: "{args["title"]}" is on your calendar for {args["date"]} at {args["start_time"]}.')
    if name == "read_file":
        body = f"# {rng.choice(V.WORDS).capitalize()}\n{V.sentence(rng)}"
        return {"content": body, "bytes": len(body)}, f"Here's what {args['path']} contains:\n\n{body}"
    if name == "run_sql":
        n = rng.randint(0, 40)
        return {"row_count": n, "rows": [[rng.randint(1, 999)] for _ in range(min(n, 3))]}, f"The query returned {n} rows."
    return {"status": "ok"}, f"Done: I asked the tool to {action}, and it finished successfully."


def tool_result_text(result: Any) -> str:
    return json.dumps(result, ensure_ascii=False)
