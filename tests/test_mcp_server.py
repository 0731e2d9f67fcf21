"""`python -m nursery_core mcp` driven by the official `mcp` client, over stdio and over streamable HTTP: the
thirteen tools with their schemas, the whole loop (generate, train a tiny model, follow it, list, test) and bad
input (each a tool error with the core's message, nothing stored)."""
from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import asynccontextmanager

import anyio
import pytest

from conftest import ROOT
from server_helpers import child_env, nursery_server

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

THIRTEEN = {"nursery_generate_data", "nursery_extract_conversations", "nursery_list_datasets",
            "nursery_estimate_cost", "nursery_train_cloud", "nursery_train_local", "nursery_job_status",
            "nursery_list_jobs", "nursery_list_models", "nursery_deploy_ollama", "nursery_test_model",
            "nursery_compare_models", "nursery_evaluate"}


@asynccontextmanager
async def stdio_session(home):
    from nursery_core.serving.mcp_server import mcp_client_config

    # started the way the README's client configuration says, from a directory that is not the checkout
    entry = mcp_client_config(sys.executable, str(home))["mcpServers"]["nursery"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                   env={**child_env(home), **entry["env"]}, cwd=str(home))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(home):
    with nursery_server(home, "mcp", port_flag="--http") as port:
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


SESSIONS = {"stdio": stdio_session, "http": http_session}


def data(result) -> object:
    """A tool result's value (structured content, unwrapped from {"result": ...} for lists)."""
    assert not result.is_error, result.content[0].text
    value = result.structured_content
    return value["result"] if isinstance(value, dict) and set(value) == {"result"} else value


def error_text(result) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text


# ------------------------------------------------------------------------------------------ tools
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_lists_the_thirteen_tools_with_schemas_from_the_core(nursery_home, transport):
    async def main():
        async with SESSIONS[transport](nursery_home) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert set(tools) == THIRTEEN
            for t in tools.values():
                assert t.description and t.input_schema["type"] == "object" and t.input_schema["properties"]
            gen = tools["nursery_generate_data"].input_schema
            assert gen["required"] == ["tool_name"]
            assert {"tool_name", "num_examples", "variation_level"} <= set(gen["properties"])
            # the generator's own levels and bounds, so an agent sees them before it calls
            assert gen["properties"]["variation_level"]["enum"] == ["low", "medium", "high"]
            assert gen["properties"]["num_examples"]["minimum"] == 1
            assert gen["properties"]["num_examples"]["maximum"] == 200_000
            assert tools["nursery_generate_data"].description.startswith("Generates a tool-calling dataset")
            cloud = tools["nursery_train_cloud"].input_schema
            assert set(cloud["required"]) == {"dataset_name", "max_cost"}
            assert {"base_model", "epochs", "output_name", "provider"} <= set(cloud["properties"])
            # the dashboard's caps, from one declaration
            caps = cloud["properties"]
            assert caps["max_dph"]["default"] == 0.5 and caps["max_hours"]["default"] == 2.0
            local = tools["nursery_train_local"].input_schema["properties"]
            # TrainConfig's field metadata drives the training settings
            lr = local["learning_rate"]
            assert lr["exclusiveMinimum"] == 0.0 and lr["maximum"] == 1.0 and "AdamW" in lr["description"]
            assert local["scheduler"]["anyOf"][0]["enum"] == ["cosine", "linear", "constant"]
            assert "created_by" not in local and "dataset" not in local and "dataset_name" in local
            assert {"model_a", "model_b", "prompts"} <= set(tools["nursery_compare_models"].input_schema["properties"])
            assert {"model_name", "prompt"} <= set(tools["nursery_test_model"].input_schema["required"])
            assert "job_id" in tools["nursery_job_status"].input_schema["required"]
            assert "source" in tools["nursery_extract_conversations"].input_schema["required"]
    anyio.run(main)


def test_bad_input_is_a_tool_error_and_stores_nothing(nursery_home):
    outside = nursery_home.parent / "outside.json"
    outside.write_text(json.dumps([{"user_query": "hi", "tool_name": "x", "tool_arguments": {}}]))

    async def main():
        async with stdio_session(nursery_home) as s:
            unknown = await s.call_tool("nursery_delete_everything", {})
            assert "nursery_delete_everything" in error_text(unknown)
            missing = error_text(await s.call_tool("nursery_generate_data", {"num_examples": 5}))
            assert "tool_name" in missing and "required" in missing.lower()
            typo = error_text(await s.call_tool("nursery_generate_data", {"tool_name": "memory_store",
                                                                          "num_exampels": 5}))
            assert "num_exampels" in typo  # a misspelt parameter is an error, not silently ignored
            escape = error_text(await s.call_tool("nursery_extract_conversations", {"source": str(outside)}))
            assert "outside the data directory" in escape and "source" in escape
            relative = error_text(await s.call_tool("nursery_extract_conversations", {"source": "../outside.json"}))
            assert "outside the data directory" in relative
            model_dir = error_text(await s.call_tool("nursery_train_local", {
                "dataset_name": "nope", "base_model": str(nursery_home.parent)}))
            assert "outside the data directory" in model_dir and "base_model" in model_dir
            no_cap = error_text(await s.call_tool("nursery_train_cloud", {"dataset_name": "anything"}))
            assert "max_cost" in no_cap and "required" in no_cap.lower()
            assert no_cap == "nursery_train_cloud: max_cost: required"  # the CLI's words, no library text
            assert typo == "nursery_generate_data: num_exampels: unknown parameter"
            # the core's own message, as the CLI prints it
            core = error_text(await s.call_tool("nursery_train_local", {"dataset_name": "nope"}))
            assert "no dataset named 'nope'" in core
            bad_setting = error_text(await s.call_tool("nursery_generate_data", {
                "tool_name": "memory_store", "name": "../escape"}))
            assert "not allowed" in bad_setting
            # long work fails before it starts a task when the input is wrong
            ev = error_text(await s.call_tool("nursery_evaluate", {"model_name": "smollm2-135m",
                                                                   "dataset_name": "nope"}))
            assert "nope" in ev
            dep = error_text(await s.call_tool("nursery_deploy_ollama", {"model_name": "nope"}))
            assert "nope" in dep
            assert data(await s.call_tool("nursery_list_datasets", {})) == []
            assert data(await s.call_tool("nursery_list_jobs", {})) == []
    anyio.run(main)
    assert not any((nursery_home / "datasets").glob("*")) if (nursery_home / "datasets").exists() else True
    assert not (nursery_home / "jobs").exists() or not any((nursery_home / "jobs").iterdir())


def test_cloud_run_with_a_cap_still_goes_through_the_core_checks(nursery_home):
    async def main():
        async with stdio_session(nursery_home) as s:
            await s.call_tool("nursery_generate_data", {"tool_name": "memory_store", "num_examples": 20,
                                                        "name": "mem"})
            msg = error_text(await s.call_tool("nursery_train_cloud", {"dataset_name": "mem", "max_cost": -1}))
            assert "max_cost" in msg
            assert data(await s.call_tool("nursery_list_jobs", {})) == []
    anyio.run(main)


def test_resources_list_datasets_models_and_jobs(nursery_home):
    (nursery_home / "imports").mkdir()
    rows = [{"user_query": f"Remember that locker {i} has code {i * 7}.", "tool_name": "memory_store",
             "tool_arguments": {"content": f"locker {i} has code {i * 7}"}} for i in range(12)]
    (nursery_home / "imports" / "flat.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    async def main():
        async with stdio_session(nursery_home) as s:
            # a file under the data directory may be imported (a relative path is read from there)
            imported = data(await s.call_tool("nursery_extract_conversations", {"source": "imports/flat.jsonl",
                                                                                "name": "flat"}))
            assert imported["name"] == "flat" and imported["num_examples"] == 12
            await s.call_tool("nursery_generate_data", {"tool_name": "get_weather", "num_examples": 20,
                                                        "name": "weather"})
            uris = {str(r.uri) for r in (await s.list_resources()).resources}
            assert {"nursery://datasets", "nursery://models", "nursery://jobs"} <= uris
            templates = {t.uri_template for t in (await s.list_resource_templates()).resource_templates}
            assert {"nursery://datasets/{name}", "nursery://models/{name}", "nursery://jobs/{job_id}"} <= templates
            listed = json.loads((await s.read_resource("nursery://datasets")).contents[0].text)
            assert [d["name"] for d in listed] == ["weather", "flat"]
            one = json.loads((await s.read_resource("nursery://datasets/weather")).contents[0].text)
            assert one["num_examples"] == 20 and len(one["examples"]) == 5
            with pytest.raises(MCPError, match="no dataset named 'nope'"):
                await s.read_resource("nursery://datasets/nope")
            models = json.loads((await s.read_resource("nursery://models")).contents[0].text)
            assert any(m["name"] == "smollm2-135m" and m["kind"] == "base" for m in models)
    anyio.run(main)


# ------------------------------------------------------------------------------------ the whole loop
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_generate_train_follow_list_and_test_a_model(nursery_home, tiny_model_dir, transport):
    base = nursery_home / "base_models" / "tiny"
    shutil.copytree(tiny_model_dir, base)  # a model directory an agent names must lie under the data directory
    notes: list[tuple] = []

    async def on_progress(progress, total, message):
        notes.append((progress, total, message))

    async def main():
        async with SESSIONS[transport](nursery_home) as s:
            ds = data(await s.call_tool("nursery_generate_data", {
                "tool_name": "memory_store", "num_examples": 16, "variation_level": "low", "name": "mem"}))
            assert ds["name"] == "mem" and ds["num_examples"] == 16
            t0 = time.monotonic()
            job = data(await s.call_tool("nursery_train_local", {
                "dataset_name": "mem", "base_model": str(base), "output_name": "tiny-mem", "max_steps": 3,
                "r": 4, "max_length": 384, "learning_rate": 0.002}))
            assert time.monotonic() - t0 < 30, "training must return a job id at once"
            assert job["status"] in ("queued", "running") and job["output_name"] == "tiny-mem"
            if transport == "stdio":  # follow through progress notifications
                final = data(await s.call_tool("nursery_job_status", {"job_id": job["id"], "wait_s": 400},
                                               progress_callback=on_progress))
                assert notes and notes[-1][0] == 3 and notes[-1][1] == 3
                assert all(a[0] < b[0] for a, b in zip(notes, notes[1:])), notes  # the spec: increasing
            else:  # follow by polling, as an agent without progress support does
                deadline = time.monotonic() + 400
                while True:
                    final = data(await s.call_tool("nursery_job_status", {"job_id": job["id"]}))
                    if not final["active"] or time.monotonic() > deadline:
                        break
                    await anyio.sleep(1)
            assert final["status"] == "succeeded", final.get("error") or final.get("log_tail")
            assert final["model_name"] == "tiny-mem" and final["step"] == 3
            models = data(await s.call_tool("nursery_list_models", {"include_base": False}))
            assert [m["name"] for m in models] == ["tiny-mem"] and models[0]["dataset"] == "mem"
            out = data(await s.call_tool("nursery_test_model", {
                "model_name": "tiny-mem", "prompt": "Remember that the garage code is 4821.",
                "max_new_tokens": 24}))
            assert out["model"] == "tiny-mem" and out["tools"] == ["memory_store"]
            assert out["decoding"] == "guarded" and isinstance(out["completion"], str)
            for call in out["calls"]:  # guarded decoding: whatever it calls is valid for the schema
                assert call["name"] == "memory_store" and call["schema_valid"], call
            jobs = json.loads((await s.read_resource(f"nursery://jobs/{job['id']}")).contents[0].text)
            assert jobs["status"] == "succeeded"
            # evaluation is long work: a task id at once, followed like a job
            task = data(await s.call_tool("nursery_evaluate", {"model_name": "tiny-mem", "dataset_name": "mem",
                                                               "limit": 2, "max_new_tokens": 16}))
            assert task["id"].startswith("task-") and task["status"] == "running"
            done = data(await s.call_tool("nursery_job_status", {"job_id": task["id"], "wait_s": 300}))
            assert done["status"] == "succeeded", done["error"]
            assert done["result"]["model"] == "tiny-mem" and done["result"]["num_examples"] == 2
    anyio.run(main)


def test_tasks_follow_progress_results_and_failures():
    from nursery_core.errors import InvalidInput
    from nursery_core.serving.tasks import Tasks

    tasks = Tasks()

    def ok(progress):
        progress(1, 2)
        progress(2, 2)
        return {"score": 1.0}

    def bad(progress):
        raise InvalidInput("no such thing", field="dataset")

    def final(task_id):
        deadline = time.monotonic() + 10
        while tasks.status(task_id)["active"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return tasks.status(task_id)

    a = tasks.start("evaluate", "evaluate a", ok, {})
    assert a["id"].startswith("task-") and a["status"] == "running"
    done = final(a["id"])
    assert done["status"] == "succeeded" and done["result"] == {"score": 1.0}
    assert (done["step"], done["total_steps"], done["progress"]) == (2, 2, 1.0)
    failed = final(tasks.start("evaluate", "evaluate b", bad, {})["id"])
    assert failed["status"] == "failed" and failed["error"] == "field 'dataset': no such thing"
    assert [t["label"] for t in tasks.list()] == ["evaluate b", "evaluate a"]
    assert tasks.status("task-unknown") is None


def test_the_cli_lists_mcp_and_serve():
    import subprocess

    r = subprocess.run([sys.executable, "-m", "nursery_core", "--help"], cwd=str(ROOT), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "    mcp " in r.stdout and "    serve " in r.stdout
    r = subprocess.run([sys.executable, "-m", "nursery_core", "mcp", "--http", "70000"], cwd=str(ROOT),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "65535" in r.stderr
