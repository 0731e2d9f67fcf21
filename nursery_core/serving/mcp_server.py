"""The MCP server: the nursery_* functions as Model Context Protocol tools, plus datasets, models and jobs as
resources (official `mcp` package 2.x, `MCPServer`; spec: modelcontextprotocol.io/specification).

Each tool is declared once, in TOOLS, by the core function it wraps: its parameters (names, types, defaults)
come from that function's signature, its description from its docstring, the training settings from
TrainConfig's field metadata and the generation settings from GenerationSettings. Only the design's
parameter names differ from the core's (`dataset_name` for `dataset`), and only through `rename`.

Rules an agent cannot bypass: a file it names must lie under NURSERY_HOME; a cloud run needs an explicit
`max_cost`; a core error becomes a tool error with the CLI's message. Training returns a job id at once (a
JobRunner in this process runs it); evaluation and deploy return a task id at once (a thread here runs
them); `nursery_job_status` with `wait_s` follows either, sending MCP progress notifications when the
client asked for them (a progressToken on the call).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import json
import time
import typing
from dataclasses import dataclass, field, fields as dc_fields
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import anyio
from pydantic import BaseModel, Field

from .. import paths
from ..cloud.credentials import DEFAULT_MAX_DPH, DEFAULT_MAX_HOURS
from ..data.generator import LEVELS as GENERATION_LEVELS, MAX_EXAMPLES
from ..errors import InvalidInput, NurseryError
from ..status import JobStatus
from .tasks import Tasks

SERVER_NAME = "nursery"
CREATED_BY = "mcp"  # the created_by of everything an agent makes through this server
MAX_WAIT_S = 600.0   # the longest nursery_job_status waits in one call
POLL_S = 0.5

# What the design's shared parameter names mean; one line each, used by every tool that has them.
PARAM_HELP = {
    "tool_name": "a built-in tool name (see the README: calculator, get_weather, memory_store, ...), a tool "
                 "schema (OpenAI function format or {name, description, parameters}, as an object or JSON "
                 "text), or a list of them for one combined dataset",
    "num_examples": "how many examples to generate",
    "variation_level": "low | medium | high: how much noise, distractor tools, optional arguments and no-call "
                       "examples",
    "seed": "random seed (the same seed gives the same result)",
    "requests_per_tool_set": "how many examples in a row offer one drawn tool list (1 = each draws its own); "
                             "training runs a shared tool list once per batch",
    "name": "name to store the result under (lowercase letters, digits, '.', '_', '-'); default: derived",
    "example_queries": "example user requests in your own words, mixed into the generated requests",
    "source": "a chat export under the data directory (ChatGPT/Claude conversations.json, a folder or .zip, "
              "OpenAI JSONL, ShareGPT, Hermes); a relative path is read from the data directory",
    "format": "input format, or 'auto' to detect it",
    "keep_plain": "keep conversations without tool calls as no_call examples",
    "redact": "replace e-mail addresses and API-key-like strings",
    "limit": "at most this many rows or examples",
    "offset": "skip this many rows (pagination)",
    "kind": "only this kind (datasets: training | golden; jobs: local | vast | ssh)",
    "dataset_name": "a stored dataset (see nursery_list_datasets)",
    "base_model": "base model alias (see nursery_list_models), or a model directory under the data directory",
    "output_name": "name of the trained model (default: derived from the dataset and base model)",
    "provider": "vast (a rented Vast.ai GPU, always destroyed afterwards) or ssh (your own GPU server)",
    "max_cost": "budget cap in US dollars for the whole run: the instance is destroyed when it is reached "
                "(required through MCP)",
    "max_dph": "highest price per hour (USD) of a rented GPU",
    "max_hours": "wall-clock cap in hours",
    "gpu": "GPU model to rent, e.g. 'RTX 4090'",
    "offer_id": "a specific Vast.ai offer id (see list-offers)",
    "min_gpu_ram_gb": "least GPU memory in GB (default: from the cost estimate)",
    "image": "Docker image for the rented machine",
    "disk_gb": "disk of the rented machine in GB (at least 8)",
    "ssh_server": "a GPU server configured in Settings (provider ssh)",
    "job_id": "a job id from nursery_train_local / nursery_train_cloud, or a task id (task-...) from "
              "nursery_evaluate / nursery_deploy_ollama",
    "log_lines": "lines of the run's log to include",
    "status": "only jobs in this state (queued, running, succeeded, failed, cancelled, interrupted)",
    "include_base": "also list the base models",
    "model_name": "a trained model (see nursery_list_models) or a base model alias",
    "prompt": "the user message",
    "prompts": "user messages both models answer",
    "model_a": "the first model", "model_b": "the second model",
    "tools": "tools to offer (OpenAI function format, as a list or JSON text); default: the model's training tools",
    "tools_from": "offer the tools of this stored dataset",
    "system": "a system message",
    "split": "which part of the dataset: eval (held out), train or all",
    "predictions": "a JSONL file of {id, output} under the data directory to score instead of running a model",
    "decoding": "both (free then guarded, the default), guarded or free",
    "guarded": "constrain tool calls to the offered tools' schemas (guarded decoding)",
    "max_new_tokens": "longest answer in tokens",
    "temperature": "0 = greedy; above 0 samples",
    "top_p": "nucleus sampling mass (with temperature > 0)",
    "batch_size": "prompts per forward pass",
    "epochs": "passes over the training examples",
    "probe": "measure this machine's speed once for the CPU time estimate",
    "outtype": "GGUF precision: auto, f16, bf16, f32 or q8_0",
    "skip_register": "write the files but do not register the model with Ollama",
    "force": "replace an existing export of this model",
    "quantize": "have Ollama quantize the f16 GGUF (e.g. q4_K_M)",
    "fallback": "when q8_0 fails verification, fall back to f16",
    "threshold": "least verification score the GGUF must reach",
    "keep_merged": "keep the merged Hugging Face model next to the GGUF",
    "wait_s": f"wait up to this many seconds (at most {MAX_WAIT_S:.0f}) for the job to finish, reporting "
              "progress notifications meanwhile when the client asked for them; 0 returns at once",
    "dataset": "a stored dataset whose split both models answer (instead of prompts)",
}

INSTRUCTIONS = ("Nursery turns a small open LLM into a reliable tool caller: generate or import tool-calling data, "
                "train a LoRA adapter (locally or on a cloud GPU), follow the job, then test, compare, evaluate and "
                "deploy the model.")

# Parameters set by the server, never by an agent.
FIXED = {"created_by": CREATED_BY}


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool over one core function (see the module docstring)."""

    name: str
    target: str                                   # "module:function"
    rename: dict = field(default_factory=dict)    # core parameter -> the design's name
    hide: tuple = ()                              # core parameters an agent does not set
    types: dict = field(default_factory=dict)     # exposed name -> annotation, where the core's is `Any`
    required: tuple = ()                          # optional in the core, required through MCP
    paths: tuple = ()                             # exposed names that may hold a file path
    hyper: bool = False                           # expose TrainConfig's settings (the core's **hyper)
    generation: bool = False                      # expose GenerationSettings (the core's **generation)
    task: str | None = None                       # run on a thread as a task of this kind
    progress_kw: str | None = None                # the core's progress-callback parameter (tasks)
    extra: tuple = ()                             # (name, annotation, default) the server handles itself
    via: str | None = None                        # a NurseryMCP method that makes the call (ctx, fn, args, own)
    precheck: Callable[..., Any] | None = None    # a task's quick checks, so bad input fails before it starts
    defaults: dict = field(default_factory=dict)  # exposed name -> default through MCP, where it differs
    note: str = ""                                # what differs through MCP


def _precheck_evaluate(model_name: str | None = None, dataset: str = "", split: str = "eval", limit: int | None = None,
                       predictions: str | None = None, **_: Any) -> None:
    """What nursery_evaluate checks first (dataset, split, limit, model), with its messages."""
    from ..evaluation.api import load_eval_examples
    from ..inference import resolve_model

    if not dataset:
        raise InvalidInput("choose a dataset to evaluate on", field="dataset")
    load_eval_examples(dataset, split, limit)
    if predictions is None:
        if not model_name:
            raise InvalidInput("give a model to run, or a predictions file to score", field="model")
        resolve_model(model_name)


def _precheck_deploy(model_name: str, **_: Any) -> None:
    from ..export.merge import model_adapter_dir

    model_adapter_dir(model_name)


ToolNames = str | dict[str, Any] | list[str | dict[str, Any]]
ToolList = str | list[dict[str, Any]] | None

TOOLS: list[ToolSpec] = [
    ToolSpec("nursery_generate_data", "nursery_core.data.generator:nursery_generate_data",
             hide=("paraphraser", "eval_fraction"),
             types={"tool_name": ToolNames, "variation_level": Literal[tuple(GENERATION_LEVELS)],  # type: ignore[valid-type]
                    "num_examples": Annotated[int, Field(ge=1, le=MAX_EXAMPLES)],
                    "requests_per_tool_set": Annotated[int, Field(ge=1, le=1000)]}),
    ToolSpec("nursery_extract_conversations", "nursery_core.data.importers:nursery_extract_conversations",
             paths=("source",)),
    ToolSpec("nursery_list_datasets", "nursery_core.datasets:nursery_list_datasets"),
    ToolSpec("nursery_estimate_cost", "nursery_core.estimate:nursery_estimate_cost", hide=("config",),
             paths=("base_model",)),
    ToolSpec("nursery_train_cloud", "nursery_core.jobs.train_cloud:nursery_train_cloud", rename={"dataset": "dataset_name"},
             hide=("host", "port", "user", "key_path", "python", "remote_root"), required=("max_cost",),
             defaults={"max_dph": DEFAULT_MAX_DPH, "max_hours": DEFAULT_MAX_HOURS}, paths=("base_model",),
             hyper=True,
             note="Through MCP `max_cost` is required and `max_dph`/`max_hours` start at the dashboard's caps; "
                  "an SSH run uses a server configured in Settings. Returns at once; follow the job with "
                  "nursery_job_status."),
    ToolSpec("nursery_train_local", "nursery_core.jobs.api:nursery_train_local", rename={"dataset": "dataset_name"},
             paths=("base_model",), hyper=True,
             note="Returns at once; follow the job with nursery_job_status (wait_s for progress notifications)."),
    ToolSpec("nursery_job_status", "nursery_core.jobs.api:nursery_job_status", extra=(("wait_s", float, 0.0),),
             via="_job_status"),
    ToolSpec("nursery_list_jobs", "nursery_core.jobs.api:nursery_list_jobs", via="_list_jobs",
             note="Evaluation and deploy tasks of this server come first, then the training jobs."),
    ToolSpec("nursery_list_models", "nursery_core.registry:nursery_list_models"),
    ToolSpec("nursery_deploy_ollama", "nursery_core.export.deploy:nursery_deploy_ollama",
             hide=("ollama_host",), task="deploy", progress_kw="progress", precheck=_precheck_deploy,
             note="Through MCP this starts a task and returns its id at once (the Ollama host is the one "
                  "configured in Settings); follow it with nursery_job_status, whose `result` is the deployment."),
    ToolSpec("nursery_test_model", "nursery_core.interactive:nursery_test_model", hide=("settings",),
             types={"tools": ToolList}, generation=True),
    ToolSpec("nursery_compare_models", "nursery_core.compare:nursery_compare_models",
             types={"tools": ToolList}),
    ToolSpec("nursery_evaluate", "nursery_core.evaluation.api:nursery_evaluate", rename={"dataset": "dataset_name"},
             required=("dataset_name",),
             hide=("store_result",), paths=("predictions",), task="evaluate", progress_kw="progress",
             precheck=_precheck_evaluate,
             note="Through MCP this starts a task and returns its id at once; follow it with nursery_job_status, "
                  "whose `result` is the evaluation."),
]
TOOL_NAMES = [t.name for t in TOOLS]


# ------------------------------------------------------------------------------------------ schemas
def _load(target: str) -> Callable[..., Any]:
    mod, attr = target.split(":")
    return getattr(importlib.import_module(mod), attr)


def _described(annotation: Any, name: str, help: str | None = None, **extra: Any) -> Any:
    text = help or PARAM_HELP.get(name)
    if not text and not extra:
        return annotation
    return Annotated[annotation, Field(description=text, json_schema_extra=extra or None)]


def _hyper_parameters(taken: set[str]) -> list[inspect.Parameter]:
    """TrainConfig's settings as optional parameters: help text and bounds from its field metadata (bounds go
    into the schema; TrainConfig.validate enforces them with its own messages)."""
    from ..training.config import HYPER_FIELDS, TrainConfig, field_help

    hints = typing.get_type_hints(TrainConfig)
    out = []
    for name, meta in field_help().items():
        if name not in HYPER_FIELDS or name in taken:
            continue
        ann = Literal[tuple(meta["choices"])] if meta.get("choices") else hints[name]
        bounds = {}
        if "min" in meta:
            bounds["exclusiveMinimum" if meta.get("min_exclusive") else "minimum"] = meta["min"]
        if "max" in meta:
            bounds["maximum"] = meta["max"]
        help = f"{meta['help']} (default {meta['default']})"
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                     annotation=_described(ann | None, name, help, **bounds)))
    return out


def _generation_parameters(taken: set[str]) -> list[inspect.Parameter]:
    from ..inference import GenerationSettings

    hints = typing.get_type_hints(GenerationSettings)
    return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=_described(hints[f.name] | None, f.name, (PARAM_HELP.get(f.name) or f.name)
                                                    + f" (default {f.default})"))
            for f in dc_fields(GenerationSettings) if f.name not in taken and f.name != "batch_size"]


def tool_parameters(spec: ToolSpec, fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The MCP parameters of a tool, from its core function's signature (see ToolSpec)."""
    hints = typing.get_type_hints(fn)
    out: list[inspect.Parameter] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in spec.hide or p.name in FIXED \
                or p.name == "progress":  # progress callbacks are the server's (notifications)
            continue
        name = spec.rename.get(p.name, p.name)
        ann = spec.types.get(name, hints.get(p.name, Any))
        default = inspect.Parameter.empty if name in spec.required else spec.defaults.get(name, p.default)
        if name in spec.required and type(None) in typing.get_args(ann):
            ann = typing.Union[tuple(a for a in typing.get_args(ann) if a is not type(None))]
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                     annotation=_described(ann, name)))
    taken = {p.name for p in out}
    for name, ann, default in spec.extra:
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                     annotation=_described(ann, name)))
    if spec.hyper:
        out += _hyper_parameters(taken)
    if spec.generation:
        out += _generation_parameters(taken)
    return out


def _description(spec: ToolSpec, fn: Callable[..., Any]) -> str:
    doc = " ".join((inspect.getdoc(fn) or spec.name).split())
    return f"{doc}\n\n{spec.note}" if spec.note else doc


# ------------------------------------------------------------------------------------------- checks
def _looks_like_path(value: str) -> bool:
    return any(s in value for s in ("/", "\\")) or value.startswith((".", "~"))


def check_inside_home(value: Any, field_name: str, always_path: bool) -> Any:
    """A file an agent names must lie under NURSERY_HOME (relative paths are read from there); returns the
    resolved path, or the value unchanged when it is a name rather than a path."""
    if not isinstance(value, str) or not value or (not always_path and not _looks_like_path(value)):
        return value
    p = Path(value).expanduser()
    p = p if p.is_absolute() else paths.home() / p
    if not paths.inside_home(p):
        raise InvalidInput(f"{value!r} is outside the data directory {paths.home()}: through MCP only files "
                           f"under it can be read (copy the file there first)", field=field_name)
    return str(p.resolve())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


# ------------------------------------------------------------------------------------------- server
class NurseryMCP:
    """Builds the MCPServer with every tool in TOOLS and the resources; `tasks` holds evaluation/deploy runs."""

    def __init__(self):
        from mcp.server.mcpserver import MCPServer

        self.tasks = Tasks()
        self.server = MCPServer(SERVER_NAME, title="Nursery", version=_version(), instructions=INSTRUCTIONS,
                                tools=[self._tool(spec) for spec in TOOLS], log_level="WARNING")
        self._add_resources()

    # -------------------------------------------------------------------- tools
    def _tool(self, spec: ToolSpec):
        """The MCP Tool for one spec; its argument model forbids unknown names, so a misspelt parameter is an
        error rather than silently ignored."""
        from mcp.server.mcpserver import Context
        from mcp.server.mcpserver.tools import Tool
        from pydantic import ConfigDict

        fn = _load(spec.target)
        params = tool_parameters(spec, fn)
        core_params = inspect.signature(fn).parameters
        fixed = {k: v for k, v in FIXED.items() if k in core_params}
        inverse = {v: k for k, v in spec.rename.items()}
        optional = {p.name for p in params if p.default is None}
        extras = {name for name, _, _ in spec.extra}

        async def call(ctx: Context, **kwargs: Any) -> Any:
            try:
                args = {}
                for k, v in kwargs.items():
                    if v is None and k in optional:
                        continue  # the core's own default
                    if k in spec.paths:
                        v = check_inside_home(v, k, always_path=k != "base_model")
                    args[inverse.get(k, k)] = v
                own = {k: args.pop(k) for k in list(args) if k in extras}
                if spec.via:
                    return _jsonable(await getattr(self, spec.via)(ctx, fn, args, own))
                if spec.task:
                    if spec.precheck:
                        await anyio.to_thread.run_sync(functools.partial(spec.precheck, **args))
                    label = args.get("model_name") or spec.name
                    return _jsonable(self.tasks.start(spec.task, f"{spec.task} {label}", fn, {**args, **fixed},
                                                      spec.progress_kw))
                return _jsonable(await anyio.to_thread.run_sync(functools.partial(fn, **args, **fixed)))
            except NurseryError as e:
                from mcp.server.mcpserver.exceptions import ToolError

                raise ToolError(str(e)) from None

        ret = typing.get_type_hints(fn).get("return", Any)
        ret = list[dict[str, Any]] if (ret is list or typing.get_origin(ret) is list) else dict[str, Any]
        call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context), *params],
            return_annotation=ret)
        call.__annotations__ = {"ctx": Context, **{p.name: p.annotation for p in params}, "return": ret}
        call.__name__ = spec.name
        tool = _clear_errors_tool(Tool).from_function(call, name=spec.name, description=_description(spec, fn),
                                                      structured_output=True)
        base = tool.fn_metadata.arg_model
        strict = typing.cast(type[BaseModel], type(base.__name__, (base,), {
            "model_config": ConfigDict(**base.model_config, extra="forbid"), "__module__": base.__module__}))
        tool.fn_metadata.arg_model = strict
        tool.parameters = strict.model_json_schema(by_alias=True)
        return tool

    async def _list_jobs(self, ctx, fn: Callable[..., Any], args: dict, own: dict) -> list[dict]:
        """This server's tasks (first page only, filtered alike), then the core's jobs."""
        jobs = await anyio.to_thread.run_sync(functools.partial(fn, **args))
        if args.get("offset"):
            return jobs
        wanted = args.get("status")
        wanted = {wanted} if isinstance(wanted, str) else set(wanted or [])
        tasks = [t for t in self.tasks.list() if (not wanted or t["status"] in wanted)
                 and args.get("kind") in (None, t["kind"])]
        return tasks + jobs

    async def _job_status(self, ctx, fn: Callable[..., Any], args: dict, own: dict) -> dict:
        """A task's or a job's status; with wait_s, polls until it is final (or the wait is over), reporting a
        progress notification whenever the steps done grow."""
        job_id, log_lines, wait_s = args["job_id"], args.get("log_lines", 20), float(own.get("wait_s") or 0.0)

        def read() -> dict:
            if self.tasks.owns(job_id):
                st = self.tasks.status(job_id)
                if st is None:
                    raise InvalidInput(f"no task {job_id!r} in this server (tasks last as long as the server "
                                       "process; finished evaluations and deployments are stored)", field="job_id")
                return st
            return fn(job_id, log_lines)

        status = await anyio.to_thread.run_sync(read)
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        sent = -1.0
        while True:
            if wait_s > 0 and _progress_value(status) > sent:  # the spec: progress must increase each time
                sent = _progress_value(status)
                await _report(ctx, status, sent)
            if not status.get("active", JobStatus(status["status"]).is_active) or time.monotonic() >= deadline:
                return status
            await anyio.sleep(POLL_S)
            status = await anyio.to_thread.run_sync(read)

    # -------------------------------------------------------------------- resources
    def _add_resources(self) -> None:
        s = self.server

        def res(uri: str, description: str):
            """Registers a reader whose NurseryError reaches the client as a ResourceError with its message."""
            def register(fn):
                from mcp.server.mcpserver.exceptions import ResourceError

                @functools.wraps(fn)
                def read(*a, **kw):
                    try:
                        return fn(*a, **kw)
                    except NurseryError as e:
                        raise ResourceError(str(e)) from None
                return s.resource(uri, description=description, mime_type="application/json")(read)
            return register

        @res("nursery://datasets", "Datasets, newest first (as nursery_list_datasets).")
        def datasets() -> str:
            from ..datasets import nursery_list_datasets
            return _dump(nursery_list_datasets())

        @res("nursery://datasets/{name}", "One dataset's metadata and its first five examples.")
        def dataset(name: str) -> str:
            from ..datasets import show_dataset
            return _dump(show_dataset(name, limit=5))

        @res("nursery://models", "Trained models with lineage, then the base models (as nursery_list_models).")
        def models() -> str:
            from ..registry import nursery_list_models
            return _dump(nursery_list_models())

        @res("nursery://models/{name}", "One trained model: lineage, losses, latest evaluation, deployments.")
        def model(name: str) -> str:
            from ..registry import get_model
            return _dump(get_model(name))

        @res("nursery://jobs", "Training jobs, newest first (as nursery_list_jobs).")
        def jobs() -> str:
            from ..jobs.api import nursery_list_jobs
            return _dump(self.tasks.list() + nursery_list_jobs())

        @res("nursery://jobs/{job_id}", "One job's status (as nursery_job_status).")
        def job(job_id: str) -> str:
            from ..jobs.api import nursery_job_status
            st = self.tasks.status(job_id) if self.tasks.owns(job_id) else None
            return _dump(st if st is not None else nursery_job_status(job_id))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _progress_value(status: dict) -> float:
    """Steps done (a finished run without steps counts as 1)."""
    step = float(status.get("step") or 0)
    return step if step or status.get("active", True) else 1.0


async def _report(ctx, status: dict, progress: float) -> None:
    """One progress notification (a no-op when the client sent no progressToken)."""
    step, total = status.get("step") or 0, status.get("total_steps")
    message = status.get("message") or (f"{status['status']}: step {step}/{total or '?'}"
                                        + (f", loss {status['last_loss']:.4f}" if status.get("last_loss") is not None
                                           else ""))
    await ctx.report_progress(progress, float(total) if total else None, message)


def _version() -> str:
    from .. import __version__
    return __version__


def mcp_client_config(python: str, home: str | None = None, project: str | None = None) -> dict:
    """The `mcpServers` entry an MCP client (Claude Desktop's claude_desktop_config.json and the like) needs to
    start `python -m nursery_core mcp` over stdio. Clients start it from a directory of their own, so the
    checkout goes on PYTHONPATH (Claude Desktop's entries have command, args and env only)."""
    env = {"PYTHONPATH": project or str(paths.PROJECT_ROOT)}
    if home:
        env["NURSERY_HOME"] = home
    return {"mcpServers": {"nursery": {"command": python, "args": ["-m", "nursery_core", "mcp"], "env": env}}}


def build_server() -> NurseryMCP:
    return NurseryMCP()


def serve(http_port: int | None = None, host: str = "127.0.0.1") -> None:
    """Runs the MCP server over stdio, or streamable HTTP on host:http_port (path /mcp), with a JobRunner in
    this process so that queued training runs start; blocks until the client or a signal ends it."""
    from ..jobs.runner import JobRunner

    app = build_server()
    runner = JobRunner().start()
    try:
        if http_port is None:
            app.server.run("stdio")
        else:
            app.server.run("streamable-http", host=host, port=int(http_port))
    finally:
        runner.shutdown()


__all__ = ["TOOLS", "TOOL_NAMES", "ToolSpec", "NurseryMCP", "build_server", "serve", "check_inside_home",
           "tool_parameters", "mcp_client_config"]


def argument_errors(exc: Any) -> str:
    """A pydantic ValidationError of a tool's arguments in the CLI's words: 'max_cost: required', one per field,
    joined with '; ' (the input schema's field names, no library links)."""
    words = {"missing": "required", "extra_forbidden": "unknown parameter"}
    out = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc") or ()) or "arguments"
        out.append(f"{where}: {words.get(err.get('type'), err.get('msg', 'invalid'))}")
    return "; ".join(out)


_ToolT = typing.TypeVar("_ToolT")


@functools.cache
def _clear_errors_tool(base: type[_ToolT]) -> type[_ToolT]:
    """The mcp Tool class whose argument-validation errors read like the CLI's (field: what is wrong)."""
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError

    class ClearErrorsTool(base):  # type: ignore[misc, valid-type]
        async def run(self, arguments, context, convert_result=False):
            try:
                return await super().run(arguments, context, convert_result)
            except ToolError as e:
                if isinstance(e.__cause__, ValidationError):
                    raise ToolError(f"{self.name}: {argument_errors(e.__cause__)}") from None
                raise

    return ClearErrorsTool
