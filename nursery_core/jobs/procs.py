"""Process identity on this machine: a pid plus its kernel start time, so a recycled pid is never mistaken
for the process that once had it (Linux /proc; elsewhere signal 0 is the best available check)."""
from __future__ import annotations

import os
from pathlib import Path


def proc_start_time(pid: int) -> str | None:
    """The kernel start time of pid (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else None


def proc_alive(pid: int | None, start_time: str | None = None, needle: str | None = None) -> bool:
    """True if pid is a live (non-zombie) process with that start time and a cmdline containing needle."""
    if not pid:
        return False
    stat_file = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():  # no procfs: signal 0 is the best available check
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    try:
        rest = stat_file.read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    if rest and rest[0] in ("Z", "X"):
        return False
    if start_time is not None and (len(rest) <= 19 or rest[19] != str(start_time)):
        return False
    if needle:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if needle not in cmd:
            return False
    return True
