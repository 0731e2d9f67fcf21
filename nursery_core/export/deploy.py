"""`nursery_deploy_ollama`: adapter -> merged model -> GGUF -> Modelfile -> verified by running the GGUF ->
registered with Ollama (or a folder plus the exact `ollama create` command) -> recorded in the model's lineage.

Output type policy: `auto` (the default) picks f16 for bases under 1B parameters and q8_0 above. The issue
suggested q8_0 everywhere, but measured on SmolLM2-135M q8_0 kept only 65% of the tool calls (f16: 100%), so a
small model starts where it passes. Whatever the type, when q8_0 fails verification and the caller allows it
(`fallback`, on by default), the export is redone as f16 and verified again. Both attempts are reported.

Decoding: verification runs free (unconstrained greedy), as Ollama does; Nursery's guarded decoding does not travel
with the Modelfile, and every deployment says so (`decoding`, and a note).
"""
from __future__ import annotations

import io
import json
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import BackendError, InvalidInput, NurseryError
from ..jobs.inflight import exclusive_run, run_key
from ..rows import DeploymentRow, ModelRow
from ..settings import ollama_host as configured_ollama_host
from ..status import DeploymentStatus
from ..store import get_store

STEPS = ("merge", "convert", "modelfile", "verify", "register", "record")
_OLLAMA_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}(?::[a-z0-9._-]{1,80})?$")

Progress = Callable[[dict], None]


def check_ollama_name(name: str) -> str:
    if not isinstance(name, str) or not _OLLAMA_NAME_RE.match(name):
        raise InvalidInput(f"Ollama model name {name!r} is not allowed: use lowercase letters, digits, '.', '_' "
                           "and '-', optionally ':tag' (for example 'my-model:latest')", field="name")
    return name


def _free_export_dir(base: str) -> Path:
    """exports/<base>/, or <base>-2, -3 ... when taken: an existing export is never overwritten."""
    root = paths.exports_dir()
    for k in range(1, 1000):
        name = base if k == 1 else f"{base}-{k}"
        d = root / paths.check_name(name[:64], "export name")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise InvalidInput(f"too many exports named {base!r}: delete old ones", field="name")


def _emit(progress: Progress | None, step: str, state: str, message: str, **info: Any) -> None:
    if progress:
        progress({"step": step, "state": state, "message": message, **info})


def _model_system(info: dict) -> str:
    """The system prompt training rendered with: Nursery's templates default to DEFAULT_SYSTEM."""
    from ..training.rendering import DEFAULT_SYSTEM

    return info.get("system") or DEFAULT_SYSTEM


def _export_gguf(merged: Path, folder: Path, stem: str, outtype: str, prompts: list[dict], progress,
                 max_new_tokens: int, threshold: float) -> dict:
    from .gguf import convert
    from .verify import verify_export

    _emit(progress, "convert", "running", f"converting to GGUF ({outtype})", outtype=outtype)
    conv = convert(merged, folder / f"{stem}-{outtype}.gguf", outtype)
    _emit(progress, "convert", "done", f"{Path(conv['path']).name}: {conv['size'] / 1e6:.1f} MB in "
          f"{conv['seconds']:.0f} s", outtype=outtype, size=conv["size"])
    _emit(progress, "verify", "running", f"running the {outtype} GGUF with llama.cpp and the merged model",
          outtype=outtype)

    def vp(side: str, info: dict) -> None:
        _emit(progress, "verify", "running", f"{'llama.cpp' if side == 'gguf' else 'HF'}: prompt "
              f"{info['done']}/{info['total']}", side=side, **info)

    ver = verify_export(merged, conv["path"], prompts, threshold=threshold, max_new_tokens=max_new_tokens,
                        progress=vp)
    verdict = "passed" if ver["passed"] else "FAILED"
    _emit(progress, "verify", "done" if ver["passed"] else "failed",
          f"{outtype}: {ver['score']:.0%} same tool calls, tokenization "
          f"{'identical' if ver['tokenization_ok'] else 'DIFFERENT'} ({verdict})", outtype=outtype,
          score=ver["score"], passed=ver["passed"])
    return {"convert": conv, "verification": ver}


SMALL_MODEL_PARAMS = 1_000_000_000  # below this, 8-bit rounding measurably changes tool calls


def auto_outtype(base_model: str | None) -> str:
    """f16 for small bases (q8_0 changed SmolLM2-135M's calls), q8_0 for larger ones."""
    from ..base_models import resolve

    try:
        params = resolve(base_model).params
    except NurseryError:
        return "q8_0"
    return "f16" if params < SMALL_MODEL_PARAMS else "q8_0"


@dataclass(frozen=True)
class DeployOptions:
    """How to deploy (the tool's options, defaults as documented on `nursery_deploy_ollama`)."""

    outtype: str = "auto"                # auto | one of gguf.OUTTYPES
    name: str | None = None              # Ollama model name; default: the model's slug
    ollama_host: str | None = None       # None: the configured host ("" = none)
    skip_register: bool = False
    force: bool = False                  # register even when verification failed
    quantize: str | None = None          # Ollama-side quantization of an f16/f32/bf16 GGUF
    fallback: bool = True                # q8_0 failing verification is redone as f16
    limit: int | None = None             # verification prompts
    max_new_tokens: int | None = None
    threshold: float | None = None       # share of same tool calls that passes (0..1)
    keep_merged: bool = True


@dataclass
class _Plan:
    """A checked deployment request: what to export, as what, and where to register it."""

    model_name: str
    row: ModelRow
    adapter_dir: Path
    outtype: str
    ollama_name: str
    host: str | None
    register: bool
    opts: DeployOptions


@dataclass
class _Export:
    """The chosen GGUF and its verification, with the type it was exported as."""

    outtype: str
    gguf: Path
    verification: dict


def nursery_deploy_ollama(model_name: str, outtype: str = "auto", name: str | None = None,
                          ollama_host: str | None = None, skip_register: bool = False, force: bool = False,
                          progress: Progress | None = None, quantize: str | None = None, fallback: bool = True,
                          limit: int | None = None, max_new_tokens: int | None = None,
                          threshold: float | None = None, keep_merged: bool = True,
                          created_by: str | None = None) -> dict:
    """Exports a trained adapter for Ollama and proves it; see the module docstring for the q8_0 policy.

    Returns the deployment: id, status (a DeploymentStatus value), path, gguf, gguf_size (bytes), outtype,
    score (0..1 share of same tool calls), verification (per-prompt rows), modelfile text, files,
    registration (when a host is configured and not skipped) or the `ollama create` command, seconds.
    Raises InvalidInput (outtype, quantize, name, unsupported family), NotFound (model), BackendError
    (converter or llama.cpp bindings missing, Ollama refused), DuplicateRun (the same name deploys now)."""
    opts = DeployOptions(outtype=outtype, name=name, ollama_host=ollama_host, skip_register=skip_register,
                         force=force, quantize=quantize, fallback=fallback, limit=limit,
                         max_new_tokens=max_new_tokens, threshold=threshold, keep_merged=keep_merged)
    return deploy(model_name, opts, progress=progress, created_by=created_by)


def deploy(model_name: str, opts: DeployOptions, progress: Progress | None = None,
           created_by: str | None = None) -> dict:
    """`nursery_deploy_ollama` with its options as one value: plan, merge, export + verify, Modelfile,
    register, record; the deployment row is ERROR (with the reason) when any step fails."""
    from .verify import DECODING, DECODING_NOTE

    plan = _plan(model_name, opts)
    # one deployment per Ollama name at a time: a double click or a second tab is refused, naming the first
    with exclusive_run("deploy", run_key("deploy", plan.ollama_name),
                       f"the deployment of {model_name} as {plan.ollama_name}", created_by):
        store = get_store()
        folder = _free_export_dir(paths.slugify(plan.ollama_name.replace(":", "-")) or "export")
        dep = store.add_deployment({"model": model_name, "status": DeploymentStatus.RUNNING.value,
                                    "path": str(folder), "outtype": plan.outtype, "ollama_name": plan.ollama_name,
                                    "ollama_host": plan.host, "registered": 0, "created_by": created_by})
        started = time.monotonic()
        result: dict[str, Any] = {"id": dep["id"], "model": model_name, "ollama_name": plan.ollama_name,
                                  "path": str(folder), "requested_outtype": opts.outtype, "attempts": [],
                                  "decoding": DECODING, "notes": [DECODING_NOTE]}
        try:
            merged, family = _merge(plan, folder, progress)
            export = _export_verified(plan, merged, folder, result, progress)
            modelfile = _write_modelfile(plan, merged, folder, export, family, progress)
            command = f"ollama create {plan.ollama_name} -f {folder / 'Modelfile'}" + (
                f" --quantize {opts.quantize}" if opts.quantize else "")
            ver = export.verification
            result.update({"outtype": export.outtype, "family": family, "gguf": str(export.gguf),
                           "gguf_size": export.gguf.stat().st_size, "score": ver["score"], "passed": ver["passed"],
                           "tokenization_ok": ver["tokenization_ok"], "verification": ver, "modelfile": modelfile,
                           "command": command, "quantize": opts.quantize})
            registration = _register(plan, folder, ver, command, result, progress)
            if opts.quantize:
                result["notes"].append(f"{opts.quantize} is applied by Ollama after verification; the verified "
                                       f"file is the {export.outtype} GGUF")
            status = DeploymentStatus.after_verification(ver["passed"], registration is not None)
            result["registration"] = registration
            result["status"] = status.value
            _record(store, dep["id"], plan, folder, registration, result, started, progress)
            return result
        except NurseryError as e:
            store.update_deployment(dep["id"], status=DeploymentStatus.ERROR.value, error=str(e), **_measured(result))
            _emit(progress, "record", "failed", str(e))
            raise
        except Exception as e:  # a bug or a library failure: the row says so, then it propagates
            store.update_deployment(dep["id"], status=DeploymentStatus.ERROR.value,
                                    error=f"{type(e).__name__}: {e}", **_measured(result))
            _emit(progress, "record", "failed", str(e))
            raise


def _measured(result: dict) -> dict:
    """The row fields of what a deploy measured: the GGUF and its verification. A finished deploy records them,
    and so does one that failed after its verification (at registration, say), so its card shows them rather
    than nothing. {} when it failed before."""
    if "verification" not in result:
        return {}
    return {"gguf_path": result["gguf"], "gguf_size": result["gguf_size"], "outtype": result["outtype"],
            "score": result["score"], "verification": result["verification"]}


def _plan(model_name: str, opts: DeployOptions) -> _Plan:
    """Checks the request before anything is written: output type, quantization, name, tools present."""
    from .gguf import OLLAMA_QUANTIZE, OUTTYPES, require_converter
    from .merge import model_adapter_dir
    from .verify import bindings_available

    if opts.outtype != "auto" and opts.outtype not in OUTTYPES:
        raise InvalidInput(f"outtype must be auto or one of {', '.join(OUTTYPES)}", field="outtype")
    row, adapter_dir = model_adapter_dir(model_name)
    outtype = auto_outtype(row.get("base_model")) if opts.outtype == "auto" else opts.outtype
    if opts.quantize is not None:
        if opts.quantize not in OLLAMA_QUANTIZE:
            raise InvalidInput(f"quantize must be one of {', '.join(OLLAMA_QUANTIZE)}", field="quantize")
        if outtype not in ("f16", "f32", "bf16"):
            raise InvalidInput("Ollama quantizes from an f16/f32 GGUF: use outtype f16 with quantize",
                               field="outtype")
    ollama_name = check_ollama_name(opts.name or paths.slugify(model_name) or "nursery-model")
    host = opts.ollama_host
    if host is None:
        host = configured_ollama_host(store=get_store())
    host = host or None
    require_converter()
    if not bindings_available():
        raise BackendError("llama.cpp's Python bindings (xllamacpp) are missing, so the GGUF cannot be verified: "
                           "run `make setup`")
    return _Plan(model_name, row, adapter_dir, outtype, ollama_name, host,
                 register=bool(host) and not opts.skip_register, opts=opts)


def _merge(plan: _Plan, folder: Path, progress: Progress | None) -> tuple[Path, str]:
    """1. The adapter merged into its base under folder/merged; (merged dir, chat family)."""
    from .merge import merge_adapter
    from .modelfile import supported_families

    _emit(progress, "merge", "running", f"merging {plan.model_name} into its base")
    merged = folder / "merged"
    m = merge_adapter(plan.adapter_dir, merged, fallback_base=plan.row.get("base_model"))
    family = m["family"]
    if family not in supported_families():
        raise InvalidInput(f"no Ollama template for chat family {family!r}: Nursery writes Modelfiles for "
                           f"{', '.join(supported_families())}", field="family")
    _emit(progress, "merge", "done", f"merged ({family} family) from {Path(m['base_dir']).name}")
    return merged, family


def _attempt_row(outtype: str, att: dict) -> dict:
    ver = att["verification"]
    return {"outtype": outtype, "score": ver["score"], "passed": ver["passed"],
            "tokenization_ok": ver["tokenization_ok"], "gguf_size": att["convert"]["size"]}


def _export_verified(plan: _Plan, merged: Path, folder: Path, result: dict, progress: Progress | None) -> _Export:
    """2-4. Convert + verify; q8_0 that fails is redone as f16 when fallback is allowed (both attempts go
    into result["attempts"], the losing GGUF is deleted). Writes verification.json."""
    from .verify import DEFAULT_LIMIT, DEFAULT_MAX_NEW_TOKENS, DEFAULT_THRESHOLD, eval_prompt_set

    opts = plan.opts
    prompts, source = eval_prompt_set(plan.row.get("dataset"), opts.limit or DEFAULT_LIMIT)
    result["prompt_source"] = source
    stem = paths.slugify(plan.ollama_name.replace(":", "-")) or "model"
    mnt = opts.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    thr = DEFAULT_THRESHOLD if opts.threshold is None else opts.threshold
    chosen = plan.outtype
    att = _export_gguf(merged, folder, stem, plan.outtype, prompts, progress, mnt, thr)
    result["attempts"].append(_attempt_row(plan.outtype, att))
    if not att["verification"]["passed"] and plan.outtype == "q8_0" and opts.fallback:
        result["notes"].append(f"q8_0 failed verification ({att['verification']['score']:.0%} same calls): "
                               "re-exported as f16, which small models need")
        first = att
        att = _export_gguf(merged, folder, stem, "f16", prompts, progress, mnt, thr)
        result["attempts"].append(_attempt_row("f16", att))
        if att["verification"]["passed"]:
            chosen = "f16"
            Path(first["convert"]["path"]).unlink(missing_ok=True)
        else:
            Path(att["convert"]["path"]).unlink(missing_ok=True)
            att = first
    ver = att["verification"]
    (folder / "verification.json").write_text(json.dumps(ver, indent=2, ensure_ascii=False) + "\n")
    if not ver["with_calls"]:
        result["notes"].append("neither model made a tool call on these prompts, so the agreement says "
                               "nothing about tool calls")
    return _Export(chosen, Path(att["convert"]["path"]), ver)


def _write_modelfile(plan: _Plan, merged: Path, folder: Path, export: _Export, family: str,
                     progress: Progress | None) -> str:
    """3. The Modelfile, written after the type is settled so FROM names the file that passed."""
    from transformers import AutoTokenizer

    from ..training.rendering import RENDERING_VERSION, installed_version
    from .merge import adapter_info
    from .modelfile import build_modelfile

    _emit(progress, "modelfile", "running", "writing the Modelfile")
    merged_tok = AutoTokenizer.from_pretrained(str(merged))
    version = installed_version(merged_tok.chat_template) or RENDERING_VERSION
    modelfile = build_modelfile(export.gguf.name, family, system=_model_system(adapter_info(plan.adapter_dir)),
                                eos_token=merged_tok.eos_token, rendering=version)
    (folder / "Modelfile").write_text(modelfile)
    _emit(progress, "modelfile", "done", f"Modelfile for the {family} template")
    if not plan.opts.keep_merged:
        shutil.rmtree(merged, ignore_errors=True)
    return modelfile


def _register(plan: _Plan, folder: Path, ver: dict, command: str, result: dict,
              progress: Progress | None) -> dict | None:
    """5. Registers with Ollama when a host is set, not skipped, and verification passed (or force); the
    registration, or None with the reason in the notes / progress."""
    opts = plan.opts
    if plan.register and (ver["passed"] or opts.force):
        from .ollama_client import register_modelfile

        assert plan.host is not None  # plan.register implies a host
        _emit(progress, "register", "running", f"registering {plan.ollama_name} with {plan.host}")
        registration = register_modelfile(folder / "Modelfile", plan.ollama_name, plan.host, quantize=opts.quantize,
                                          progress=lambda line: _emit(progress, "register", "running",
                                                                      line.get("status", ""), detail=line))
        _emit(progress, "register", "done", f"{plan.ollama_name} created on {registration['host']}")
        return registration
    if plan.register:
        result["notes"].append("not registered: verification failed (use force to register anyway)")
        _emit(progress, "register", "skipped", "verification failed: not registered (force to override)")
    else:
        why = "skipped on request" if opts.skip_register else "no Ollama host configured (OLLAMA_HOST)"
        _emit(progress, "register", "skipped", f"{why}; run: {command}")
    return None


def _record(store: Any, dep_id: str, plan: _Plan, folder: Path, registration: dict | None,
            result: dict, started: float, progress: Progress | None) -> None:
    """6. deployment.json in the folder and the deployment row, final."""
    result["files"] = sorted(str(p.relative_to(folder)) for p in folder.iterdir() if p.is_file())
    result["seconds"] = round(time.monotonic() - started, 1)
    (folder / "deployment.json").write_text(json.dumps(
        {k: v for k, v in result.items() if k not in ("verification", "modelfile")}, indent=2,
        ensure_ascii=False, default=str) + "\n")
    result["files"] = sorted(str(p.relative_to(folder)) for p in folder.iterdir() if p.is_file())
    store.update_deployment(dep_id, status=result["status"], **_measured(result),
                            registered=int(registration is not None), files=result["files"],
                            ollama_host=registration["host"] if registration else plan.host)
    _emit(progress, "record", "done", f"deployment {dep_id} recorded ({result['status']})")


def list_deployments(model_name: str | None = None) -> list[DeploymentRow]:
    """Deployments newest first (without the per-prompt rows, for tables)."""
    rows = get_store().list_deployments(model=model_name)
    for r in rows:
        v = r.get("verification") or {}
        r["verification"] = {k: v.get(k) for k in ("score", "passed", "tokenization_ok", "prompts", "with_calls",
                                                   "decoding")}
    return rows


def export_files(path: Path | str) -> list[Path]:
    """The files a user downloads from an export folder (the merged HF model stays out: it is large and
    only needed to re-convert)."""
    folder = Path(path)
    if not folder.is_dir() or not paths.inside_home(folder):
        raise InvalidInput(f"{folder} is not an export folder under NURSERY_HOME", field="path")
    return sorted(p for p in folder.iterdir() if p.is_file())


def export_zip(path: Path | str) -> bytes:
    """A zip of the export folder's files (GGUF stored uncompressed: it does not shrink)."""
    buf = io.BytesIO()
    folder = Path(path)
    with zipfile.ZipFile(buf, "w") as zf:
        for f in export_files(folder):
            method = zipfile.ZIP_STORED if f.suffix == ".gguf" else zipfile.ZIP_DEFLATED
            zf.write(f, arcname=f"{folder.name}/{f.name}", compress_type=method)
    return buf.getvalue()
