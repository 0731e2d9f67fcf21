"""Interactive inference on llama.cpp (nursery_core/engines/): the same greedy calls as torch on the packaged
SmolLM2, guarded calls valid against the offered schemas, a retrained adapter rebuilt, and a clear status of
which engine serves."""
from __future__ import annotations

import pytest

from conftest import require
from training_helpers import MEMORY_TOOL

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
TOOLS = [WEATHER_TOOL, MEMORY_TOOL]


def _llamacpp_ready():
    from nursery_core.export.gguf import converter_available
    from nursery_core.export.verify import bindings_available

    require(bindings_available(), "llama.cpp bindings (xllamacpp)")
    require(converter_available(), "llama.cpp's GGUF converter (make setup)")


@pytest.fixture
def auto_engine(monkeypatch):
    monkeypatch.setenv("NURSERY_ENGINE", "auto")
    monkeypatch.setenv("NURSERY_LLAMACPP_THREADS", "1")
    yield
    from nursery_core.engines import llamacpp

    llamacpp.get_llamacpp_pool().clear()


def _calls(text, tools):
    from nursery_core.inference import analyse_completion

    return analyse_completion(text, tools)["calls"]


@pytest.mark.slow
def test_llamacpp_gives_torchs_greedy_calls_on_smollm2(smollm2_home, auto_engine):
    _llamacpp_ready()
    import torch

    from nursery_core.interactive import generate_batch, stream_generate

    torch.set_num_threads(1)
    prompts = [
        # the guard forces a call: both engines must pick the same tool and arguments, valid for its schema
        {"messages": [{"role": "user", "content": "What's the weather in Oslo?"}], "tools": TOOLS,
         "tool_choice": "required"},
        {"messages": [{"role": "user", "content": "Remember that the garage code is 4821."}], "tools": TOOLS,
         "tool_choice": {"type": "function", "function": {"name": "memory_store"}}},
        # free choice: the bare base answers in text, the same text on both
        {"messages": [{"role": "user", "content": "What is 17 times 23?"}], "tools": TOOLS},
    ]
    settings = {"max_new_tokens": 48, "stop_after_calls": True}
    ref = generate_batch("smollm2-135m", prompts, settings, engine="torch", batch_size=1)
    out = generate_batch("smollm2-135m", prompts, settings, engine="auto")
    assert ref.engine["engine"] == "torch" and out.engine["engine"] == "llama.cpp", out.engine
    assert out.decoding["decoding"] == "guarded"
    for k, (a, b) in enumerate(zip(ref, out)):
        ca, cb = _calls(a, TOOLS), _calls(b, TOOLS)
        assert [(c["name"], c["arguments"]) for c in cb] == [(c["name"], c["arguments"]) for c in ca], (k, a, b)
        if k < 2:
            assert cb and all(c["schema_valid"] for c in cb), b
    assert _calls(out[1], TOOLS)[0]["name"] == "memory_store"
    assert out[2] == ref[2]
    # compare's cut of text answers (text_tokens): a guarded answer begun as text stops there on both engines
    short = {**settings, "text_tokens": 6}
    cut_ref = generate_batch("smollm2-135m", prompts[2:], short, engine="torch")
    cut = generate_batch("smollm2-135m", prompts[2:], short, engine="auto")
    assert cut[0] == cut_ref[0] and cut.usage[0]["completion_tokens"] == 6 and len(cut[0]) < len(ref[2])
    assert any("cut after 6 tokens" in n for n in cut.engine["notes"])
    # streamed (the Test tab): the same answer, and the report says llama.cpp served it
    report: dict = {}
    text = "".join(stream_generate("smollm2-135m", prompts[0], settings, report=report, engine="auto"))
    assert report["engine"] == "llama.cpp" and report["decoding"] == "guarded"
    assert _calls(text, TOOLS) == _calls(out[0], TOOLS), (text, report)


@pytest.mark.slow
def test_changed_adapter_invalidates_its_cached_gguf(tiny_model_dir, nursery_home, auto_engine):
    _llamacpp_ready()
    import torch
    from safetensors.torch import load_file, save_file

    from cradle_helpers import make_adapter
    from nursery_core.engines.gguf_cache import adapter_gguf, adapter_target
    from nursery_core.engines.llamacpp import get_llamacpp_pool
    from nursery_core.interactive import engine_status

    adapter = make_adapter("tiny-a", tiny_model_dir, seed=1)
    first = adapter_gguf("tiny-a", adapter, tiny_model_dir, 2)
    assert first["built"] and adapter_target("tiny-a", adapter, tiny_model_dir)[0] == __import__("pathlib").Path(first["path"])
    assert adapter_gguf("tiny-a", adapter, tiny_model_dir, 2)["built"] is False  # cached
    served = get_llamacpp_pool().served("tiny-a")
    assert served.stamp == first["path"] and engine_status("tiny-a")["loaded"]
    # retrain: new weights under the same name
    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v + 0.01 * torch.ones_like(v) for k, v in tensors.items()}, str(weights))
    assert not engine_status("tiny-a")["loaded"]  # the warm server holds the old copy
    second = get_llamacpp_pool().served("tiny-a")
    assert second.stamp != first["path"]
    assert not __import__("pathlib").Path(first["path"]).exists()  # the stale copy is gone
    assert __import__("pathlib").Path(second.stamp).is_file()


@pytest.mark.slow
def test_changed_adapter_invalidates_its_cached_lora_gguf(tiny_model_dir, nursery_home, auto_engine, monkeypatch):
    """An adapter served as its LoRA GGUF over its base's GGUF (unmerged); retrained, it gets a new LoRA GGUF
    and the stale one is deleted, while the base's GGUF stays."""
    _llamacpp_ready()
    monkeypatch.setenv("NURSERY_LLAMACPP_ADAPTERS", "lora")
    from pathlib import Path

    import torch
    from safetensors.torch import load_file, save_file

    from cradle_helpers import make_adapter
    from nursery_core.engines.gguf_cache import base_target, lora_gguf, lora_target
    from nursery_core.engines.llamacpp import get_llamacpp_pool
    from nursery_core.interactive import engine_status

    adapter = make_adapter("tiny-a", tiny_model_dir, seed=1)
    first = lora_gguf("tiny-a", adapter, tiny_model_dir)
    assert first["built"] and lora_target("tiny-a", adapter, tiny_model_dir)[0] == Path(first["path"])
    assert Path(first["path"]).stat().st_size < 2_000_000  # the A and B matrices, not a model
    assert lora_gguf("tiny-a", adapter, tiny_model_dir)["built"] is False  # cached
    served = get_llamacpp_pool().served("tiny-a")
    base_file = str(base_target(tiny_model_dir)[0])
    assert served.stamp == f"{base_file}+{first['path']}" and engine_status("tiny-a")["loaded"]
    assert served.runner.identity == Path(first["path"]) and served.runner.path == Path(base_file)
    # retrain: new weights under the same name
    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v + 0.01 * torch.ones_like(v) for k, v in tensors.items()}, str(weights))
    assert not engine_status("tiny-a")["loaded"]  # the warm server holds the old copy
    second = get_llamacpp_pool().served("tiny-a")
    assert second.stamp != served.stamp and second.stamp.startswith(base_file + "+")
    assert not Path(first["path"]).exists()  # the stale LoRA GGUF is gone, the base's GGUF is kept
    assert Path(second.stamp.split("+", 1)[1]).is_file() and Path(base_file).is_file()


@pytest.mark.slow
def test_unmerged_adapter_answers_as_torch_and_a_dora_adapter_is_merged(tiny_model_dir, nursery_home,
                                                                        auto_engine, monkeypatch):
    """The LoRA applied at run time by llama.cpp gives torch's greedy tokens (PEFT computes it unmerged too);
    an adapter llama.cpp cannot apply unmerged (DoRA, saved modules) is served merged into one GGUF."""
    _llamacpp_ready()
    from nursery_core.engines.gguf_cache import serves_unmerged
    from nursery_core.errors import InvalidConfig

    assert not serves_unmerged(tiny_model_dir, tiny_model_dir)  # auto: merged over a converted base
    monkeypatch.setenv("NURSERY_LLAMACPP_ADAPTERS", "both")
    with pytest.raises(InvalidConfig, match="NURSERY_LLAMACPP_ADAPTERS must be one of"):
        serves_unmerged(tiny_model_dir, tiny_model_dir)
    monkeypatch.setenv("NURSERY_LLAMACPP_ADAPTERS", "lora")
    import json

    import torch

    from cradle_helpers import make_adapter
    from nursery_core.engines.gguf_cache import adapter_target, lora_refusal
    from nursery_core.engines.llamacpp import get_llamacpp_pool, gguf_path_if_cached
    from nursery_core.inference import resolve_model
    from nursery_core.interactive import engine_status, generate_batch

    torch.set_num_threads(1)
    adapter = make_adapter("tiny-u", tiny_model_dir, seed=4)
    prompts = [{"messages": [{"role": "user", "content": f"Say something about {w}."}]} for w in ("cats", "rain")]
    settings = {"max_new_tokens": 12, "guarded": False}
    ref = generate_batch("tiny-u", prompts, settings, engine="torch")
    out = generate_batch("tiny-u", prompts, settings, engine="auto")
    assert out.engine["engine"] == "llama.cpp" and list(out) == list(ref), (list(out), list(ref))
    assert "+" in get_llamacpp_pool().served("tiny-u").stamp
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    assert lora_refusal(adapter) == "it is a DoRA adapter"
    assert lora_refusal(tiny_model_dir) == "its adapter_config.json cannot be read"
    # one that names a saved module: served merged (its GGUF is the merged one), and the status says no LoRA
    (adapter / "adapter_config.json").write_text(json.dumps({**cfg, "modules_to_save": ["lm_head"]}))
    assert lora_refusal(adapter) == "it trains whole modules (lm_head)"
    assert gguf_path_if_cached(resolve_model("tiny-u")) == str(adapter_target("tiny-u", adapter, tiny_model_dir)[0])
    assert "LoRA" not in engine_status("tiny-u")["label"]
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    assert "+ LoRA" in engine_status("tiny-u")["label"]


@pytest.mark.slow
def test_packaged_type_serves_the_embedded_q4_1_file_with_an_adapter_over_it(smollm2_home, auto_engine,
                                                                            monkeypatch):
    """NURSERY_LLAMACPP_TYPE=packaged: the embedded base is served from a copy of the packaged Q4_1 GGUF (the
    package's own file untouched), an adapter of it as a LoRA GGUF over that copy; the status says so."""
    _llamacpp_ready()
    from pathlib import Path

    from cradle_helpers import make_adapter
    from nursery_core.base_models import embedded_gguf
    from nursery_core.engines.gguf_cache import base_target, packaged_gguf, served_type
    from nursery_core.engines.llamacpp import get_llamacpp_pool
    from nursery_core.inference import resolve_model
    from nursery_core.interactive import engine_status, generate_batch

    base_dir = resolve_model("smollm2-135m").base_dir
    assert packaged_gguf(base_dir) is None and served_type(base_dir) == "f16"  # the default converts
    monkeypatch.setenv("NURSERY_LLAMACPP_TYPE", "packaged")
    packaged = embedded_gguf()
    before = packaged.stat().st_mtime_ns
    assert packaged_gguf(base_dir) == packaged and served_type(base_dir) == "Q4_1 as packaged"
    make_adapter("pk", base_dir, seed=5)
    out = generate_batch("pk", [{"messages": [{"role": "user", "content": "Hello!"}]}],
                         {"max_new_tokens": 8, "guarded": False}, engine="auto")
    assert out.engine["engine"] == "llama.cpp" and out[0].strip()
    served = get_llamacpp_pool().served("pk")
    copy = base_target(base_dir)[0]
    assert served.runner.path == copy and "-packaged-" in copy.name and served.runner.loras
    assert abs(copy.stat().st_size - packaged.stat().st_size) < 1_000_000  # Q4_1, not a 270 MB f16
    assert packaged.stat().st_mtime_ns == before and Path(served.runner.identity).name.startswith("lora-pk-")
    assert engine_status("pk")["label"] == "llama.cpp (GGUF Q4_1 as packaged + LoRA, warm)"


def test_engine_status_says_which_engine_serves_and_why(tiny_model_dir, nursery_home, monkeypatch):
    from cradle_helpers import make_adapter
    from nursery_core.interactive import engine_status
    from nursery_core.errors import InvalidConfig

    make_adapter("tiny-b", tiny_model_dir, seed=2)
    monkeypatch.setenv("NURSERY_ENGINE", "torch")
    st = engine_status("tiny-b")
    assert st["engine"] == "torch" and "NURSERY_ENGINE" in st["reason"] and not st["loaded"]
    monkeypatch.setenv("NURSERY_ENGINE", "vulkan")
    with pytest.raises(InvalidConfig, match="NURSERY_ENGINE must be one of"):
        engine_status("tiny-b")


@pytest.mark.slow
def test_server_slots_share_a_prefix_copied_between_them(tiny_model_dir, nursery_home):
    """A server runs in a child process; a slot given another's KV (copy_slot) reruns only the last prompt token
    and answers as the slot that computed it; close() ends the process."""
    _llamacpp_ready()
    import os

    from nursery_core.engines.gguf_cache import base_gguf
    from nursery_core.engines.llamacpp_server import GGUFRunner

    path = base_gguf(tiny_model_dir, None)["path"]
    runner = GGUFRunner(path, n_ctx=512, threads=1, slots=2)
    try:
        assert runner._proc.pid != os.getpid() and runner._proc.poll() is None  # noqa: SLF001
        ids = runner.tokenize("The system turn with the tools, then the user's question about the weather")
        body = {"prompt": ids, "n_predict": 8, "temperature": 0.0, "top_k": 1, "samplers": ["top_k"],
                "return_tokens": True, "cache_prompt": True, "seed": 0}

        def answer(slot):
            events = list(runner.stream(body, slot=slot))
            return [t for ev in events for t in ev.get("tokens") or []], events[-1]["timings"]["prompt_n"]

        first, n_first = answer(0)
        assert n_first == len(ids) and runner.cached[0] == ids and runner.cached[1] == []
        runner.copy_slot(0, 1)
        assert runner.cached[1] == ids and runner.best_slot(ids) in (0, 1)
        again, n_again = answer(1)
        assert again == first and n_again <= 1, n_again  # only the last prompt token ran again
    finally:
        proc = runner._proc  # noqa: SLF001
        runner.close()
    assert proc.poll() is not None
    runner.close()  # idempotent


def test_a_gguf_llamacpp_cannot_load_is_a_clear_error(tmp_path):
    _llamacpp_ready()
    from nursery_core.engines.llamacpp_server import GGUFRunner
    from nursery_core.errors import BackendError

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(BackendError, match="llama.cpp could not load broken.gguf"):
        GGUFRunner(bad, n_ctx=256, threads=1)


@pytest.mark.slow
def test_prompts_answered_together_match_one_at_a_time(tiny_model_dir, nursery_home, auto_engine, monkeypatch):
    """A batch of prompts runs in the server's slots at once: the shared system turn is computed once (one prefill,
    copied to the other slots) and every answer is the one the prompt gets alone."""
    _llamacpp_ready()
    from cradle_helpers import TOOLS as CRADLE_TOOLS
    from cradle_helpers import make_adapter
    from nursery_core.engines import llamacpp
    from nursery_core.engines.llamacpp_server import GGUFRunner
    from nursery_core.interactive import generate_batch

    make_adapter("tiny-c", tiny_model_dir, seed=3)
    calls = {"prefill": 0, "copy_slot": 0}
    for name in calls:
        original = getattr(GGUFRunner, name)

        def spy(self, *a, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *a)
        monkeypatch.setattr(GGUFRunner, name, spy)
    prompts = [{"messages": [{"role": "user", "content": q}], "tools": CRADLE_TOOLS}
               for q in ("Weather in Rome?", "Set a 3 minute timer", "Weather in Lima in fahrenheit?")]
    settings = {"max_new_tokens": 12, "guarded": False}
    together = generate_batch("tiny-c", prompts, settings, engine="auto")
    assert together.engine["engine"] == "llama.cpp", together.engine
    assert calls == {"prefill": 1, "copy_slot": 2}, calls  # cold server: one prefill, copied to slots 1 and 2
    served = llamacpp.get_llamacpp_pool().served("tiny-c")
    assert served.runner.slots == llamacpp.SLOTS
    alone = [generate_batch("tiny-c", [p], settings, engine="auto")[0] for p in prompts]
    assert list(together) == alone
    again = generate_batch("tiny-c", prompts, settings, engine="auto")
    assert list(again) == alone and calls == {"prefill": 1, "copy_slot": 2}  # warm: every slot has the prefix


def test_batch_runs_in_slots_at_once_and_a_failing_progress_lets_the_server_go(monkeypatch):
    """generate(): one worker per slot, all at once (a barrier would time out otherwise), answers in prompt order,
    progress on the caller's thread; a progress callback that raises stops the workers and frees the server."""
    import threading
    import types

    from nursery_core.engines import llamacpp

    runner = types.SimpleNamespace(slots=4, cached=[[], [], [], []], best_slot=lambda ids, among=None: 0,
                                   place=lambda ids: 0)
    served = types.SimpleNamespace(runner=runner, lock=threading.Lock(), tokenizer=None)
    pool = types.SimpleNamespace(served=lambda name: served)
    monkeypatch.setattr(llamacpp, "get_llamacpp_pool", lambda: pool)
    monkeypatch.setattr(llamacpp, "_prompt_ids", lambda served, prompt: [1, 2, 3, prompt])
    monkeypatch.setattr(llamacpp, "_share_prefix", lambda runner, first: None)
    first_wave = threading.Barrier(3, timeout=30)
    used = []
    slow = threading.Event()

    def answer(served, ids, s, plan, slot, alone=False):
        if slow.is_set():
            __import__("time").sleep(0.05)
        elif ids[-1] < 3:
            first_wave.wait()
        used.append((ids[-1], slot, threading.current_thread().name))
        return f"answer {ids[-1]}", {"completion_tokens": 1}, []

    monkeypatch.setattr(llamacpp, "_answer", answer)
    plan = types.SimpleNamespace(grammar=None)
    seen = []
    texts, usage, notes = llamacpp.generate("m", [0, 1, 2], None, [plan] * 3,
                                            progress=lambda d, t: seen.append((d, t, threading.current_thread())))
    assert texts == ["answer 0", "answer 1", "answer 2"] and notes == []
    assert sorted(slot for _, slot, _ in used) == [0, 1, 2]
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert {th for *_, th in seen} == {threading.current_thread()}

    def stop(done, total):
        raise KeyboardInterrupt("the page reran")

    slow.set()
    with pytest.raises(KeyboardInterrupt):
        llamacpp.generate("m", list(range(20)), None, [plan] * 20, progress=stop)
    assert served.lock.acquire(blocking=False)  # released, and no worker left running on it
    assert not [t for t in threading.enumerate() if t.name.startswith("nursery-llamacpp-slot")]
    assert len(used) < 3 + 20  # the workers stopped before answering everything
