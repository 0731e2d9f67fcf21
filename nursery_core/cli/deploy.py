"""CLI for deployment: deploy-ollama (merge, GGUF, Modelfile, verification by running the GGUF, registration).

Progress goes to stderr so `--json` output stays one document; a failed verification exits non-zero."""
from __future__ import annotations

import sys

from . import Command, CommandResult


def _progress(ev: dict) -> None:
    if ev.get("state") in ("running", "done", "failed", "skipped") and ev.get("message"):
        if ev["step"] == "verify" and ev.get("state") == "running" and ev.get("done") not in (None, ev.get("total")):
            return  # one line per side, not per prompt
        print(f"[{ev['step']}] {ev['message']}", file=sys.stderr)


def _deploy(args):
    from ..export.deploy import nursery_deploy_ollama

    result = nursery_deploy_ollama(args.model, outtype=args.outtype, name=args.name,
                                   ollama_host=args.ollama_host, skip_register=args.skip_register,
                                   force=args.force, quantize=args.quantize, fallback=not args.no_fallback,
                                   limit=args.limit, progress=_progress)
    out = dict(result)
    ver = out.pop("verification", None) or {}
    out["verification"] = {k: ver.get(k) for k in ("score", "passed", "tokenization_ok", "same_text",
                                                    "prompts", "with_calls", "threshold", "seconds", "decoding")}
    out["verification"]["rows"] = [
        {k: r.get(k) for k in ("index", "id", "prompt", "same_call", "same_tokens", "hf_calls", "gguf_calls",
                               "hf_output", "gguf_output")} for r in ver.get("rows", [])]
    if not result.get("passed") and not (args.force and result.get("registration")):
        return CommandResult(out, 1)
    return out


def _human(r: dict) -> str:
    v = r.get("verification") or {}
    lines = [f"export {r['path']}",
             f"GGUF {r.get('gguf')} ({(r.get('gguf_size') or 0) / 1e6:.1f} MB, {r.get('outtype')})",
             f"verification: {v.get('score', 0):.0%} same tool calls on {v.get('prompts')} prompts "
             f"({r.get('prompt_source')}); tokenization {'identical' if v.get('tokenization_ok') else 'DIFFERENT'}"
             f" -> {'passed' if v.get('passed') else 'FAILED'}"]
    for row in v.get("rows", []):
        if not row["same_call"] or not row["same_tokens"]:
            lines.append(f"  differs #{row['index']}: {row['prompt']!r}: HF {row['hf_calls']} vs GGUF "
                         f"{row['gguf_calls']}" + ("" if row["same_tokens"] else " (tokenization differs)"))
    for note in r.get("notes", []):
        lines.append(f"note: {note}")
    if r.get("registration"):
        lines.append(f"registered {r['ollama_name']} on {r['registration']['host']}")
    else:
        lines.append(f"to register: {r.get('command')}")
    lines.append(f"status: {r.get('status')} (deployment {r.get('id')})")
    return "\n".join(lines)


def register(sub) -> None:
    (Command(sub, "deploy-ollama", "Export a trained model for Ollama: merge, GGUF, Modelfile, verify by running "
             "the GGUF against the merged model, and register it when an Ollama host is configured", _deploy,
             _human)
     .arg("model", help="a trained model (see list-models)")
     .arg("--outtype", choices=["auto", "f16", "q8_0"], default="auto",
          help="GGUF type (auto: f16 below 1B parameters, else q8_0; q8_0 falls back to f16 when it fails verification)")
     .arg("--name", help="Ollama model name (default: the model's name)")
     .arg("--ollama-host", help="Ollama server URL (default: $OLLAMA_HOST)")
     .arg("--skip-register", action="store_true", help="only build and verify the export folder")
     .arg("--force", action="store_true", help="register even when verification fails")
     .arg("--quantize", choices=["q4_K_M", "q4_K_S", "q8_0"],
          help="ask Ollama to quantize at registration (needs --outtype f16)")
     .arg("--no-fallback", action="store_true", help="do not retry as f16 when q8_0 fails verification")
     .arg("--limit", type=int, help="eval prompts to verify with (default 20)"))
