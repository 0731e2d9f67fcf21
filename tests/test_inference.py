"""The model pool (one base shared by adapters and the bare base, LRU eviction) and batched generation."""
import pytest

from cradle_helpers import TOOLS, make_adapter

PROMPTS = [{"messages": [{"role": "user", "content": text}], "tools": TOOLS}
           for text in ["hi", "What's the weather in Paris right now, please?", "Set a timer for 5 minutes",
                        "ok then tell me something long about the history of Lima and its weather"]]


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch):
    """An empty pool per test; one torch thread (tiny models; the shared 2-core machine thrashes with more)."""
    import torch

    from nursery_core import inference
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(inference, "_POOL", None)
    yield
    inference._POOL = None
    torch.set_num_threads(threads)


def test_one_base_serves_two_adapters_and_the_bare_base(tiny_model_dir):
    from nursery_core.inference import generate_batch, get_pool

    make_adapter("ada", tiny_model_dir, seed=1)
    make_adapter("bob", tiny_model_dir, seed=2)
    base = str(tiny_model_dir)
    kw = dict(max_new_tokens=12)
    a1 = generate_batch("ada", PROMPTS, **kw)
    b1 = generate_batch("bob", PROMPTS, **kw)
    bare = generate_batch(base, PROMPTS, **kw)
    pool = get_pool()
    assert pool.loads == 1
    assert pool.loaded() == [{"base": str(tiny_model_dir.resolve()), "adapters": ["ada", "bob"]}]
    # each name really runs its own weights, and switching back gives the same answers again
    assert a1 != b1 and a1 != bare and b1 != bare
    assert generate_batch("ada", PROMPTS, **kw) == a1
    assert generate_batch(base, PROMPTS, **kw) == bare
    assert pool.loads == 1


def test_bases_are_evicted_least_recently_used(tiny_model_dir, tmp_path):
    import shutil

    from nursery_core import inference
    from nursery_core.inference import ModelPool, generate_batch, get_pool

    other = shutil.copytree(tiny_model_dir, tmp_path / "other")   # another directory is another base
    third = shutil.copytree(tiny_model_dir, tmp_path / "third")
    inference._POOL = ModelPool(max_bases=2)
    for ref in (str(tiny_model_dir), str(other), str(tiny_model_dir), str(third)):
        generate_batch(ref, PROMPTS[:1], max_new_tokens=2)
    pool = get_pool()
    assert [row["base"] for row in pool.loaded()] == [str(tiny_model_dir.resolve()), str(third.resolve())]
    assert pool.loads == 3
    generate_batch(str(other), PROMPTS[:1], max_new_tokens=2)   # was evicted: loaded again, evicting tiny
    assert pool.loads == 4
    assert [row["base"] for row in pool.loaded()] == [str(third.resolve()), str(other.resolve())]


def test_left_padded_batches_match_one_by_one_greedy(tiny_model_dir):
    from nursery_core.inference import generate_batch

    make_adapter("ada", tiny_model_dir, seed=1)
    batched = generate_batch("ada", PROMPTS, max_new_tokens=16, batch_size=4)
    single = [generate_batch("ada", [p], max_new_tokens=16, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)  # not trivially empty


def test_generate_with_takes_a_loaded_model_and_stops_at_end_of_turn(tiny_model_dir):
    from nursery_core.base_models import load_base
    from nursery_core.inference import generate_with, stream_with

    model, tok, _ = load_base(str(tiny_model_dir))
    out = generate_with(model, tok, [(p["messages"], p["tools"]) for p in PROMPTS[:2]], max_new_tokens=8)
    assert len(out) == 2 and all("<|im_end|>" not in o for o in out)
    streamed = "".join(stream_with(model, tok, PROMPTS[1], max_new_tokens=8)).strip()
    assert streamed == out[1]


def test_adapter_retrained_under_the_same_name_is_reloaded(tiny_model_dir):
    import shutil

    from nursery_core.inference import generate_batch
    from nursery_core.store import get_store
    from nursery_core import paths

    make_adapter("ada", tiny_model_dir, seed=1)
    first = generate_batch("ada", PROMPTS, max_new_tokens=10)
    shutil.rmtree(paths.model_dir("ada"))
    get_store().delete_model("ada")
    make_adapter("ada", tiny_model_dir, seed=7)
    assert generate_batch("ada", PROMPTS, max_new_tokens=10) != first


def test_test_model_reports_calls_and_validity(tiny_model_dir):
    from nursery_core.inference import analyse_completion
    from nursery_core.interactive import nursery_test_model

    make_adapter("ada", tiny_model_dir, seed=1)
    r = nursery_test_model("ada", "Weather in Oslo?", max_new_tokens=8)
    assert r["tools"] == ["get_weather", "set_timer"] and r["tools_source"] == "training tools of ada"
    assert isinstance(r["completion"], str) and r["settings"]["greedy"]
    a = analyse_completion('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
                           '<tool_call>\n{"name": "get_weather", "arguments": {"city": 5, "x": 1}}\n</tool_call>\n'
                           '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>\n<tool_call>{bad</tool_call>',
                           TOOLS)
    assert [c["schema_valid"] for c in a["calls"]] == [True, False, False]
    assert [c["known_tool"] for c in a["calls"]] == [True, True, False]
    assert not a["format_ok"] and a["invalid_blocks"] == 1


def test_unknown_model_and_bad_settings_are_clear_errors(tiny_model_dir):
    from nursery_core.errors import InvalidConfig, NotFound
    from nursery_core.inference import generate_batch
    from nursery_core.interactive import nursery_test_model

    with pytest.raises(NotFound, match="no model named 'ghost'"):
        generate_batch("ghost", PROMPTS)
    with pytest.raises(InvalidConfig, match="top_p"):
        nursery_test_model(str(tiny_model_dir), "hi", top_p=0)


def test_prefix_cache_gives_the_same_stream_and_is_used(tiny_model_dir):
    """A warm model does not run the system turn with the tools again: the stream is the same with the cached
    prefix KV, and the second prompt with the same tools is a cache hit."""
    from nursery_core.inference import GenerationSettings, get_pool, stream_with

    make_adapter("ada", tiny_model_dir, seed=1)
    pool = get_pool()
    s = GenerationSettings.of(None, max_new_tokens=16, guarded=False)
    with pool._active("ada") as (m, tok):
        cold = ["".join(stream_with(m, tok, p, s)) for p in PROMPTS[:3]]
        cache = pool.prefix_cache("ada")
        warm = ["".join(stream_with(m, tok, p, s, prefix_cache=cache)) for p in PROMPTS[:3]]
    assert warm == cold
    assert (cache.misses, cache.hits) == (1, 2)
    pool.forget("ada")  # a deleted or retrained adapter takes its cached prefixes with it
    assert pool.prefix_cache("ada").hits == 0


def test_stop_after_calls_cuts_what_follows_complete_calls():
    from nursery_core.inference import StopAfterCalls

    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert not StopAfterCalls.finished(call)                      # another call may follow
    assert not StopAfterCalls.finished(call + "\n<tool")          # …and is starting
    assert not StopAfterCalls.finished(call + "\n<tool_call>\n{")  # an open block is never cut
    assert not StopAfterCalls.finished("Sure, here is the weather")  # plain answers run to their end
    assert StopAfterCalls.finished(call + "\nThe weather in Oslo")
    assert StopAfterCalls.cut(call + "\nThe weather in Oslo") == call
    assert StopAfterCalls.cut(call + "\n" + call) == call + "\n" + call


def test_warm_tells_loaded_models_apart(tiny_model_dir):
    from nursery_core.inference import get_pool

    make_adapter("ada", tiny_model_dir, seed=1)
    pool = get_pool()
    assert not pool.is_loaded("ada")
    assert pool.warm("ada") > 0 and pool.is_loaded("ada") and pool.is_loaded(str(tiny_model_dir))


def test_batch_progress_is_reported_answer_by_answer(tiny_model_dir):
    """Rows of one batch that end early are reported before the batch is over (the Compare bar moves per
    answer); the last report is the total."""
    from nursery_core.inference import generate_batch

    seen = []
    generate_batch(str(tiny_model_dir), PROMPTS, max_new_tokens=24, batch_size=4,
                   progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4, 4)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes back


def test_row_progress_counts_rows_that_ended():
    import torch

    from nursery_core.inference import RowProgress

    seen = []
    rp = RowProgress(2, [9], seen.append)
    ids = torch.tensor([[1, 1, 5, 9], [1, 1, 5, 6], [1, 1, 9, 0]])
    assert not rp(ids, None).any()
    assert seen == [2]
    rp(ids, None)
    assert seen == [2]  # reported once per change
