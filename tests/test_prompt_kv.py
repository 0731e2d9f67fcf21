"""The persistent prompt KV store (nursery_core/engines/prompt_kv.py) and prepare(): a restarted llama.cpp server
loads the system turn with the tools from disk instead of computing it again, answers token for token as without
the store, and a corrupt, stale or evicted entry never reaches the user."""
from __future__ import annotations

import json
import os

import pytest

from test_llamacpp_engine import TOOLS, _llamacpp_ready, auto_engine  # noqa: F401 (a fixture)

# one prompt, tool list and setting as the Test tab sends them (the tools' system turn is a few hundred tokens)
PROMPT = {"messages": [{"role": "user", "content": "What's the weather in Oslo?"}], "tools": TOOLS}
SETTINGS = {"max_new_tokens": 24, "stop_after_calls": True}


@pytest.fixture
def llamacpp_spy(monkeypatch):
    """Records each single-prompt run on llama.cpp (prompt tokens the server computed, answer ids) and each
    prefill (tokens computed)."""
    from nursery_core.engines import llamacpp
    from nursery_core.engines.llamacpp_server import GGUFRunner

    seen: dict[str, list] = {"runs": [], "prefills": []}
    to_store = llamacpp._to_store

    def spy_store(runner, slot, ids, run):
        seen["runs"].append({"computed": run.computed, "prompt": len(ids), "ids": list(run.ids)})
        return to_store(runner, slot, ids, run)

    prefill = GGUFRunner.prefill

    def spy_prefill(self, ids, slot):
        n = prefill(self, ids, slot)
        seen["prefills"].append(n)
        return n

    monkeypatch.setattr(llamacpp, "_to_store", spy_store)
    monkeypatch.setattr(GGUFRunner, "prefill", spy_prefill)
    return seen


def _restart_servers():
    """What a dashboard restart or an eviction does to the servers: gone, and the next call starts a new one."""
    from nursery_core.engines import llamacpp

    llamacpp.get_llamacpp_pool().clear()


@pytest.mark.slow
def test_a_restarted_server_restores_the_tool_prefix_and_answers_the_same(smollm2_home, auto_engine, llamacpp_spy,
                                                                          monkeypatch):
    _llamacpp_ready()
    from nursery_core.engines import prompt_kv
    from nursery_core.engines.llamacpp import get_llamacpp_pool
    from nursery_core.interactive import generate_batch, prepare, stream_generate

    # without the store: the reference answer, every prompt token computed
    monkeypatch.setenv("NURSERY_PROMPT_KV_MB", "0")
    ref = generate_batch("smollm2-135m", [PROMPT], SETTINGS)
    assert ref.engine["engine"] == "llama.cpp", ref.engine
    (plain,) = llamacpp_spy["runs"]
    assert plain["computed"] == plain["prompt"] > prompt_kv.MIN_SAVE
    assert not list(prompt_kv.root().rglob("*.bin"))
    monkeypatch.delenv("NURSERY_PROMPT_KV_MB")

    # prepare() on a fresh server computes the system turn once and stores it; then it is already warm
    _restart_servers()
    first = prepare("smollm2-135m", TOOLS)
    assert first["engine"] == "llama.cpp" and first["source"] == "prefill", first
    assert first["tokens"] >= prompt_kv.MIN_SAVE and llamacpp_spy["prefills"] == [first["tokens"]]
    assert len(prompt_kv.entries(get_llamacpp_pool().served("smollm2-135m").runner.path)) == 1
    assert prepare("smollm2-135m", TOOLS)["source"] == "warm"

    # a restarted server loads it: prepare says so and computes nothing
    _restart_servers()
    again = prepare("smollm2-135m", TOOLS)
    assert again["source"] == "store" and llamacpp_spy["prefills"] == [first["tokens"]], again
    # and the guard's grammar ran once in the new server (llguidance's tokenizer is built before the first prompt)
    served = get_llamacpp_pool().served("smollm2-135m")
    assert served.grammar_ready and len([k for k in range(served.runner.slots) if served.runner.cached[k]]) == 1

    # a restarted server without prepare(): the prompt itself finds the stored prefix; only the user turn runs,
    # and the answer is the same token for token
    _restart_servers()
    llamacpp_spy["runs"].clear()
    out = generate_batch("smollm2-135m", [PROMPT], SETTINGS)
    (restored,) = llamacpp_spy["runs"]
    assert restored["computed"] < plain["prompt"] - first["tokens"] + 2, restored
    assert restored["ids"] == plain["ids"] and list(out) == list(ref)
    # the streamed Test tab (a solo server of 2 slots: the batch server's 4-slot KV does not fit it), prepared
    # once, then after another restart: the same answer, from the store again
    assert prepare("smollm2-135m", TOOLS, solo=True)["source"] == "prefill"
    _restart_servers()
    llamacpp_spy["runs"].clear()
    report: dict = {}
    text = "".join(stream_generate("smollm2-135m", PROMPT, SETTINGS, report=report))
    (streamed,) = llamacpp_spy["runs"]
    assert report["engine"] == "llama.cpp" and streamed["computed"] < plain["prompt"] - first["tokens"] + 2
    assert streamed["ids"] == plain["ids"] and text.strip() == ref[0].strip()
    # a user turn alone is below MIN_SAVE: nothing new was stored for these prompts (one entry per slot count)
    assert len(list(prompt_kv.root().rglob("*.bin"))) == 2


@pytest.fixture
def tiny_runner(tiny_model_dir, nursery_home):
    _llamacpp_ready()
    from nursery_core.engines.gguf_cache import base_gguf
    from nursery_core.engines.llamacpp_server import GGUFRunner

    path = base_gguf(tiny_model_dir, None)["path"]
    runners = []

    def start(gguf=path, slots=2):
        r = GGUFRunner(gguf, n_ctx=512, threads=1, slots=slots)
        runners.append(r)
        return r

    yield start
    for r in runners:
        r.close()


def _prefix(runner, words: str = "tools") -> list[int]:
    ids = runner.tokenize(f"The system turn with the {words}, " * 12)
    assert len(ids) >= 64
    return ids


def _answer(runner, ids, slot):
    """(answer ids, prompt tokens the server computed) of a greedy 6-token completion in `slot`."""
    body = {"prompt": ids, "n_predict": 6, "temperature": 0.0, "top_k": 1, "samplers": ["top_k"],
            "return_tokens": True, "cache_prompt": True, "seed": 0}
    events = list(runner.stream(body, slot=slot))
    return [t for ev in events for t in ev.get("tokens") or []], events[-1]["timings"]["prompt_n"]


@pytest.mark.slow
def test_a_corrupt_entry_is_deleted_and_the_prompt_computed(tiny_runner):
    from nursery_core.engines import llamacpp, prompt_kv

    runner = tiny_runner()
    ids = _prefix(runner)
    prompt = ids + runner.tokenize(" and the question", add_special=False)
    assert llamacpp.fill_prefix(runner, 0, ids) == "prefill"
    ref = _answer(runner, prompt, 0)
    (entry,) = prompt_kv.entries(runner.path)
    assert entry.ids == tuple(ids)

    # bytes changed on disk: the checksum catches it before llama.cpp reads the file
    good = entry.kv.read_bytes()
    entry.kv.write_bytes(good[:-100] + bytes(100))
    fresh = tiny_runner()
    assert prompt_kv.restore(fresh, 0, prompt, 0) == 0
    assert not entry.meta.exists() and not entry.kv.exists() and fresh.cached[0] == []
    assert _answer(fresh, prompt, 0)[0] == ref[0]

    # a file llama.cpp refuses (another version's format) with a matching checksum: deleted, slot empty
    assert llamacpp.fill_prefix(fresh, 1, ids) == "prefill"
    (entry,) = prompt_kv.entries(runner.path)
    entry.kv.write_bytes(b"not a slot file" * 50)
    meta = json.loads(entry.meta.read_text())
    entry.meta.write_text(json.dumps({**meta, "sha256": prompt_kv._sha256(entry.kv)}))  # noqa: SLF001
    other = tiny_runner()
    assert llamacpp.fill_prefix(other, 0, ids) == "prefill"  # the failed restore fell back to computing it
    assert other.cached[0] == ids
    assert _answer(other, prompt, 0) == (ref[0], len(prompt) - len(ids))
    (entry,) = prompt_kv.entries(runner.path)  # stored anew by that prefill
    assert entry.sha256 == prompt_kv._sha256(entry.kv) and entry.kv.read_bytes() != b"not a slot file" * 50  # noqa: SLF001

    # an unreadable .json is dropped, not raised
    entry.meta.write_text("{ not json")
    assert prompt_kv.entries(runner.path) == [] and not entry.kv.exists()


@pytest.mark.slow
def test_a_changed_gguf_never_restores_an_old_kv(tiny_runner, tmp_path):
    import shutil

    from nursery_core.engines import llamacpp, prompt_kv

    runner = tiny_runner()
    copy = tmp_path / "model.gguf"
    shutil.copyfile(runner.path, copy)
    first = tiny_runner(copy)
    ids = _prefix(first)
    assert llamacpp.fill_prefix(first, 0, ids) == "prefill"
    (old,) = prompt_kv.entries(copy)
    # the same GGUF, untouched, in a new server: restored
    assert llamacpp.fill_prefix(tiny_runner(copy), 0, ids) == "store"
    # rebuilt under the same path (new mtime): not restored, and the old entry goes at the next eviction
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prompt_kv.entries(copy) == [] and prompt_kv.best(copy, ids) == (None, 0)
    rebuilt = tiny_runner(copy)
    assert llamacpp.fill_prefix(rebuilt, 0, ids) == "prefill"
    assert not old.meta.exists() and not old.kv.exists()  # the save's eviction took the stale entry
    assert prompt_kv.evict() == {"kept": 1, "deleted": 0, "bytes": prompt_kv.entries(copy)[0].kv.stat().st_size}
    # a GGUF gone from disk: its entries go too
    copy.unlink()
    assert prompt_kv.evict()["kept"] == 0


@pytest.mark.slow
def test_the_size_bound_evicts_the_least_recently_used(tiny_runner, monkeypatch):
    import time

    from nursery_core.engines import llamacpp, prompt_kv

    runner = tiny_runner()
    prefixes = [_prefix(runner, w) for w in ("tools", "weather", "memory")]
    for k, ids in enumerate(prefixes[:2]):
        assert llamacpp.fill_prefix(runner, k, ids) == "prefill"
    stored = {e.ids: e for e in prompt_kv.entries(runner.path)}
    assert len(stored) == 2
    size = max(e.kv.stat().st_size for e in stored.values())
    # the older entry is used again (a restore), so the other one is the least recently used
    old, young = (stored[tuple(p)] for p in prefixes[:2])
    past = time.time() - 100
    os.utime(old.kv, (past, past))
    os.utime(young.kv, (past + 10, past + 10))
    fresh = tiny_runner()
    assert llamacpp.fill_prefix(fresh, 0, prefixes[0]) == "store"
    # a bound that holds two entries: the third save evicts the least recently used
    monkeypatch.setattr(prompt_kv, "max_bytes", lambda: 2 * size + size // 2)
    assert llamacpp.fill_prefix(fresh, 1, prefixes[2]) == "prefill"
    left = {e.ids for e in prompt_kv.entries(runner.path)}
    assert left == {tuple(prefixes[0]), tuple(prefixes[2])}, left
    assert not young.kv.exists()


def test_the_size_setting_is_checked(monkeypatch):
    from nursery_core.engines import prompt_kv
    from nursery_core.errors import InvalidConfig

    monkeypatch.delenv("NURSERY_PROMPT_KV_MB", raising=False)
    assert prompt_kv.max_bytes() == prompt_kv.MAX_MB * 2**20
    monkeypatch.setenv("NURSERY_PROMPT_KV_MB", "12")
    assert prompt_kv.max_bytes() == 12 * 2**20 and prompt_kv.enabled()
    monkeypatch.setenv("NURSERY_PROMPT_KV_MB", "0")
    assert not prompt_kv.enabled()
    for bad in ("lots", "-1"):
        monkeypatch.setenv("NURSERY_PROMPT_KV_MB", bad)
        with pytest.raises(InvalidConfig, match="NURSERY_PROMPT_KV_MB"):
            prompt_kv.max_bytes()


def test_prepare_on_torch_prepares_nothing(tiny_model_dir, nursery_home):
    from cradle_helpers import make_adapter
    from nursery_core.interactive import prepare

    make_adapter("tiny-p", tiny_model_dir, seed=4)
    out = prepare("tiny-p", TOOLS)  # nursery_home sets NURSERY_ENGINE=torch
    assert out["engine"] == "torch" and out["source"] is None and "NURSERY_ENGINE" in out["reason"]


@pytest.mark.slow
def test_the_test_tab_reads_the_tool_list_in_a_visible_status(tiny_model_dir, nursery_home, auto_engine):
    """Model Cradle → Test on llama.cpp: Run shows "Reading the tool list…" after the model's loading status;
    once the server is warm, choosing another tool list reads it before the next click (so Run finds it warm)."""
    _llamacpp_ready()
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from cradle_helpers import make_adapter, store_dataset

    store_dataset("weather", n=8, eval_fraction=0.5)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "3_Model_Cradle.py"),
                           default_timeout=300)
    at.run()
    assert not at.exception and not [s.label for s in at.status if "tool list" in s.label]  # nothing warm yet
    at.selectbox(key="mc_test_model").set_value("ada")
    at.text_area(key="mc_test_prompt").set_value("What's the weather in Oslo?")
    at.number_input(key="mc_test_max_new").set_value(6)
    at.button(key="mc_test_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["mc_test_result"]["engine"] == "llama.cpp"
    # the run's statuses were drawn before the rerun that shows the result: the prepare is checked in the core
    from nursery_core.engines.llamacpp import get_llamacpp_pool

    runner = get_llamacpp_pool().served("ada", solo=True).runner  # the Test tab streams from the solo server
    pasted = json.dumps([TOOLS[1]["function"]])
    at.radio(key="mc_test_tools_source").set_value("Paste tools").run()
    at.text_area(key="mc_test_tools_text").set_value(pasted).run()
    labels = [s.label for s in at.status]
    assert any(lb.startswith("Tool list read into ada") or lb.startswith("Tool list of ada loaded")
               for lb in labels), labels
    from nursery_core.inference import resolve_tools
    from nursery_core.interactive import prepare

    assert prepare("ada", resolve_tools("ada", pasted)[0], solo=True)["source"] == "warm"  # read before the click
    assert any(len(ids) > 16 for ids in runner.cached)
    # the next rerun finds it warm and draws no status at all (a box that was emptied while open came back ticked
    # with its "Reading the tool list" label when its block ended)
    at.run()
    assert not at.exception and not [s.label for s in at.status if "tool list" in s.label.lower()], \
        [s.label for s in at.status]


@pytest.mark.slow
def test_a_stored_kv_is_restored_only_by_servers_with_its_slot_count(tiny_runner):
    """llama-server refuses a slot file saved by a server with another slot count (a model's solo server has 2,
    its batch server 4): each count keeps its own entry, and a restore never picks one it would fail on."""
    from nursery_core.engines import prompt_kv

    two = tiny_runner()
    ids = _prefix(two)
    two.prefill(ids, 0)
    saved = prompt_kv.save(two, 0, ids)
    assert saved is not None and saved.slots == 2 and saved.kv.name.endswith("-2.bin")
    four = tiny_runner(slots=4)
    assert prompt_kv.restore(four, 0, ids, 0) == 0 and saved.kv.exists()  # skipped, not failed and deleted
    four.prefill(ids, 0)
    assert prompt_kv.save(four, 0, ids).slots == 4
    assert sorted(e.slots for e in prompt_kv.entries(two.path)) == [2, 4]
    again = tiny_runner(slots=4)
    assert prompt_kv.restore(again, 1, ids, 0) == len(ids) and again.cached[1] == ids


def test_a_prompt_alone_goes_where_it_costs_least():
    """GGUFRunner.place: a slot sharing the prompt's prefix, else an empty slot rather than one holding another
    tool list (Test and Compare prepare different lists on one server), else the one whose loss is least."""
    import threading

    from nursery_core.engines.llamacpp_server import GGUFRunner

    r = GGUFRunner.__new__(GGUFRunner)
    r.slots, r._cached_lock = 3, threading.Lock()  # noqa: SLF001
    head = list(range(30))  # the chat template's opening, shared by every tool list
    tools_a, tools_b = head + list(range(100, 200)), head + list(range(300, 400))
    r.cached = [tools_a + [1, 2, 3], [], []]
    assert r.place(tools_b + [5]) == 1
    assert r.place(tools_a + [7, 8]) == 0
    r.cached = [tools_a, tools_b + [9], head]
    assert r.place(tools_b + [4]) == 1
    assert r.place(list(range(1000, 1100))) == 2
