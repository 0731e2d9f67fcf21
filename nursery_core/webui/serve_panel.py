"""The Model Cradle's Serve panel: how to use a model from any OpenAI-compatible agent framework (`serve`'s URL,
the command that starts it, a copyable client snippet) and how to add Nursery's MCP server to an MCP client."""
from __future__ import annotations

import json
import sys

import streamlit as st

from .. import paths
from ..serving.mcp_server import mcp_client_config
from ..serving.openai_api import DEFAULT_PORT, client_snippet, endpoint_url


def render_serve_panel(model_name: str) -> None:
    port = int(st.number_input("Port", 1, 65535, DEFAULT_PORT, key="mc_serve_port"))
    with_token = st.toggle("Require a bearer token (NURSERY_SERVE_TOKEN)", value=False, key="mc_serve_token")
    st.markdown(f"Endpoint: `{endpoint_url(port)}`")
    st.caption("Start it in a terminal (it serves until stopped; tool calls come back in OpenAI's shape, guarded):")
    st.code(("NURSERY_SERVE_TOKEN=… " if with_token else "")
            + f"python -m nursery_core serve --port {port} --models {model_name}", language="bash")
    st.code(client_snippet(model_name, port=port, token="env" if with_token else None), language="python")
    with st.expander("Drive Nursery itself from an agent (MCP)", expanded=False):
        st.caption("Add this to your MCP client's configuration (Claude Desktop: claude_desktop_config.json):")
        st.code(json.dumps(mcp_client_config(sys.executable, str(paths.home())), indent=2), language="json")
