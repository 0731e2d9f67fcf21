"""Streamlit pieces for cloud training: provider choice, live offers, budget caps, instance state, reaper, and
the Settings section on providers and SSH servers. Pages call these; each action calls one core function."""
from __future__ import annotations

import time
from typing import Any, Sequence

import streamlit as st

from ..cloud.credentials import DEFAULT_MAX_DPH, DEFAULT_MAX_HOURS
from ..errors import NurseryError


@st.cache_data(ttl=60, show_spinner=False)
def _offers(max_dph: float | None, min_gpu_ram: float | None, gpu: str | None, disk: float) -> list[dict]:
    from ..cloud.offers import search_offer_rows

    return search_offer_rows(max_dph=max_dph, min_gpu_ram_gb=min_gpu_ram, gpu=gpu, disk_gb=disk, limit=25)


def _inputs(names: list[str], values: dict[str, Any], key: str, columns: Sequence[Any]) -> dict[str, Any]:
    """Widgets for the named cloud run options (labels, help and bounds from run_options.CloudRunOptions), one
    per column; keys `<key>_<option>`."""
    from ..run_options import cloud_options
    from .config_form import option_input, option_key

    return {o.name: option_input(o, values.get(o.name), option_key(key, o), col)
            for o, col in zip(cloud_options(names), columns)}


def render_budget_inputs(key: str = "cloud") -> dict:
    """Max $/hour, max hours and max $ inputs (0 = no cap); returns the caps that are set."""
    caps = _inputs(["max_dph", "max_hours", "max_cost"],
                   {"max_dph": DEFAULT_MAX_DPH, "max_hours": DEFAULT_MAX_HOURS, "max_cost": 0.0}, key, st.columns(3))
    return {k: v for k, v in caps.items() if v}


def render_offers_table(max_dph: float | None, key: str = "cloud") -> dict:
    """Live Vast.ai offers (GPU, VRAM, $/h, reliability) that fit; returns the filters that are set and the
    offer id the user picked (min_gpu_ram_gb, gpu, offer_id)."""
    picked_opts = _inputs(["min_gpu_ram_gb", "gpu"], {"min_gpu_ram_gb": 8.0, "gpu": ""}, key, st.columns(2))
    opts: dict[str, Any] = {k: (v.strip() if isinstance(v, str) else v) for k, v in picked_opts.items()}
    opts = {k: v for k, v in opts.items() if v}
    try:
        rows = _offers(max_dph or None, opts.get("min_gpu_ram_gb"), opts.get("gpu"), 20.0)
    except NurseryError as e:
        st.error(str(e))
        return opts
    if not rows:
        st.info("No verified offer fits these limits right now: raise the $/hour cap or lower the GPU memory.")
        return opts
    table = [{"offer": r["id"], "GPU": f"{r['gpu_name']} x{r['num_gpus']}", "VRAM (GB)": r["gpu_ram_gb"],
              "$/h": round(r["dph_total"], 4), "reliability": round(r["reliability"], 4),
              "where": r["geolocation"]} for r in rows]
    event = st.dataframe(table, key=f"{key}_offers", hide_index=True, on_select="rerun",
                         selection_mode="single-row", width="stretch")
    picked = (getattr(event, "selection", None) or {}).get("rows") if event is not None else None
    if picked:
        chosen = table[picked[0]]
        st.caption(f"Will rent offer {chosen['offer']} ({chosen['GPU']}, ${chosen['$/h']}/h).")
        opts["offer_id"] = int(chosen["offer"])
    else:
        st.caption("Nursery rents the cheapest offer that fits unless you pick a row.")
    return opts


def render_cloud_training_options(key: str = "cloud") -> dict | None:
    """Provider choice plus its settings; returns keyword arguments for nursery_train_cloud (None = local)."""
    from ..cloud.credentials import key_status, ssh_servers
    from ..jobs.backends import cloud_providers, get_provider

    choices = {"This machine": None} | {("My GPU server (SSH)" if k == "ssh" else get_provider(k).label): k
                                         for k in cloud_providers()}
    kind = choices[st.radio("Where to train", list(choices), horizontal=True, key=f"{key}_provider")]
    if kind is None:
        return None
    if kind != "ssh" and not key_status(kind)["set"]:
        st.warning(f"Set {key_status(kind)['name']} (environment or .streamlit/secrets.toml) to train on "
                   f"{get_provider(kind).label}.")
        return {"provider": kind}
    if kind == "vast":
        caps = render_budget_inputs(key)
        return {"provider": "vast", **caps, **render_offers_table(caps.get("max_dph"), key)}
    if kind != "ssh":
        return {"provider": kind, **_provider_inputs(kind, key)}
    try:
        servers = ssh_servers()
    except NurseryError as e:
        st.error(str(e))
        servers = {}
    names = list(servers) + ["Other…"]
    pick = st.selectbox("Server", names, key=f"{key}_ssh_server")
    opts: dict[str, Any] = {"provider": "ssh"}
    if pick != "Other…":
        srv = servers[pick]
        st.caption(f"{srv.address} with key {srv.key_path or '(none set)'}")
        opts["ssh_server"] = pick
    else:
        opts.update(_inputs(["host", "port", "user"], {"port": 22, "user": "root"}, key, st.columns([3, 1, 1])))
        opts.update(_inputs(["key_path"], {}, key, [st]))
    hours = _inputs(["max_hours"], {"max_hours": 0.0}, f"{key}_ssh", [st])["max_hours"]
    if hours:
        opts["max_hours"] = hours
    return opts


def _provider_inputs(kind: str, key: str) -> dict:
    """The budget caps and settings a provider reads (run_options metadata), as widgets; the values set."""
    from ..run_options import provider_option_names

    if kind == "replicate":
        st.caption("Replicate's trainers take text, not tool schemas: each example is rendered with Nursery's chat "
                   "template into one text row (prompts are not masked out).")
    caps = ["max_hours"] + provider_option_names(kind, exclude=["max_hours"])
    names = [n for n in caps if n in ("max_dph", "max_hours", "max_cost")]
    rest = [n for n in caps if n not in names]
    values = _inputs(names, {"max_dph": DEFAULT_MAX_DPH, "max_hours": DEFAULT_MAX_HOURS, "max_cost": 0.0},
                     f"{key}_{kind}", st.columns(len(names)))
    if rest:
        values.update(_inputs(rest, {"gpu_count": 1, "min_gpu_ram_gb": 8.0, "disk_gb": 20.0}, f"{key}_{kind}",
                              st.columns(len(rest))))
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in values.items() if v}


def render_instance_state(job: dict) -> None:
    """The cloud side of a job: phase, machine, price and cost so far (nothing secret is in provider_state)."""
    from ..jobs.backends import cloud_providers

    state = job.get("provider_state") or {}
    if job.get("kind") not in cloud_providers() or not state:
        return
    cols = st.columns(4)
    cols[0].metric("Phase", str(state.get("phase") or "queued"))
    if job["kind"] in ("vast", "runpod"):
        cols[1].metric("Pod" if job["kind"] == "runpod" else "Instance",
                       str(state.get("instance_id") or state.get("pod_id") or "–"))
        cols[2].metric("GPU", str(state.get("gpu_name") or "–"))
        dph = state.get("dph_total")
        cols[3].metric("$/hour", f"{dph:.3f}" if dph else "–")
        cost = job.get("cost_usd")
        if cost is None and dph and state.get("rented_at") and state.get("phase") != "destroyed":
            cost = (time.time() - float(state["rented_at"])) * float(dph) / 3600.0
            st.caption(f"Cost so far ≈ ${cost:.4f}")
        elif cost is not None:
            st.caption(f"Cost ${cost:.4f}")
        budget = job.get("budget") or {}
        if budget:
            st.caption("Caps: " + ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in budget.items()))
    elif job["kind"] == "ssh":
        cols[1].metric("Server", str(state.get("server") or "–"))
    else:  # managed: the provider's own run id; Together's price estimate beside Nursery's
        cols[1].metric("Run", str(state.get("fine_tune_id") or state.get("training_id") or state.get("call_id")
                                  or "–"))
        if state.get("together_estimate_usd") is not None:
            cols[2].metric("Together's estimate", f"${float(state['together_estimate_usd']):.4f}")
        if state.get("nursery_estimate_usd") is not None:
            cols[3].metric("Nursery's estimate", f"${float(state['nursery_estimate_usd']):.4f}",
                           help=state.get("nursery_estimate_how"))
        if job.get("cost_usd") is not None:
            st.caption(f"Cost ${float(job['cost_usd']):.4f}")
        for note in state.get("mapping") or []:
            st.caption(f"Changed for {job['kind']}: {note}")


def render_reaper_panel(key: str = "reaper") -> None:
    """Finds nursery-* instances no live job uses (dry run), then destroys them on a second click."""
    from ..jobs.reaper import nursery_reap_instances

    st.caption("Instances labelled nursery-* whose job is finished or whose dashboard died keep billing. "
               "Look first, then destroy.")
    if st.button("Look for orphaned instances", key=f"{key}_dry"):
        try:
            st.session_state[f"{key}_found"] = nursery_reap_instances(dry_run=True)
        except NurseryError as e:
            st.error(str(e))
    found = st.session_state.get(f"{key}_found")
    if not found:
        return
    if not found["orphans"]:
        st.success(f"No orphaned instances ({len(found['kept'])} in use by live jobs).")
        return
    st.dataframe([{"instance": o["instance_id"], "label": o["label"], "job": o["job_state"], "GPU": o["gpu_name"],
                   "$/h": o["dph_total"]} for o in found["orphans"]], key=f"{key}_table", hide_index=True)
    if st.button(f"Destroy {len(found['orphans'])} instance(s)", type="primary", key=f"{key}_destroy"):
        try:
            res = nursery_reap_instances(dry_run=False)
        except NurseryError as e:
            st.error(str(e))
            return
        st.session_state.pop(f"{key}_found", None)
        st.success(f"Destroyed {len(res['destroyed'])} instance(s).")
        for err in res["errors"]:
            st.error(f"Instance {err['instance_id']}: {err['error']}")


def render_provider_settings() -> None:
    """Settings: the provider table (supported or what is needed), which keys are set, the SSH servers."""
    from ..cloud.providers import provider_table
    from ..cloud.credentials import secrets_file, vast_api_url

    rows = provider_table()
    st.dataframe([{"provider": r["name"], "status": "supported" if r["supported"] else "not yet supported",
                   "type": r["kind"],
                   "configured": ("key set (" + r["key"]["source"] + ")" if r.get("key", {}).get("set") else
                                  ("key not set" if "key" in r else
                                   f"{len(r.get('servers') or [])} server(s)"))}
                  for r in rows], key="settings_providers", hide_index=True, width="stretch")
    for r in rows:
        if not r["supported"]:
            with st.expander(f"{r['name']}: what support would need"):
                st.write(r["needs"])
    st.caption(f"Keys are read from the environment or {secrets_file()}; they are never shown or stored. "
               f"Vast.ai API: {vast_api_url()}")
    ssh = next(r for r in rows if r["id"] == "ssh")
    if ssh.get("config_error"):
        st.error(ssh["config_error"])
    if ssh.get("servers"):
        st.dataframe([{"name": s["name"], "address": f"{s['user']}@{s['host']}:{s['port']}",
                       "key file": s["key_path"], "python": s["python"], "remote dir": s["remote_root"]}
                      for s in ssh["servers"]], key="settings_ssh_servers", hide_index=True)
    else:
        st.info("No SSH servers configured: add [ssh_servers.<name>] with host, port, user and key_path to "
                ".streamlit/secrets.toml.")
