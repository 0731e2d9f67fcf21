"""House rules that keep the core usable without a UI: no streamlit outside nursery_core/webui/."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_never_imports_streamlit_outside_webui():
    offenders = []
    for path in (ROOT / "nursery_core").rglob("*.py"):
        if "webui" in path.relative_to(ROOT / "nursery_core").parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_importing_the_package_pulls_in_neither_streamlit_nor_torch():
    code = ("import sys, nursery_core, nursery_core.store, nursery_core.records, nursery_core.cli;"
            "bad=[m for m in ('streamlit','torch','transformers') if m in sys.modules];"
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sql_lives_only_in_the_store():
    offenders = []
    for path in (ROOT / "nursery_core").rglob("*.py"):
        if path.name == "store.py":
            continue
        text = path.read_text()
        for needle in ("sqlite3.connect", ".execute(\"select", ".execute('select", "sqlite_utils.Database("):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []
