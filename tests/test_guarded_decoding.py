"""Guarded decoding: the grammar built from the offered tools (accepts trained-layout calls and plain text, rejects
unknown tools and schema-invalid JSON, bounds arrays, strings and the call count), its plans and fallbacks, the
logits processor on a tiny model (batched, left-padded), and on SmolLM2 (slow): the bare base and a briefly
trained adapter never name an unoffered tool nor emit undecodable JSON, and greedy guarded output equals the free
output whenever the free output was valid."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cradle_helpers import TOOLS, make_adapter, one_thread, store_dataset  # noqa: F401 (fixture)
from nursery_core.guard.grammar import GuardCaps, bounded_schema, decoding_summary, plan_for, tool_grammar
from nursery_core.training.rendering import format_calls

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "bench" / "golden" / "default_tools.jsonl"


@pytest.fixture(scope="module")
def tok():
    from nursery_core.base_models import load_embedded_tokenizer
    from nursery_core.training.rendering import prepare_tokenizer

    return prepare_tokenizer(load_embedded_tokenizer(), "chatml")


def accepts(tok, tools, text, caps=GuardCaps(), ended=True) -> bool:
    from nursery_core.guard.processor import accepts as grammar_accepts

    return grammar_accepts(tok, [tok.eos_token_id], tool_grammar(tools, caps)[0], text, ended)


def call(name, **arguments) -> str:
    return format_calls([{"name": name, "arguments": arguments}])


def fn(name, properties, required=(), **extra):
    return {"type": "function", "function": {"name": name, "description": "d", "parameters": {
        "type": "object", "properties": properties, "required": list(required), **extra}}}


# ------------------------------------------------------------------------------------------- grammar
def test_calls_in_the_trained_layout_and_plain_text_are_accepted(tok):
    from nursery_core.data.tools import DEFAULT_TOOLS

    assert accepts(tok, TOOLS, call("get_weather", city="Paris"))
    assert accepts(tok, TOOLS, call("get_weather", city="São Paulo \"centro\"\n", unit="fahrenheit"))
    assert accepts(tok, TOOLS, format_calls([{"name": "get_weather", "arguments": {"city": "Oslo"}},
                                             {"name": "set_timer", "arguments": {"minutes": 5}}]))
    assert accepts(tok, TOOLS, "Paris is lovely in spring.\n\nAnything else?")
    assert accepts(tok, TOOLS, "")
    assert accepts(tok, TOOLS, call("get_weather", city="Lima"), ended=False)  # a prefix may continue
    assert accepts(tok, DEFAULT_TOOLS, format_calls([
        {"name": "send_email", "arguments": {"to": "ana@example.com", "subject": "Hi", "body": "See you at 5.",
                                             "cc": ["bo@example.org"]}},
        {"name": "create_calendar_event", "arguments": {"title": "Gym", "date": "2025-09-22",
                                                        "start_time": "09:00", "duration_minutes": 45}},
        {"name": "run_sql", "arguments": {"query": "SELECT 1", "read_only": False, "max_rows": 10}},
        {"name": "memory_store", "arguments": {"content": "x", "tags": ["a", "b"], "importance": "high"}}]))


def test_unknown_tools_and_schema_invalid_json_are_rejected(tok):
    good = call("get_weather", city="Paris")
    assert not accepts(tok, TOOLS, call("get_forecast", city="Paris"))                   # not offered
    assert not accepts(tok, TOOLS, call("get_weather", city=3))                           # wrong type
    assert not accepts(tok, TOOLS, call("get_weather", unit="celsius"))                   # required missing
    assert not accepts(tok, TOOLS, call("get_weather", city="Paris", unit="kelvin"))      # not in the enum
    assert not accepts(tok, TOOLS, call("get_weather", city="Paris", country="FR"))       # undeclared key
    assert not accepts(tok, TOOLS, good[:-len("}\n</tool_call>")] + "\n</tool_call>")    # malformed JSON
    assert not accepts(tok, TOOLS, good.replace('{"city": "Paris"}', '{"city":"Paris"}'))  # not the trained layout
    assert not accepts(tok, TOOLS, "Sure! " + good)                                       # a call inside text
    assert not accepts(tok, TOOLS, good + "\nDone, anything else?")                       # text after a call
    # llguidance fixes keys to the schema's property order (training writes that order too)
    assert not accepts(tok, TOOLS, call("get_weather", unit="celsius", city="Paris"))
    assert accepts(tok, TOOLS, call("get_weather", city="Paris", unit="celsius"))


def test_arrays_strings_and_the_call_count_are_bounded(tok):
    tools = [fn("tag", {"labels": {"type": "array", "items": {"type": "string"}},
                        "note": {"type": "string"},
                        "codes": {"type": "array", "items": {"type": "integer"}, "maxItems": 1}})]
    caps = GuardCaps(max_calls=2, max_string=5, max_items=2)
    assert accepts(tok, tools, call("tag", labels=["a", "b"], note="12345", codes=[7]), caps)
    assert not accepts(tok, tools, call("tag", labels=["a", "b", "c"]), caps)      # cap where no maxItems
    assert not accepts(tok, tools, call("tag", note="123456"), caps)               # cap where no maxLength
    assert not accepts(tok, tools, call("tag", codes=[1, 2]), caps)                # the schema's own maxItems
    assert accepts(tok, tools, "\n".join([call("tag")] * 2), caps)
    assert not accepts(tok, tools, "\n".join([call("tag")] * 3), caps)            # at most max_calls blocks
    # the default caps keep a schema's own, larger bounds
    from nursery_core.data.tools import DEFAULT_TOOLS
    assert accepts(tok, DEFAULT_TOOLS, call("memory_store", content="x" * 1500))
    assert not accepts(tok, DEFAULT_TOOLS, call("memory_store", content="x", tags=list("abcdef")))


def test_bounded_schema_caps_closes_and_relaxes():
    relaxed: list[str] = []
    schema = {"type": "object", "description": "drop me", "properties": {
        "s": {"type": "string", "minLength": 900}, "e": {"type": "string", "enum": ["a"]},
        "tags": {"type": "array", "items": {"type": "string", "format": "colour"}, "uniqueItems": True},
        "nested": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "description": {"type": "string", "maxLength": 3}}}
    out = bounded_schema(schema, GuardCaps(max_string=100, max_items=4), "t", relaxed)
    props = out["properties"]
    assert "description" not in out and props["description"] == {"type": "string", "maxLength": 3}
    assert props["s"]["maxLength"] == 900 and "maxLength" not in props["e"]
    assert props["tags"] == {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 4}
    assert out["additionalProperties"] is False and props["nested"]["additionalProperties"] is False
    assert relaxed == ["t.tags[]: format 'colour'", "t.tags: uniqueItems"]
    assert schema["properties"]["s"] == {"type": "string", "minLength": 900}   # the tool itself is untouched


def test_every_gold_answer_of_the_default_tools_dataset_passes(tok):
    """Key order, separators and layout of the generated training data are exactly what the grammar allows."""
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    from nursery_core.datasets import load_examples

    nursery_generate_data(DEFAULT_TOOL_NAMES, num_examples=150, seed=3, name="defaults")
    checked = 0
    for ex in load_examples("defaults", "all"):
        for m in ex["messages"]:
            if m["role"] != "assistant":
                continue
            text = format_calls([{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                                 for c in m.get("tool_calls") or []]) or m.get("content") or ""
            assert accepts(tok, ex["tools"], text), (ex["id"], text)
            checked += 1
    assert checked >= 150


def test_every_golden_answer_passes(tok):
    """The hand-written golden set (bench/golden/default_tools.jsonl) is in the layout the grammar allows too."""
    from nursery_core.golden import read_golden_file
    from nursery_core.training.rendering import eval_prompts

    if not GOLDEN.is_file():
        pytest.skip("no golden set file")
    rows = read_golden_file(GOLDEN)
    for line, ex in rows:
        _, gold = eval_prompts(ex)
        text = format_calls(gold) or "I can't do that with these tools."
        assert accepts(tok, ex["tools"], text), (line, text)
    assert len(rows) >= 50


def test_no_tools_allow_only_text(tok):
    assert accepts(tok, [], "Just text.")
    assert not accepts(tok, [], call("get_weather", city="Paris"))


# --------------------------------------------------------------------------------------------- plans
def test_unsupported_schemas_fall_back_to_free_and_say_why():
    odd = fn("odd", {"a": {"not": {"type": "string"}}})
    plan = plan_for(TOOLS + [odd])
    assert not plan.guarded and "'odd'" in plan.reason and "not" in plan.reason and "decoded free" in plan.reason
    relaxed = plan_for([fn("tagger", {"tags": {"type": "array", "items": {"type": "string"},
                                               "uniqueItems": True}})])
    assert relaxed.guarded and relaxed.relaxed == ("tagger.tags: uniqueItems",)
    summary = decoding_summary(True, [plan_for(TOOLS), plan, relaxed])
    assert summary["decoding"] == "mixed" and summary["guarded_prompts"] == 2
    assert summary["notes"][0] == plan.reason and "uniqueItems" in summary["notes"][1]
    assert decoding_summary(False, [plan_for(TOOLS)]) == {"decoding": "free", "guarded_prompts": 0, "prompts": 1,
                                                          "notes": []}


def test_plans_are_compiled_once_per_tool_list():
    assert plan_for(TOOLS) is plan_for(copy.deepcopy(TOOLS))
    assert plan_for(list(reversed(TOOLS))).grammar != plan_for(TOOLS).grammar
    assert plan_for(TOOLS, GuardCaps(max_calls=1)).grammar != plan_for(TOOLS).grammar


# --------------------------------------------------------------------------------- the processor, tiny model
PROMPTS = [{"messages": [{"role": "user", "content": text}], "tools": TOOLS}
           for text in ["hi", "What's the weather in Paris right now, please?", "Set a timer for 5 minutes",
                        "ok then tell me something long about the history of Lima and its weather"]]


@pytest.fixture
def fresh_pool(monkeypatch, one_thread):
    from nursery_core import inference

    monkeypatch.setattr(inference, "_POOL", None)
    yield
    inference._POOL = None


@pytest.mark.parametrize("budget", [None, 40])
def test_a_random_model_forced_into_a_call_still_writes_a_valid_one(tiny_model_dir, one_thread, budget):
    """Random weights, sampling and greedy, a batch with left padding: whatever the model picks, every call names
    an offered tool with schema-valid arguments; with a token budget smaller than the strings may grow, budget
    closing still ends every call in time."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from nursery_core.base_models import load_base
    from nursery_core.evaluation.metrics import schema_errors
    from nursery_core.evaluation.parser import parse_tool_calls
    from nursery_core.guard.processor import ToolCallGuard
    from nursery_core.guard.processor import accepts as grammar_accepts
    from nursery_core.inference import _render, _stop_ids

    tools = [fn("set_timer", {"minutes": {"type": "integer", "minimum": 1, "maximum": 90},
                              "label": {"type": "string"}}, ["minutes"]),
             fn("get_weather", {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                ["city"])]
    model, tk, _ = load_base(str(tiny_model_dir))
    start = tk.encode("<tool_call>", add_special_tokens=False)

    class StartACall(LogitsProcessor):
        """Pushes the first tokens towards `<tool_call>`, so the grammar has a call to shape."""

        def __call__(self, input_ids, scores):
            k = input_ids.shape[1] - prompt_len
            if k < len(start):
                scores[:, start[k]] += 1000.0
            return scores

    caps = GuardCaps() if budget else GuardCaps(max_calls=2, max_string=6, max_items=2)
    grammar = tool_grammar(tools, caps)[0]
    texts = [_render(tk, {"messages": p["messages"], "tools": tools}) for p in PROMPTS]
    tk.padding_side = "left"
    enc = tk(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_len = enc["input_ids"].shape[1]
    stop = _stop_ids(tk)
    outputs, steered = [], 0
    for seed in range(3):
        torch.manual_seed(seed)
        greedy = seed == 0
        guard = ToolCallGuard.for_rows(tk, stop, [grammar] * len(texts), greedy=greedy, max_new_tokens=budget)
        gen = model.generate(**enc, do_sample=not greedy, top_k=0, max_new_tokens=budget or 120, eos_token_id=stop,
                             pad_token_id=tk.pad_token_id, logits_processor=LogitsProcessorList([StartACall(), guard]))
        assert not guard.errors
        steered += len(guard.steered)
        for row in gen[:, prompt_len:]:
            ids = row.tolist()
            ids = ids[:next((i for i, t in enumerate(ids) if t in stop), len(ids))]
            text = tk.decode(ids)
            # ended, or out of tokens where the answer may end (whitespace after a call): never inside a call
            assert grammar_accepts(tk, stop, grammar, text), text
            outputs.append(text)
    assert bool(steered) == bool(budget)  # sampled random strings do not end by themselves within 40 tokens
    for text in outputs:
        parsed = parse_tool_calls(text)
        assert parsed.format_ok and parsed.calls and not parsed.errors, text
        for c in parsed.calls:
            tool = next(t["function"] for t in tools if t["function"]["name"] == c["name"])
            assert not schema_errors(tool, c["arguments"]), text


def test_guarded_batches_match_one_by_one_and_valid_free_output(tiny_model_dir, fresh_pool):
    from nursery_core.base_models import load_base
    from nursery_core.guard.processor import accepts as grammar_accepts
    from nursery_core.inference import _stop_ids, generate_batch

    make_adapter("ada", tiny_model_dir, seed=1)
    batched = generate_batch("ada", PROMPTS, max_new_tokens=16, batch_size=4)
    single = [generate_batch("ada", [p], max_new_tokens=16, batch_size=1)[0] for p in PROMPTS]
    assert batched == single and any(batched)
    assert batched.decoding["decoding"] == "guarded" and batched.decoding["guarded_prompts"] == 4
    free = generate_batch("ada", PROMPTS, max_new_tokens=16, batch_size=4, guarded=False)
    assert free.decoding["decoding"] == "free"
    _, tk, _ = load_base(str(tiny_model_dir))
    grammar = plan_for(TOOLS).grammar
    valid = [grammar_accepts(tk, _stop_ids(tk), grammar, f, ended=False) for f in free]
    assert any(valid)
    assert [g for g, v in zip(batched, valid) if v] == [f for f, v in zip(free, valid) if v]


def test_unguardable_requests_decode_free_and_results_say_so(tiny_model_dir, fresh_pool):
    from nursery_core.inference import generate_batch
    from nursery_core.interactive import nursery_test_model

    make_adapter("ada", tiny_model_dir, seed=1)
    odd = fn("odd", {"a": {"if": {"type": "string"}, "then": {"minLength": 2}}})
    mixed = generate_batch("ada", [PROMPTS[0], {"messages": PROMPTS[1]["messages"], "tools": [odd]},
                                   "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"], max_new_tokens=4)
    assert len(mixed) == 3 and mixed.decoding["decoding"] == "mixed" and mixed.decoding["guarded_prompts"] == 1
    assert any("'odd'" in n for n in mixed.decoding["notes"]) and any("rendered text" in n
                                                                      for n in mixed.decoding["notes"])
    r = nursery_test_model("ada", "Weather in Oslo?", max_new_tokens=6)
    assert r["decoding"] == "guarded" and r["settings"]["guarded"] is True
    assert not any("decoded free" in n for n in r["decoding_notes"])
    r = nursery_test_model("ada", "Weather in Oslo?", tools=json.dumps([odd]), max_new_tokens=6)
    assert r["decoding"] == "free" and "'odd'" in r["decoding_notes"][0]
    assert nursery_test_model("ada", "Weather?", max_new_tokens=6, guarded=False)["decoding"] == "free"


def test_the_stream_reports_its_decoding(tiny_model_dir, fresh_pool):
    from nursery_core.inference import generate_batch
    from nursery_core.interactive import stream_test_model

    make_adapter("ada", tiny_model_dir, seed=1)
    stream = stream_test_model("ada", "Weather in Oslo?", TOOLS, max_new_tokens=8)
    assert stream.decoding["decoding"] == "guarded"
    text = "".join(stream)
    assert stream.decoding["decoding"] == "guarded"
    batch = generate_batch("ada", [{"messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": TOOLS}],
                           max_new_tokens=8)
    assert text.strip() == batch[0]


# --------------------------------------------------------------------------- compare, evaluate, CLI with decoding
def test_compare_is_guarded_by_default_and_can_run_free(tiny_model_dir, fresh_pool):
    from nursery_core.compare import nursery_compare_models

    make_adapter("ada", tiny_model_dir, seed=1)
    make_adapter("bob", tiny_model_dir, seed=2)
    r = nursery_compare_models("ada", "bob", prompts=["Weather in Rome?"], max_new_tokens=6)
    assert r["decoding"] == "guarded" and r["settings"]["guarded"] is True
    assert not any("decoded free" in n for n in r["decoding_notes"])
    r = nursery_compare_models("ada", "bob", prompts=["Weather in Rome?"], max_new_tokens=6, guarded=False)
    assert r["decoding"] == "free" and r["settings"]["guarded"] is False


def test_evaluate_stores_free_and_guarded_runs_and_ranks_them_apart(tiny_model_dir, fresh_pool, store):
    from nursery_core.evaluation.api import evaluation_details, nursery_evaluate, nursery_leaderboard
    from nursery_core.registry import get_model

    store_dataset("weather", n=8)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    r = nursery_evaluate("ada", "weather", split="all", limit=3, max_new_tokens=6)
    free, guarded = r["runs"]
    assert (free["decoding"], guarded["decoding"]) == ("free", "guarded") and r["id"] == guarded["id"]
    assert free["settings"]["guarded"] is False and guarded["settings"]["decoding_ran"] == "guarded"
    assert store.get_evaluation(free["id"])["settings"]["decoding"] == "free"
    assert len(evaluation_details(free["id"])) == len(evaluation_details(guarded["id"])) == 3
    board = nursery_leaderboard("weather")
    assert sorted((b["decoding"], b["rank"]) for b in board) == [("free", 1), ("guarded", 1)]
    assert [b["decoding"] for b in nursery_leaderboard("weather", "free")] == ["free"]
    assert get_model("ada")["evaluation"]["decoding"] == "guarded"
    only = nursery_evaluate("ada", "weather", split="all", limit=2, max_new_tokens=4, decoding="free")
    assert only["decoding"] == "free" and "runs" not in only
    with pytest.raises(Exception, match="decoding must be one of"):
        nursery_evaluate("ada", "weather", decoding="sometimes")


def test_guarded_evaluation_cuts_text_answers_and_scores_the_same(tiny_model_dir, fresh_pool, store, monkeypatch):
    """A guarded answer begun as text can call no tool: evaluation cuts it after TEXT_ANSWER_TOKENS, says so in
    its settings, and every score equals the uncut run's."""
    from nursery_core import inference
    from nursery_core.evaluation.api import evaluation_details, load_eval_examples, nursery_evaluate, score_outputs
    from nursery_core.training.rendering import eval_prompts

    store_dataset("weather", n=8)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    monkeypatch.setattr(inference, "TEXT_ANSWER_TOKENS", 3)
    r = nursery_evaluate("ada", "weather", split="all", limit=4, max_new_tokens=12, decoding="guarded")
    assert r["settings"]["text_tokens"] == 3 and any("cut after 3 tokens" in n for n in r["settings"]["decoding_notes"])
    examples = load_eval_examples("weather", "all", 4)
    prompts = [{"messages": eval_prompts(ex)[0], "tools": ex.get("tools")} for ex in examples]
    whole = inference.generate_batch("ada", prompts, max_new_tokens=12, batch_size=8)
    cut = [d["output"] for d in evaluation_details(r["id"])]
    texts = [w for w in whole if inference.is_text_answer(w)]
    assert texts, whole  # the random adapter answers some prompts in text: the cut has something to cut
    assert all(w.startswith(c) for c, w in zip(cut, whole)) and any(len(c) < len(w) for c, w in zip(cut, whole))
    assert score_outputs(examples, list(whole))[1] == r["metrics"]
    free = nursery_evaluate("ada", "weather", split="all", limit=2, max_new_tokens=4, decoding="free")
    assert free["settings"]["text_tokens"] is None


@pytest.mark.slow
def test_cli_flags_choose_the_decoding(tiny_model_dir, nursery_home):
    import os
    import subprocess
    import sys

    store_dataset("weather", n=8)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "nursery_core", *args], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "NURSERY_HOME": str(nursery_home), "OMP_NUM_THREADS": "1"},
                           timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert json.loads(cli("test-model", "ada", "--prompt", "Oslo?", "--max-new-tokens", "4", "--json"))[
        "decoding"] == "guarded"
    out = cli("test-model", "ada", "--prompt", "Oslo?", "--max-new-tokens", "4", "--free")
    assert "decoding: free" in out
    out = cli("evaluate", "ada", "--dataset", "weather", "--limit", "2", "--max-new-tokens", "4")
    rows = [line.split() for line in out.splitlines() if "held-out" in line]  # one row per decoding
    assert sorted(r[3] for r in rows) == ["free", "guarded"], out
    board = cli("leaderboard", "--decoding", "guarded")
    assert "guarded" in board and "free " not in board


# ------------------------------------------------------------------------------- SmolLM2: base and adapter (slow)
EVAL_PROMPTS = 3     # of the default tools' eval split
GOLDEN_PROMPTS = 2   # of bench/golden/default_tools.jsonl, when it exists
SMOL_TOKENS = 96


def default_prompts() -> list[dict]:
    """The default tools' generated eval split (cut before the first answer), then golden-set requests."""
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    from nursery_core.datasets import load_examples
    from nursery_core.training.rendering import eval_prompts

    nursery_generate_data(DEFAULT_TOOL_NAMES, num_examples=120, seed=0, name="defaults")
    prompts = [{"messages": eval_prompts(ex)[0], "tools": ex["tools"]}
               for ex in load_examples("defaults", "eval", limit=EVAL_PROMPTS)]
    if GOLDEN.is_file():
        from nursery_core.golden import read_golden_file

        prompts += [{"messages": eval_prompts(ex)[0], "tools": ex["tools"]}
                    for _, ex in read_golden_file(GOLDEN)[:GOLDEN_PROMPTS]]
    return prompts


def check_guard(model, tok, prompts: list[dict]) -> dict:
    """Free and guarded greedy answers; asserts the guarded ones name only offered tools with decodable,
    schema-valid JSON, and that a guarded answer equals the free one whenever the free one was valid."""
    from nursery_core.evaluation.metrics import schema_errors
    from nursery_core.evaluation.parser import parse_tool_calls
    from nursery_core.guard.processor import accepts as grammar_accepts
    from nursery_core.inference import _stop_ids, generate_with

    kw = dict(max_new_tokens=SMOL_TOKENS, batch_size=len(prompts))
    free = generate_with(model, tok, prompts, guarded=False, **kw)
    guarded = generate_with(model, tok, prompts, **kw)
    assert guarded.decoding["decoding"] == "guarded", guarded.decoding
    stop = _stop_ids(tok)
    valid_free = 0
    for p, f, g in zip(prompts, free, guarded):
        grammar = plan_for(p["tools"]).grammar
        offered = {t["function"]["name"]: t["function"] for t in p["tools"]}
        parsed = parse_tool_calls(g)
        assert parsed.format_ok and not parsed.errors, g                      # decodable JSON, whole blocks
        for c in parsed.calls:
            assert c["name"] in offered, g                                    # never an unoffered tool
            errs = [e for e in schema_errors(offered[c["name"]], c["arguments"]) if "non-unique" not in e]
            assert not errs, (g, errs)                                        # uniqueItems is not enforced
        assert grammar_accepts(tok, stop, grammar, g)
        if grammar_accepts(tok, stop, grammar, f):
            valid_free += 1
            assert g == f                                                     # the guard only removes
    print(f"\n{len(prompts)} prompts: free valid {valid_free}, guarded changed "
          f"{sum(f != g for f, g in zip(free, guarded))}; {guarded.decoding['notes']}")
    for f, g in zip(free, guarded):
        print(f"  free:    {f[:160]!r}\n  guarded: {g[:160]!r}")
    return {"free": list(free), "guarded": list(guarded), "valid_free": valid_free}


@pytest.mark.slow
def test_smollm2_base_guarded(smollm2_home, smollm2_session_dir):
    import torch

    from nursery_core.base_models import load_base

    torch.set_num_threads(2)
    model, tok, _ = load_base(str(smollm2_session_dir))
    r = check_guard(model, tok, default_prompts())
    assert r["valid_free"] >= 1  # the bare base mostly answers in prose: those answers are left alone


@pytest.mark.slow
def test_smollm2_briefly_trained_adapter_guarded(smollm2_home, smollm2_session_dir, tmp_path):
    """A few LoRA steps on the default tools' train split: the adapter starts writing <tool_call> blocks, many
    of them broken when decoded free; guarded, every one is a valid call of an offered tool."""
    import torch
    from peft import PeftModel

    from nursery_core.base_models import load_base
    from nursery_core.datasets import load_examples
    from nursery_core.training import trainer
    from nursery_core.training.config import TrainConfig

    prompts = default_prompts()
    job = tmp_path / "job"
    (job / "data").mkdir(parents=True)
    (job / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n"
                                                      for e in load_examples("defaults", "train", limit=24)))
    (job / "data" / "eval.jsonl").write_text("")
    trainer.train(TrainConfig(base_model=str(smollm2_session_dir), base_model_dir=str(smollm2_session_dir),
                              max_steps=6, batch_size=2, max_length=1024, lora_layers=4, eval_fraction=0.0,
                              learning_rate=1e-2, warmup_ratio=0.0, num_threads=2), job)
    torch.set_num_threads(2)
    model, tok, _ = load_base(str(smollm2_session_dir))
    model = PeftModel.from_pretrained(model, str(job / "output")).eval()
    r = check_guard(model, tok, prompts)
    assert any("<tool_call>" in g for g in r["guarded"]), r
