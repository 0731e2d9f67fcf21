"""The data commands end to end through `python -m nursery_core`, as a script or an agent would call them."""
import json
import os
import subprocess
import sys
from pathlib import Path

from nursery_core.records import call_errors, tools_by_name

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, home):
    env = {**os.environ, "NURSERY_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "nursery_core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def all_valid(path):
    n = 0
    for line in Path(path).read_text().splitlines():
        ex = json.loads(line)
        by = tools_by_name(ex["tools"])
        for m in ex["messages"]:
            for c in m.get("tool_calls") or ():
                assert call_errors(by[c["function"]["name"]], c["function"]["arguments"]) == []
        n += 1
    return n


def test_generate_then_list(nursery_home):
    r = cli("generate-data", "--tool", "memory_store", "--num-examples", "50", "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert {"name", "path", "num_examples", "tools", "categories", "split"} <= set(meta)
    assert meta["name"] == "memory-store" and meta["num_examples"] == 50
    r = cli("list-datasets", "--json", home=nursery_home)
    rows = json.loads(r.stdout)
    assert [(d["name"], d["num_examples"]) for d in rows] == [("memory-store", 50)]
    assert all_valid(rows[0]["path"]) == 50
    assert sum(rows[0]["categories"].values()) == 50 and rows[0]["split"]["eval"] == 5
    shown = json.loads(cli("show-dataset", "memory-store", "--limit", "2", "--json", home=nursery_home).stdout)
    assert len(shown["examples"]) == 2
    human = cli("show-dataset", "memory-store", home=nursery_home)
    assert human.returncode == 0 and "memory_store" in human.stdout


def test_custom_schema_file_gives_100_varied_valid_examples(nursery_home, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "function", "function": {
        "name": "create_ticket", "description": "Creates a support ticket in the helpdesk.",
        "parameters": {"type": "object", "properties": {
            "title": {"type": "string", "description": "Short summary"},
            "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
            "customer_email": {"type": "string", "format": "email"},
            "due_date": {"type": "string", "format": "date"},
            "estimate_hours": {"type": "number", "minimum": 0.5, "maximum": 40}},
            "required": ["title", "priority", "customer_email"]}}}))
    r = cli("generate-data", "--tool-schema", str(schema), "--num-examples", "100", "--variation", "high",
            "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert meta["name"] == "create-ticket" and meta["num_examples"] == 100
    assert all_valid(meta["path"]) == 100
    exs = [json.loads(line) for line in Path(meta["path"]).read_text().splitlines()]
    queries = [m["content"] for e in exs for m in e["messages"] if m["role"] == "user"]
    assert len(set(queries)) == len(queries)
    assert len({q.split()[0].lower() for q in queries}) >= 8  # not one template over and over
    assert set(meta["categories"]) >= {"call", "no_call"}


def test_errors_exit_non_zero_with_one_line(nursery_home, tmp_path):
    cases = [
        ("generate-data", "--tool", "no_such_tool"),
        ("generate-data",),
        ("import-dataset", str(tmp_path / "missing.jsonl")),
        ("show-dataset", "nope"),
        ("delete-dataset", "nope"),
        ("extract-conversations", str(tmp_path)),
        ("generate-data", "--tool", "get_weather", "--name", "../../etc/passwd"),
    ]
    for args in cases:
        r = cli(*args, "--json", home=nursery_home)
        assert r.returncode != 0, args
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), (args, r.stderr)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "x"}]}\n')
    r = cli("import-dataset", str(bad), home=nursery_home)
    assert r.returncode == 2 and "bad.jsonl:1, field 'messages[0].role'" in r.stderr
    assert json.loads(cli("list-datasets", "--json", home=nursery_home).stdout) == []


def test_extract_import_and_delete(nursery_home, tmp_path):
    fix = Path(__file__).parent / "fixtures" / "imports"
    r = cli("extract-conversations", str(fix / "sharegpt_tools.json"), "--keep-plain", "--name", "glaive", "--json",
            home=nursery_home)
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert meta["num_examples"] == 2 and meta["report"]["format"] == "sharegpt"
    r = cli("import-dataset", meta["path"], "--name", "glaive-copy", "--json", home=nursery_home)
    assert json.loads(r.stdout)["num_examples"] == 2
    r = cli("import-dataset", meta["path"], "--name", "glaive-copy", home=nursery_home)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert json.loads(cli("delete-dataset", "glaive", "--json", home=nursery_home).stdout)["deleted"] == "glaive"
    assert [d["name"] for d in json.loads(cli("list-datasets", "--json", home=nursery_home).stdout)] == ["glaive-copy"]
