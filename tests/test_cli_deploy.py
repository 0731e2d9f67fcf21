"""deploy-ollama end to end through the CLI: registration with the stub Ollama server, the command shown when no
host is configured, a failed verification (q8_0 then the f16 fallback) exits non-zero and is not registered
unless forced, the deployment is recorded in the model's lineage, and bad input is a one-line error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import require
from export_helpers import make_adapter
from training_helpers import store_dataset
from nursery_core.cli import main
from nursery_core.emulators.ollama import OllamaEmulator
from nursery_core.export import gguf as gguf_mod
from nursery_core.export import verify as verify_mod


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "tiny-tools")


@pytest.fixture
def model(tiny_adapter, tiny_model_dir, store) -> str:
    ds = store_dataset("lockers", n=10, eval_fraction=0.3)
    store.add_model({"name": "tiny-tools", "path": str(tiny_adapter), "base_model": str(tiny_model_dir),
                     "dataset": ds})
    return "tiny-tools"


@pytest.fixture
def emu():
    e = OllamaEmulator().start()
    yield e
    e.stop()


class FakeRunner:
    """llama.cpp stand-in: HF tokenization, and a tool call the HF model never makes."""

    def __init__(self, path, n_ctx=0):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(Path(path).parent / "merged"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def tokenize(self, text, add_special=True):
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []

    def complete(self, prompt, max_new_tokens):
        call = '<tool_call>\n{"name": "memory_store", "arguments": {"content": "wrong"}}\n</tool_call>'
        return self.tok(call, add_special_tokens=False)["input_ids"]


@pytest.fixture
def fake_llamacpp(monkeypatch):
    """A quick fake converter and a runtime that disagrees with HF: the control flow without llama.cpp."""
    def fake_convert(model_dir, outfile, outtype="q8_0", timeout=0):
        Path(outfile).write_bytes(b"GGUF" + outtype.encode() * 100)
        return {"path": str(outfile), "size": Path(outfile).stat().st_size, "outtype": outtype, "seconds": 0.0,
                "log": ""}

    monkeypatch.setattr(gguf_mod, "convert", fake_convert)
    monkeypatch.setattr(gguf_mod, "require_converter", lambda: Path("convert_hf_to_gguf.py"))
    monkeypatch.setattr(verify_mod, "bindings_available", lambda: True)
    monkeypatch.setattr(verify_mod, "GGUFRunner", FakeRunner)


def run(capsys, *argv) -> tuple[int, dict | str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    try:
        return code, json.loads(cap.out)
    except ValueError:
        return code, cap.err


@pytest.mark.slow
def test_failed_verification_exits_nonzero_and_is_not_registered(model, emu, fake_llamacpp, capsys, store):
    code, out = run(capsys, "deploy-ollama", model, "--ollama-host", emu.url, "--json", "--limit", "2",
                    "--outtype", "q8_0")
    assert code == 1
    assert out["status"] == "failed_verification" and not out["passed"] and out["registration"] is None
    assert [a["outtype"] for a in out["attempts"]] == ["q8_0", "f16"]  # fell back, f16 failed too
    assert out["outtype"] == "q8_0" and Path(out["gguf"]).name == "tiny-tools-q8_0.gguf"
    assert not (Path(out["path"]) / "tiny-tools-f16.gguf").exists()
    assert out["verification"]["rows"][0]["gguf_calls"][0]["arguments"] == {"content": "wrong"}
    assert emu.calls("POST", "/api/create") == [] and emu.requests == []
    dep = store.list_deployments(model=model)[0]
    assert dep["status"] == "failed_verification" and dep["registered"] == 0
    # --force registers anyway, in a new folder (the first export is kept as it was)
    code, forced = run(capsys, "deploy-ollama", model, "--ollama-host", emu.url, "--json", "--limit", "2",
                       "--outtype", "q8_0", "--force", "--no-fallback")
    assert code == 0 and forced["status"] == "registered_unverified", forced
    assert forced["path"] != out["path"] and Path(out["gguf"]).exists()
    assert [a["outtype"] for a in forced["attempts"]] == ["q8_0"]
    create = emu.calls("POST", "/api/create")[0]["json"]
    assert create["model"] == "tiny-tools" and list(create["files"]) == ["tiny-tools-q8_0.gguf"]
    from nursery_core.registry import get_model
    lineage = get_model(model)["deployments"]
    assert [d["status"] for d in lineage] == ["registered_unverified", "failed_verification"]


def test_bad_input_is_one_line(model, capsys):
    assert main(["deploy-ollama", "nope", "--skip-register"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
    assert main(["deploy-ollama", model, "--name", "Bad Name!", "--skip-register"]) == 2
    assert "Ollama model name" in capsys.readouterr().err
    assert main(["deploy-ollama", model, "--outtype", "q8_0", "--quantize", "q4_K_M", "--skip-register"]) == 2
    assert "use outtype f16 with quantize" in capsys.readouterr().err


@pytest.mark.slow
def test_deploy_registers_with_ollama(model, emu, capsys, store, monkeypatch):
    require(gguf_mod.converter_available(), "llama.cpp converter (.tools/llama.cpp)")
    require(verify_mod.bindings_available(), "llama.cpp bindings (xllamacpp)")
    monkeypatch.setenv("OLLAMA_HOST", emu.url)
    code, out = run(capsys, "deploy-ollama", model, "--outtype", "f16", "--name", "tiny:v1", "--quantize",
                    "q4_K_M", "--json", "--limit", "3")
    assert code == 0, out
    assert out["status"] == "registered" and out["passed"] and out["outtype"] == "f16"
    assert out["registration"]["statuses"][-1] == "success"
    create = emu.calls("POST", "/api/create")[0]["json"]
    assert create["model"] == "tiny:v1" and create["quantize"] == "q4_K_M"
    assert create["files"] == {"tiny-v1-f16.gguf": out["registration"]["uploads"][0]["digest"]}
    assert emu.blob_path(create["files"]["tiny-v1-f16.gguf"].split(":")[1]).stat().st_size == out["gguf_size"]
    assert "<tool_call>" in create["template"] and create["parameters"]["stop"][0] == "<|im_end|>"
    folder = Path(out["path"])
    assert {"Modelfile", "verification.json", "deployment.json", "tiny-v1-f16.gguf"} <= set(out["files"])
    assert json.loads((folder / "verification.json").read_text())["score"] == out["score"]
    dep = store.list_deployments(model=model)[0]
    assert dep["status"] == "registered" and dep["registered"] == 1 and dep["ollama_name"] == "tiny:v1"
    assert any("q4_K_M is applied by Ollama" in n for n in out["notes"])
    assert out["decoding"] == "free" and out["verification"]["decoding"] == "free"
    assert any("free (unconstrained) greedy" in n and "guarded" in n for n in out["notes"])


def test_auto_outtype_keeps_small_models_at_f16():
    """Measured: q8_0 changed SmolLM2-135M's tool calls (65% kept) while f16 kept them all."""
    from nursery_core.export.deploy import auto_outtype
    assert auto_outtype("smollm2-135m") == "f16"
    assert auto_outtype("qwen2.5-7b") == "q8_0" and auto_outtype("3b") == "q8_0"
    assert auto_outtype("no-such-model") == "q8_0"
