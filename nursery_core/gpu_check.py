"""GPU health check for a rented machine, before any training starts on it.

The design's troubleshooting rule: when `nvidia-smi` shows `ERR!` or no GPU is detected, the instance has a
hardware fault: destroy it and rent another. `probe_script()` is one shell script run on the machine (over SSH
or locally); it prints `nvidia-smi --query-gpu=... --format=csv` and a `torch.cuda` probe that counts the GPUs,
reads their memory and runs one small kernel on each. `parse_probe()` turns that output into a `GpuVerdict`:
ok, or a fault with the reason (ERR! or an error marker in a field, uncorrected ECC errors, no driver, no GPU,
fewer GPUs or less memory than the offer promised, torch unable to use a GPU). Pure: no job or provider logic.
"""
from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

QUERY_FIELDS = ("index", "name", "memory.total", "memory.used", "temperature.gpu", "utilization.gpu",
                "ecc.errors.uncorrected.volatile.total")
# What nvidia-smi prints in a field it cannot read from a faulty GPU (a healthy card that lacks a feature
# prints "[N/A]" or "N/A", which is not a fault).
FAULT_MARKERS = ("ERR!", "[GPU requires reset]", "[Unknown Error]", "[GPU is lost]", "[Not Found]")
# nvidia-smi reports a card's usable memory a little under its nominal size (e.g. 24564 MiB for "24 GB").
MEMORY_TOLERANCE = 0.95

_TORCH_PROBE = (
    "import json, torch\n"
    "out = {'available': torch.cuda.is_available(), 'count': torch.cuda.device_count(), 'memory_mb': [],"
    " 'errors': []}\n"
    "for i in range(out['count']):\n"
    "    try:\n"
    "        out['memory_mb'].append(torch.cuda.get_device_properties(i).total_memory // 2**20)\n"
    "        x = torch.ones(256, 256, device=f'cuda:{i}')\n"
    "        assert float((x @ x).sum()) == 256.0 ** 3\n"
    "    except Exception as e:\n"
    "        out['errors'].append(f'cuda:{i}: {type(e).__name__}: {e}'[:300])\n"
    "print('NURSERY_TORCH ' + json.dumps(out))\n"
)


@dataclass
class GpuInfo:
    """One row of nvidia-smi: index, name, memory in MiB (None when unreadable) and the raw fields."""

    index: int
    name: str
    memory_total_mb: int | None
    raw: dict[str, str] = field(default_factory=dict)


@dataclass
class GpuVerdict:
    """`ok` with the GPUs seen, or a fault with a `reason` a user can read. `torch_count` is None when torch was
    not probed (not installed there yet and not required)."""

    ok: bool
    reason: str
    gpus: list[GpuInfo] = field(default_factory=list)
    torch_count: int | None = None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "fault"

    def to_dict(self) -> dict:
        return {"status": self.status, **asdict(self)}


class Runner(Protocol):
    """Something that runs a shell command: an SSHSession has this `run` (returns exit code and output)."""

    def run(self, command: str, *, timeout: float = ..., check: bool = ...) -> tuple[int, str]: ...


def probe_script(python: str = "python3", extra_path: str | None = None) -> str:
    """The shell script that prints everything `parse_probe` reads. `python` runs the torch probe; `extra_path`
    is put before PATH (a driver in a non-standard place)."""
    lines = ["export LC_ALL=C"]
    if extra_path:
        lines.append(f"export PATH={shlex.quote(extra_path)}:\"$PATH\"")
    query = ",".join(QUERY_FIELDS)
    lines += [
        "echo '== nvidia-smi'",
        "if command -v nvidia-smi >/dev/null 2>&1; then",
        f"  nvidia-smi --query-gpu={query} --format=csv,noheader,nounits 2>&1; echo \"== nvidia-smi exit $?\"",
        "else echo '== nvidia-smi missing'; fi",
        "echo '== torch'",
        f"{shlex.quote(python)} -c {shlex.quote(_TORCH_PROBE)} 2>&1; echo \"== torch exit $?\"",
    ]
    return "\n".join(lines) + "\n"


def _sections(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("== "):
            head = line[3:].strip()
            name = head.split()[0]
            if head.endswith("missing"):
                out[name + ":missing"] = []
            elif " exit " in f" {head} ":
                out[name + ":exit"] = [head.rsplit(" ", 1)[-1]]
            else:
                current = name
                out.setdefault(current, [])
            continue
        if current is not None:
            out[current].append(line)
    return out


def _int(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None


def parse_probe(output: str, *, expected_gpus: int = 1, min_memory_mb: float = 0.0,
                require_torch: bool = True) -> GpuVerdict:
    """Reads `probe_script` output into a verdict.

    `expected_gpus` and `min_memory_mb` (per GPU, MiB) are what the offer promised; memory may be up to 5 %
    under it. Without `require_torch`, a machine where torch is not installed yet is judged on nvidia-smi alone."""
    sec = _sections(output)
    if "nvidia-smi:missing" in sec:
        return GpuVerdict(False, "nvidia-smi is not installed: no NVIDIA driver on this machine")
    if "nvidia-smi" not in sec:
        return GpuVerdict(False, "the GPU check printed nothing recognisable: " + " ".join(output.split())[:200])
    rows = [ln.strip() for ln in sec["nvidia-smi"] if ln.strip()]
    code = _int((sec.get("nvidia-smi:exit") or ["?"])[0])
    gpus: list[GpuInfo] = []
    for ln in rows:
        parts = [p.strip() for p in ln.split(",")]
        if len(parts) != len(QUERY_FIELDS) or _int(parts[0]) is None:
            # "No devices were found", "NVIDIA-SMI has failed because it couldn't communicate with the driver"
            return GpuVerdict(False, f"nvidia-smi found no usable GPU (exit {code}): {ln[:200]}", gpus)
        raw = dict(zip(QUERY_FIELDS, parts))
        gpus.append(GpuInfo(int(parts[0]), raw["name"], _int(raw["memory.total"]), raw))
    if code != 0 or not gpus:
        return GpuVerdict(False, f"nvidia-smi found no GPU (exit {code})" + (f": {rows[0][:200]}" if rows else ""),
                          gpus)
    for g in gpus:
        for name, value in g.raw.items():
            if any(m.lower() in value.lower() for m in FAULT_MARKERS):
                return GpuVerdict(False, f"GPU {g.index} ({g.name}) reports {value} in {name}: a hardware fault",
                                  gpus)
        ecc = _int(g.raw["ecc.errors.uncorrected.volatile.total"])
        if ecc:
            return GpuVerdict(False, f"GPU {g.index} ({g.name}) has {ecc} uncorrected ECC error(s)", gpus)
    if len(gpus) < expected_gpus:
        return GpuVerdict(False, f"nvidia-smi sees {len(gpus)} GPU(s); the offer promised {expected_gpus}", gpus)
    for g in gpus:
        if g.memory_total_mb is None or g.memory_total_mb < MEMORY_TOLERANCE * min_memory_mb:
            return GpuVerdict(False, f"GPU {g.index} ({g.name}) has {g.memory_total_mb} MiB; the offer promised "
                              f"{min_memory_mb:.0f} MiB", gpus)

    torch_lines = sec.get("torch", [])
    probe = next((ln for ln in torch_lines if ln.startswith("NURSERY_TORCH ")), None)
    if probe is None:
        text = " ".join(" ".join(torch_lines).split())
        if not require_torch and "No module named 'torch'" in text:
            return GpuVerdict(True, f"{len(gpus)} GPU(s) healthy per nvidia-smi (torch not installed yet)", gpus)
        return GpuVerdict(False, f"the torch.cuda probe failed: {text[-300:] or 'no output'}", gpus)
    t: dict[str, Any] = json.loads(probe[len("NURSERY_TORCH "):])
    if t["errors"]:
        return GpuVerdict(False, "torch cannot use a GPU: " + "; ".join(t["errors"]), gpus, t["count"])
    if not t["available"] or t["count"] < expected_gpus:
        return GpuVerdict(False, f"torch.cuda sees {t['count']} GPU(s); nvidia-smi sees {len(gpus)} and the offer "
                          f"promised {expected_gpus}", gpus, t["count"])
    low = [m for m in t["memory_mb"] if m < MEMORY_TOLERANCE * min_memory_mb]
    if low:
        return GpuVerdict(False, f"torch.cuda reports {low[0]} MiB on a GPU; the offer promised "
                          f"{min_memory_mb:.0f} MiB", gpus, t["count"])
    return GpuVerdict(True, f"{len(gpus)} GPU(s) healthy: " + ", ".join(
        f"{g.name} {g.memory_total_mb} MiB" for g in gpus), gpus, t["count"])


def check_gpus(runner: Runner | None = None, *, expected_gpus: int = 1, min_memory_mb: float = 0.0,
               python: str = "python3", extra_path: str | None = None, require_torch: bool = True,
               timeout: float = 120.0) -> GpuVerdict:
    """Runs the probe through `runner` (an SSHSession) or, with None, on this machine, and judges it.

    Connection errors from the runner propagate; a probe that times out locally is a fault."""
    script = probe_script(python, extra_path)
    if runner is not None:
        _, out = runner.run(f"bash -c {shlex.quote(script)}", timeout=timeout, check=False)
    else:
        try:
            out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout).stdout
        except subprocess.TimeoutExpired:
            return GpuVerdict(False, f"the GPU check did not finish within {timeout:.0f} s (a hung driver)")
    return parse_probe(out, expected_gpus=expected_gpus, min_memory_mb=min_memory_mb, require_torch=require_torch)
