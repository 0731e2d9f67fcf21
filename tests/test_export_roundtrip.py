"""Round trip of the export: adapter -> merge -> GGUF (llama.cpp's converter) -> llama.cpp (xllamacpp) gives
the same tokenization and the same greedy output as the merged HF model; and (slow) a SmolLM2 adapter through
`deploy-ollama --skip-register --json` verifies at >= 95%."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import require
from export_helpers import make_adapter
from training_helpers import examples
from nursery_core.export import verify as verify_mod
from nursery_core.export.gguf import converter_available, convert
from nursery_core.export.merge import merge_adapter
from nursery_core.export.verify import _builtin_prompts, bindings_available, verify_export


def _need_llamacpp():
    require(converter_available(), "llama.cpp converter (.tools/llama.cpp, scripts/setup_llamacpp.sh)")
    require(bindings_available(), "llama.cpp bindings (xllamacpp)")


@pytest.fixture(scope="module")
def merged_tiny(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    adapter = make_adapter(tiny_model_dir, root / "adapter")
    merge_adapter(adapter, root / "merged")
    return root / "merged"


def prompts() -> list[dict]:
    return ([{"id": e["id"], "messages": e["messages"][:1], "tools": e["tools"]} for e in examples(3)]
            + _builtin_prompts()[:3])


@pytest.mark.slow
def test_merge_applies_the_adapter_and_keeps_tokenizer(tiny_model_dir, merged_tiny):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from nursery_core.training.rendering import NURSERY_MARKER

    base_w = load_file(str(tiny_model_dir / "model.safetensors"))
    merged_w = load_file(str(merged_tiny / "model.safetensors"))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(base_w[q], merged_w[q])  # the LoRA delta is in the weights
    assert not any("lora" in k for k in merged_w)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                           str(merged_tiny.parent / "adapter"))
    merged = AutoModelForCausalLM.from_pretrained(str(merged_tiny))
    ids = torch.tensor([[1, 4093, 198, 28120, 2, 198]])
    with torch.no_grad():
        assert torch.allclose(peft_model(ids).logits, merged(ids).logits, atol=1e-4)
    assert NURSERY_MARKER in (merged_tiny / "chat_template.jinja").read_text()
    meta = json.loads((merged_tiny / "nursery_merge.json").read_text())
    assert meta["family"] == "chatml" and Path(meta["base_dir"]) == tiny_model_dir
    for f in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (merged_tiny / f).exists()


@pytest.mark.slow
def test_merge_copies_back_tokenizer_model(tiny_model_dir, tmp_path):
    """transformers 5 drops tokenizer.model on save; the merged dir gets the base's byte for byte."""
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "tokenizer.model").write_bytes(b"\x0a\x05fake-sentencepiece")
    adapter = make_adapter(base, tmp_path / "adapter")
    assert not (adapter / "tokenizer.model").exists()
    res = merge_adapter(adapter, tmp_path / "merged")
    assert (tmp_path / "merged" / "tokenizer.model").read_bytes() == b"\x0a\x05fake-sentencepiece"
    assert "tokenizer.model" in res["files"]
    with pytest.raises(Exception, match="not empty"):
        merge_adapter(adapter, tmp_path / "merged")


@pytest.mark.slow
@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_gguf_matches_hf(merged_tiny, tmp_path, outtype):
    _need_llamacpp()
    conv = convert(merged_tiny, tmp_path / f"tiny-{outtype}.gguf", outtype)
    assert conv["size"] > 1_000_000 and Path(conv["path"]).read_bytes()[:4] == b"GGUF"
    res = verify_export(merged_tiny, conv["path"], prompts(), max_new_tokens=24)
    assert res["tokenization_ok"], [r for r in res["rows"] if not r["same_tokens"]]
    assert res["same_text"] == 1.0, [(r["hf_output"], r["gguf_output"]) for r in res["rows"] if not r["same_text"]]
    assert res["score"] == 1.0 and res["passed"]
    assert all(r["hf_output"] for r in res["rows"])  # something was generated to compare


def test_converter_refuses_to_overwrite(tmp_path):
    from nursery_core.errors import InvalidInput

    (tmp_path / "config.json").write_text("{}")
    out = tmp_path / "x.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(InvalidInput, match="already exists"):
        convert(tmp_path, out, "f16")
    with pytest.raises(InvalidInput, match="k-quants"):
        convert(tmp_path, tmp_path / "y.gguf", "q4_K_M")
    with pytest.raises(InvalidInput, match="no config.json"):
        convert(tmp_path / "nothing", tmp_path / "y.gguf", "f16")
    assert out.read_bytes() == b"keep me"


def test_missing_converter_says_run_setup(tmp_path, monkeypatch):
    from nursery_core.errors import BackendError

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("NURSERY_LLAMACPP_DIR", str(tmp_path / "nothing"))
    with pytest.raises(BackendError, match="make setup"):
        convert(tmp_path, tmp_path / "z.gguf", "f16")


class _FakeRunner:
    """Stands in for llama.cpp: tokenizes like HF and answers every prompt with one fixed tool call."""

    def __init__(self, tok, answer: str, drop_first_token: bool = False):
        self.tok, self.answer, self.drop = tok, answer, drop_first_token

    def __call__(self, *a, **kw):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def tokenize(self, text, add_special=True):
        if not text:
            return []
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        return ids[1:] if self.drop else ids

    def complete(self, prompt, max_new_tokens):
        return self.tok(self.answer, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]


@pytest.mark.slow
def test_verification_flags_different_calls_and_tokenization(merged_tiny, monkeypatch):
    """The comparison can fail: a runtime that calls a tool the HF model does not call, or tokenizes the
    prompt differently, is caught per prompt."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(merged_tiny))
    call = '<tool_call>\n{"name": "memory_store", "arguments": {"content": "x"}}\n</tool_call>'
    monkeypatch.setattr(verify_mod, "GGUFRunner", _FakeRunner(tok, call))
    res = verify_export(merged_tiny, "unused.gguf", prompts()[:2], max_new_tokens=8)
    assert res["score"] == 0.0 and not res["passed"] and res["tokenization_ok"]
    assert res["rows"][0]["gguf_calls"] == [{"name": "memory_store", "arguments": {"content": "x"}}]
    assert res["rows"][0]["hf_calls"] == [] and res["with_calls"] == 2
    monkeypatch.setattr(verify_mod, "GGUFRunner", _FakeRunner(tok, "plain", drop_first_token=True))
    res = verify_export(merged_tiny, "unused.gguf", prompts()[:2], max_new_tokens=8)
    assert not res["tokenization_ok"] and not res["passed"]


@pytest.mark.slow
def test_smollm2_adapter_deploys_verified(smollm2_home, smollm2_session_dir, capsys):
    """The acceptance path: a SmolLM2 LoRA (a couple of training steps) through the CLI, verified >= 95%."""
    _need_llamacpp()
    from nursery_core import paths
    from nursery_core.cli import main
    from nursery_core.store import get_store
    from training_helpers import store_dataset

    adapter = make_adapter(smollm2_session_dir, paths.models_dir() / "smol-tools", base_ref="smollm2-135m",
                           steps=2, lr=1e-4)
    ds = store_dataset("lockers", n=16, eval_fraction=0.5)
    get_store().add_model({"name": "smol-tools", "path": str(adapter), "base_model": "smollm2-135m",
                           "dataset": ds})
    code = main(["deploy-ollama", "smol-tools", "--skip-register", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out.get("notes")
    assert out["passed"] and out["score"] >= 0.95 and out["verification"]["tokenization_ok"]
    assert out["verification"]["prompts"] == 8 and out["prompt_source"].startswith("dataset lockers")
    folder = Path(out["path"])
    assert folder.parent == paths.exports_dir()
    assert Path(out["gguf"]).is_file() and Path(out["gguf"]).stat().st_size == out["gguf_size"]
    assert (folder / "Modelfile").read_text().startswith(f"FROM ./{Path(out['gguf']).name}\n")
    assert out["command"] == f"ollama create smol-tools -f {folder / 'Modelfile'}"
    # auto: a 135M base starts at f16 (q8_0 measurably changes its calls)
    assert out["requested_outtype"] == "auto" and [a["outtype"] for a in out["attempts"]][0] == "f16"
    dep = get_store().list_deployments(model="smol-tools")[0]
    assert dep["status"] == "verified" and dep["score"] == out["score"] and dep["gguf_size"] == out["gguf_size"]
    assert len(dep["verification"]["rows"]) == 8


def test_hf_check_equals_step_by_step_greedy(tiny_model_dir):
    """Checking llama.cpp's answer in one forward pass gives exactly HF's own greedy output, whether the
    candidate agrees fully, diverges midway, or stops early."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.export.verify import hf_greedy_against

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    prompt = tok("<|im_start|>user\nRemember the garage code<|im_end|>\n<|im_start|>assistant\n",
                 add_special_tokens=False)["input_ids"]
    stop = {tok.eos_token_id}
    with torch.inference_mode():
        ref = model.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=12,
                             eos_token_id=sorted(stop), pad_token_id=tok.eos_token_id)[0, len(prompt):].tolist()
    ref = [t for t in ref if t not in stop]
    assert len(ref) == 12
    wrong = (ref[4] + 1) % len(tok)
    for candidate in (ref, ref[:4] + [wrong] + ref[5:], ref[:3], []):
        assert hf_greedy_against(model, tok, prompt, candidate, stop, 12) == ref
