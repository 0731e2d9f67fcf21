"""Serving commands: `mcp` (Nursery's tools for MCP clients) and `serve` (an OpenAI-compatible endpoint for
trained models). Both block until stopped and are bound to 127.0.0.1 by default."""
from __future__ import annotations

import os
import sys

from ..errors import InvalidInput
from ..serving.openai_api import DEFAULT_PORT
from . import Command, positive_int

TOKEN_ENV = "NURSERY_SERVE_TOKEN"


def _port(v: str) -> int:
    n = positive_int(v)
    if n > 65535:
        import argparse
        raise argparse.ArgumentTypeError("must be a port number from 1 to 65535")
    return n


def _mcp(args) -> None:
    from ..serving.mcp_server import serve

    if args.http is not None:
        print(f"Nursery MCP server on http://127.0.0.1:{args.http}/mcp (streamable HTTP)", file=sys.stderr)
    serve(http_port=args.http)


def _serve(args) -> None:
    from ..serving.openai_api import serve

    models = [m.strip() for m in (args.models or "").split(",") if m.strip()] or None
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise InvalidInput(f"serving on {args.host} needs a bearer token (--token or {TOKEN_ENV})", field="host")
    serve(port=args.port, host=args.host, models=models, token=token)


def register(sub) -> None:
    (Command(sub, "mcp", "Serve Nursery's tools (nursery_generate_data ... nursery_evaluate) to an MCP client: "
             "stdio by default, or streamable HTTP with --http PORT (path /mcp).", _mcp)
     .arg("--http", type=_port, default=None, metavar="PORT",
          help="serve streamable HTTP on 127.0.0.1:PORT (it has no authentication, so it stays on this machine)"))
    (Command(sub, "serve", "Serve trained models through an OpenAI-compatible API: POST /v1/chat/completions "
             "(tools, tool_choice, streaming) and GET /v1/models.", _serve)
     .arg("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
     .arg("--host", default="127.0.0.1", help="address (default 127.0.0.1; any other needs a token)")
     .arg("--models", default=None, metavar="A,B", help="only these models (default: every trained adapter and "
          "the local base models)")
     .arg("--token", default=None, help=f"require this bearer token (default: ${TOKEN_ENV} when set)"))
