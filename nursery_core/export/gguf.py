"""HF directory -> GGUF with llama.cpp's own converter, fetched at set-up into .tools/llama.cpp/, and a PEFT
LoRA adapter -> a LoRA GGUF (convert_lora_to_gguf.py) that llama.cpp applies over its base GGUF at run time.

The converter runs in a subprocess with its own `gguf-py` first on PYTHONPATH: the PyPI `gguf` package that
transformers uses is older than the converter expects, so the two never share a process.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .. import paths
from ..errors import BackendError, InvalidInput

# Types llama.cpp's converter writes directly; k-quants are Ollama's `quantize` option at registration.
OUTTYPES = ("f32", "f16", "bf16", "q8_0")
OLLAMA_QUANTIZE = ("q4_K_M", "q4_K_S", "q8_0")


def tools_dir() -> Path:
    """Where scripts/setup_llamacpp.sh extracts the converter (NURSERY_LLAMACPP_DIR overrides)."""
    env = os.environ.get("NURSERY_LLAMACPP_DIR")
    return Path(env).expanduser() if env else paths.PROJECT_ROOT / ".tools" / "llama.cpp"


def converter_script() -> Path:
    return tools_dir() / "convert_hf_to_gguf.py"


def converter_available() -> bool:
    d = tools_dir()
    return converter_script().is_file() and (d / "gguf-py" / "gguf" / "__init__.py").is_file()


SETUP_SCRIPT = paths.PROJECT_ROOT / "scripts" / "setup_llamacpp.sh"


def install_converter(timeout: float = 900) -> dict:
    """Runs scripts/setup_llamacpp.sh (what `make setup` runs) with this interpreter: fetches the converter and
    the llama.cpp bindings when missing. Returns {"ok", "seconds", "log"}; BackendError with the script's last
    line when it fails (no network, say)."""
    if not SETUP_SCRIPT.is_file():
        raise BackendError(f"{SETUP_SCRIPT.name} is missing from this installation")
    start = time.monotonic()
    env = {**os.environ, "PY": sys.executable}
    try:
        proc = subprocess.run(["bash", str(SETUP_SCRIPT)], cwd=str(paths.PROJECT_ROOT), env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendError(f"fetching llama.cpp's converter took longer than {timeout:.0f} s") from None
    log = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0 or not converter_available():
        last = [ln for ln in log.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise BackendError(f"fetching llama.cpp's converter failed: {last[0]}")
    return {"ok": True, "seconds": round(time.monotonic() - start, 1), "log": log[-4000:]}


def lora_converter_script() -> Path:
    return tools_dir() / "convert_lora_to_gguf.py"


def lora_converter_available() -> bool:
    """Whether adapters can be converted unmerged (older set-ups fetched only the model converter)."""
    return converter_available() and lora_converter_script().is_file()


def require_converter() -> Path:
    if not converter_available():
        raise BackendError(f"llama.cpp's GGUF converter is missing from {tools_dir()}: run `make setup` "
                           f"(or the Deploy tab's button) to fetch it")
    return converter_script()


def converter_env() -> dict[str, str]:
    """The subprocess environment: the converter's own gguf-py first, no hub access, quiet tokenizers."""
    env = dict(os.environ)
    gguf_py = str(tools_dir() / "gguf-py")
    env["PYTHONPATH"] = gguf_py + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NO_LOCAL_GGUF", None)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def convert(model_dir: Path | str, outfile: Path | str, outtype: str = "q8_0", timeout: float = 3600) -> dict:
    """Runs convert_hf_to_gguf.py on an HF model dir; returns {"path", "size", "outtype", "seconds", "log"}."""
    if outtype not in OUTTYPES:
        raise InvalidInput(f"outtype must be one of {', '.join(OUTTYPES)} (k-quants such as q4_K_M are applied "
                           f"by Ollama at registration: use quantize)", field="outtype")
    model_dir, outfile = Path(model_dir), Path(outfile)
    if not (model_dir / "config.json").exists():
        raise InvalidInput(f"{model_dir} is not a Hugging Face model directory (no config.json)", field="model_dir")
    if outfile.exists():
        raise InvalidInput(f"{outfile} already exists; refusing to overwrite it", field="outfile")
    script = require_converter()
    argv = [sys.executable, str(script), str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    out = _run_converter(argv, outfile, timeout, f"GGUF conversion of {model_dir.name}",
                         f"llama.cpp's converter failed on {model_dir.name}")
    return {**out, "outtype": outtype}


def convert_lora(adapter_dir: Path | str, base_dir: Path | str, outfile: Path | str, outtype: str = "f32",
                 timeout: float = 1800) -> dict:
    """Runs convert_lora_to_gguf.py: a PEFT LoRA adapter (adapter_config.json + weights) over the HF base in
    `base_dir` -> a LoRA GGUF (its A and B matrices, rank and alpha; llama.cpp's `--lora`, applied at run time).
    Returns {"path", "size", "outtype", "seconds", "log"}. Raises InvalidInput for a missing adapter or an
    existing outfile, BackendError when the script is missing or refuses the adapter (DoRA, trained embeddings)."""
    if outtype not in OUTTYPES:
        raise InvalidInput(f"outtype must be one of {', '.join(OUTTYPES)}", field="outtype")
    adapter_dir, outfile = Path(adapter_dir), Path(outfile)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise InvalidInput(f"{adapter_dir} is not a LoRA adapter directory (no adapter_config.json)",
                           field="adapter_dir")
    if outfile.exists():
        raise InvalidInput(f"{outfile} already exists; refusing to overwrite it", field="outfile")
    if not lora_converter_available():
        raise BackendError(f"llama.cpp's LoRA converter is missing from {tools_dir()}: run `make setup`")
    argv = [sys.executable, str(lora_converter_script()), str(adapter_dir), "--base", str(base_dir),
            "--outfile", str(outfile), "--outtype", outtype]
    out = _run_converter(argv, outfile, timeout, f"LoRA conversion of {adapter_dir.name}",
                         f"llama.cpp's LoRA converter failed on {adapter_dir.name}")
    return {**out, "outtype": outtype}


def _run_converter(argv: list[str], outfile: Path, timeout: float, what: str, failed: str) -> dict:
    """Runs one of llama.cpp's conversion scripts writing `outfile` (removed again unless it succeeded);
    {"path", "size", "seconds", "log"}; BackendError with the script's last line when it fails."""
    outfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=converter_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        outfile.unlink(missing_ok=True)
        raise BackendError(f"{what} took longer than {timeout:.0f} s") from None
    log = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0 or not outfile.exists():
        outfile.unlink(missing_ok=True)
        last = [ln for ln in log.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise BackendError(f"{failed} (exit {proc.returncode}): {last[0]}")
    return {"path": str(outfile), "size": outfile.stat().st_size, "seconds": round(time.monotonic() - start, 2),
            "log": log[-4000:]}


def set_end_of_turn(infile: Path | str, outfile: Path | str, token_id: int, timeout: float = 600) -> dict:
    """Copies a GGUF with `token_id` recorded as its end-of-turn token (tokenizer.ggml.eot_token_id), using
    gguf-py's gguf_new_metadata.py. llama.cpp guesses the end of turn from token texts when the converter did not
    write one, and for ChatML vocabularies guesses `<|endoftext|>`; its llguidance sampler only lets a grammar
    end on that token, so a guarded answer could not end on `<|im_end|>`. Returns {"path", "seconds"}."""
    script = tools_dir() / "gguf-py" / "gguf" / "scripts" / "gguf_new_metadata.py"
    if not script.is_file():
        raise BackendError(f"gguf-py's metadata tool is missing from {tools_dir()}: run `make setup`")
    argv = [sys.executable, str(script), str(infile), str(outfile), "--special-token-by-id", "eot", str(int(token_id)),
            "--force"]
    out = _run_converter(argv, Path(outfile), timeout, f"rewriting {Path(infile).name}'s metadata",
                         f"could not set the end-of-turn token of {Path(infile).name}")
    return {"path": out["path"], "seconds": out["seconds"]}
