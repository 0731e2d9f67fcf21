"""Small shared helpers for the training tests: a canonical tool dataset stored under the test's NURSERY_HOME."""
from __future__ import annotations

MEMORY_TOOL = {"type": "function", "function": {
    "name": "memory_store", "description": "Store a fact in long-term memory",
    "parameters": {"type": "object", "properties": {"content": {"type": "string", "description": "the fact"}},
                   "required": ["content"]}}}


def examples(n: int, repeat: bool = False) -> list[dict]:
    out = []
    for i in range(n):
        k = 0 if repeat else i
        out.append({"id": f"ex{i}", "tools": [MEMORY_TOOL], "meta": {"source": "test", "category": "call"},
                    "messages": [{"role": "user", "content": f"Remember that locker {k} has code {k * 37 % 1000}."},
                                 {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function", "function": {
                                     "name": "memory_store",
                                     "arguments": {"content": f"locker {k} has code {k * 37 % 1000}"}}}]}]})
    return out


def store_dataset(name: str = "lockers", n: int = 12, eval_fraction: float = 0.2, repeat: bool = False) -> str:
    """Stores a dataset through the Data Garden (canonical file + row with its train/eval split)."""
    from nursery_core.datasets import write_dataset

    write_dataset(name, examples(n, repeat), source="test", eval_fraction=eval_fraction)
    return name
