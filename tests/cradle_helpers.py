"""Builders for Model Cradle tests: a small stored dataset and LoRA adapters made directly with peft."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                                             "default": "celsius"}},
        "required": ["city"]}}}
TIMER = {"type": "function", "function": {
    "name": "set_timer", "description": "Start a countdown timer.",
    "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]}}}
TOOLS = [WEATHER, TIMER]
CITIES = ["Paris", "Oslo", "Lima", "Rome", "Cairo", "Tokyo", "Quito", "Perth"]


def _call(name, **args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


def examples(n: int = 12) -> list[dict]:
    """A mix of call, parallel and no_call examples over TOOLS with stable ids."""
    out = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        kind = i % 4
        if kind in (0, 1):
            msgs = [{"role": "user", "content": f"What's the weather in {city}?"},
                    {"role": "assistant", "tool_calls": [_call("get_weather", city=city)]}]
        elif kind == 2:
            msgs = [{"role": "user", "content": f"Weather in {city} in fahrenheit, and a {i + 2} minute timer."},
                    {"role": "assistant", "tool_calls": [_call("get_weather", city=city, unit="fahrenheit"),
                                                         _call("set_timer", minutes=i + 2)]}]
        else:
            msgs = [{"role": "user", "content": f"Tell me a fun fact about {city}."},
                    {"role": "assistant", "content": f"{city} is a city."}]
        out.append({"id": f"ex{i}", "tools": TOOLS, "messages": msgs})
    return out


def store_dataset(name: str = "weather", n: int = 12, eval_fraction: float = 0.5) -> str:
    from nursery_core.datasets import write_dataset

    write_dataset(name, examples(n), source="test", eval_fraction=eval_fraction)
    return name


def make_adapter(name: str, base_dir: Path, seed: int, dataset: str | None = None, tools=None) -> Path:
    """A LoRA adapter with random (non-zero) weights, so its outputs differ from the base and from other seeds."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core import paths
    from nursery_core.store import get_store

    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    torch.manual_seed(seed)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj",
                                                                                "down_proj"],
                                            init_lora_weights=False))
    out = paths.model_dir(name)
    peft.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out))
    (out / "config.json").write_text(json.dumps({"base_model": str(base_dir), "base_model_dir": str(base_dir)}))
    get_store().add_model({"name": name, "path": str(out), "base_model": str(base_dir), "dataset": dataset,
                           "tools": tools if tools is not None else TOOLS, "final_loss": 1.0})
    return out


@pytest.fixture
def one_thread():
    """Tiny models generate far faster on one torch thread on the shared 2-core machine; restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
