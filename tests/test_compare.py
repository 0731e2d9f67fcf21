"""nursery_compare_models: the call diff, outcome labels, interactive and batch modes on tiny adapters."""
import pytest

from cradle_helpers import make_adapter, one_thread, store_dataset  # noqa: F401 (fixture)
from nursery_core.compare import OUTCOMES, diff_calls, outcome


def test_diff_pairs_calls_by_name_and_marks_each_argument():
    a = [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
         {"name": "set_timer", "arguments": {"minutes": 5}}]
    b = [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "fahrenheit", "days": 2}},
         {"name": "web_search", "arguments": {"q": "x"}}]
    d = diff_calls(a, b)
    assert [(r["tool"], r["status"]) for r in d] == [("get_weather", "different"), ("set_timer", "only_a"),
                                                     ("web_search", "only_b")]
    assert [(x["argument"], x["status"]) for x in d[0]["arguments"]] == [
        ("city", "same"), ("unit", "different"), ("days", "only_b")]
    assert diff_calls(a, list(reversed(a))) == [
        {"tool": "get_weather", "status": "same", "arguments": [
            {"argument": "city", "a": "Paris", "b": "Paris", "status": "same"},
            {"argument": "unit", "a": "celsius", "b": "celsius", "status": "same"}]},
        {"tool": "set_timer", "status": "same", "arguments": [
            {"argument": "minutes", "a": 5, "b": 5, "status": "same"}]}]
    assert diff_calls([], []) == []


def test_same_named_calls_pair_with_their_best_match():
    a = [{"name": "f", "arguments": {"x": 1}}, {"name": "f", "arguments": {"x": 2}}]
    b = [{"name": "f", "arguments": {"x": 2}}, {"name": "f", "arguments": {"x": 1}}]
    assert all(r["status"] == "same" for r in diff_calls(a, b))


def test_outcome_labels():
    assert [outcome(True, True), outcome(True, False), outcome(False, True), outcome(False, False)] == list(OUTCOMES)


def test_interactive_and_batch_comparison(tiny_model_dir, one_thread):
    from nursery_core.compare import nursery_compare_models

    store_dataset("weather", n=8, eval_fraction=0.5)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    make_adapter("bob", tiny_model_dir, seed=2, dataset="weather")
    r = nursery_compare_models("ada", "bob", prompts=["Weather in Rome?", "Set a 3 minute timer"], max_new_tokens=10)
    assert r["mode"] == "interactive" and r["tools"] == ["get_weather", "set_timer"] and len(r["rows"]) == 2
    row = r["rows"][0]
    assert row["prompt"] == "Weather in Rome?" and row["a"]["completion"] != row["b"]["completion"]
    assert isinstance(row["diff"], list)

    seen = []
    b = nursery_compare_models("ada", str(tiny_model_dir), dataset="weather", max_new_tokens=10, batch_size=4,
                               progress=lambda which, done, total: seen.append(which))
    assert b["mode"] == "batch" and b["num_examples"] == 4 and set(seen) == {"A", "B"}
    assert sum(b["summary"].values()) == 4 and set(b["summary"]) == set(OUTCOMES)
    for row in b["rows"]:
        assert row["outcome"] == outcome(row["a"]["ast_ok"], row["b"]["ast_ok"])
        assert row["prompt"] and "gold" in row
    assert b["a_ast_accuracy"] == b["a_metrics"]["ast_accuracy"]


def test_compare_needs_prompts_or_a_dataset():
    from nursery_core.compare import nursery_compare_models
    from nursery_core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="either prompts or a dataset"):
        nursery_compare_models("a", "b")
    with pytest.raises(InvalidInput, match="either prompts or a dataset"):
        nursery_compare_models("a", "b", prompts=["x"], dataset="d")


@pytest.mark.slow
def test_both_sides_answer_at_once_on_llamacpp_with_the_sequential_answers(tiny_model_dir, nursery_home, one_thread,
                                                                         monkeypatch):
    """Served by llama.cpp, models A and B answer at the same time (each side waits for the other inside its
    generation: run one after the other, this would time out), with progress on the caller's thread, and the
    answers are each model's own."""
    import threading

    from conftest import require
    from nursery_core.compare import nursery_compare_models
    from nursery_core.engines import llamacpp
    from nursery_core.export.gguf import converter_available
    from nursery_core.export.verify import bindings_available
    from nursery_core.interactive import generate_batch

    require(bindings_available() and converter_available(), "llama.cpp bindings and GGUF converter")
    monkeypatch.setenv("NURSERY_ENGINE", "auto")
    monkeypatch.setenv("NURSERY_LLAMACPP_THREADS", "1")
    make_adapter("ada", tiny_model_dir, seed=1)
    make_adapter("bob", tiny_model_dir, seed=2)
    from cradle_helpers import TOOLS

    prompts = ["Weather in Rome?", "Set a 3 minute timer"]
    items = [{"messages": [{"role": "user", "content": p}], "tools": TOOLS} for p in prompts]
    settings = {"max_new_tokens": 10, "guarded": False, "stop_after_calls": True}
    try:
        alone = {m: list(generate_batch(m, items, settings, engine="auto")) for m in ("ada", "bob")}
        both_in = threading.Barrier(2, timeout=120)
        real = llamacpp.generate

        def meet_then_generate(*a, **k):
            both_in.wait()
            return real(*a, **k)

        monkeypatch.setattr(llamacpp, "generate", meet_then_generate)
        seen = []
        r = nursery_compare_models("ada", "bob", prompts=prompts, tools=TOOLS, max_new_tokens=10, guarded=False,
                                   progress=lambda w, d, t: seen.append((w, d, t, threading.current_thread())))
    finally:
        llamacpp.get_llamacpp_pool().clear()
    assert {w: e["engine"] for w, e in r["engines"].items()} == {"A": "llama.cpp", "B": "llama.cpp"}
    assert [row["a"]["completion"] for row in r["rows"]] == alone["ada"]
    assert [row["b"]["completion"] for row in r["rows"]] == alone["bob"]
    assert sorted((w, d, t) for w, d, t, _ in seen) == [("A", 1, 2), ("A", 2, 2), ("B", 1, 2), ("B", 2, 2)]
    assert {th for *_, th in seen} == {threading.current_thread()}


@pytest.mark.parametrize("threads, cores, together", [("1", 2, True), ("2", 2, False), ("1", 1, False)])
def test_llamacpp_sides_run_at_once_only_when_their_threads_fit_the_cores(monkeypatch, threads, cores, together):
    """Two llama.cpp servers with more threads than the cores oversubscribe them (llama.cpp's threads spin), so
    the sides of a compare answer at once only when each server's threads times the models fit the cores."""
    import os
    import threading
    import time

    from nursery_core import interactive

    monkeypatch.setenv("NURSERY_LLAMACPP_THREADS", threads)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(interactive, "engine_for", lambda name, engine="auto": ("llama.cpp", None))
    inside, most = [0], [0]
    lock = threading.Lock()

    def fake_batch(name, prompts, s, engine="auto", progress=None):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.3)
        with lock:
            inside[0] -= 1
        return [f"{name}:{p}" for p in prompts]

    monkeypatch.setattr(interactive, "generate_batch", fake_batch)
    out = interactive.generate_side_by_side((("A", "ada"), ("B", "bob")), ["hi"], {"max_new_tokens": 4})
    assert out == {"A": ["ada:hi"], "B": ["bob:hi"]}
    assert (most[0] == 2) is together
