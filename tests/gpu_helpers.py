"""A fake GPU box for the GPU health-check tests: a bin directory with a fake `nvidia-smi` and a fake `python`
whose torch probe reports what a test says. Put `FakeBox.path` first on PATH (check_gpus(extra_path=...)).

Each fake answers from a queue: `smi(out, code)` replaces the queue with one answer; `smi_sequence([...])`
queues several, used in order, the last one repeating (a box whose first check shows ERR! and a later one is
healthy, or the other way round). `calls()` counts the nvidia-smi calls."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

HEALTHY_2 = ("0, NVIDIA GeForce RTX 3090, 24576, 1, 31, 0, 0\n"
             "1, NVIDIA GeForce RTX 3090, 24576, 1, 29, 0, 0\n")
ERR_ROW = ("0, NVIDIA GeForce RTX 3090, 24576, 1, 31, 0, 0\n"
           "1, NVIDIA GeForce RTX 3090, ERR!, ERR!, ERR!, ERR!, ERR!\n")

# Pops the first queued answer while more than one is left; the last one repeats.
_QUEUED = """#!/bin/sh
q={queue}
{log}
f=$(ls "$q" | sort | head -n 1)
cat "$q/$f/out"
code=$(cat "$q/$f/code")
[ "$(ls "$q" | wc -l)" -gt 1 ] && rm -r "$q/$f"
exit $code
"""


class FakeBox:
    def __init__(self, root: Path):
        self.path = Path(root) / "bin"
        self.path.mkdir(parents=True)
        self.state = Path(root) / "state"
        self.state.mkdir()
        self._n = 0
        for name, queue, log in (("nvidia-smi", "smi", f'echo "$@" >> {self.state}/args'),
                                 ("fakepython", "torch", "")):
            (self.state / queue).mkdir()
            f = self.path / name
            f.write_text(_QUEUED.format(queue=self.state / queue, log=log))
            f.chmod(0o755)
        self.smi(HEALTHY_2)
        self.torch(count=2)

    @classmethod
    def existing(cls, root: Path) -> "FakeBox":
        """A handle on a box another fixture made under `root` (same queues, same files)."""
        box = cls.__new__(cls)
        box.path, box.state = Path(root) / "bin", Path(root) / "state"
        box._n = 1000
        return box

    @property
    def python(self) -> str:
        return str(self.path / "fakepython")

    def _queue(self, name: str, answers: list[tuple[str, int]]) -> None:
        q = self.state / name
        shutil.rmtree(q)
        q.mkdir()
        for out, code in answers:
            self._n += 1
            d = q / f"{self._n:06d}"
            d.mkdir()
            (d / "out").write_text(out)
            (d / "code").write_text(str(code))

    def smi(self, out: str, code: int = 0) -> None:
        self._queue("smi", [(out, code)])

    def smi_sequence(self, answers: list[str | tuple[str, int]]) -> None:
        self._queue("smi", [a if isinstance(a, tuple) else (a, 0) for a in answers])

    def torch(self, count: int = 2, memory_mb: int = 24576, errors: list | None = None, raw: str | None = None,
              code: int = 0) -> None:
        text = raw if raw is not None else "NURSERY_TORCH " + json.dumps(
            {"available": count > 0, "count": count, "memory_mb": [memory_mb] * count, "errors": errors or []})
        self._queue("torch", [(text + "\n", code)])

    def args(self) -> list[list[str]]:
        """The argument lists nvidia-smi was called with, in order."""
        p = self.state / "args"
        return [ln.split() for ln in p.read_text().splitlines()] if p.exists() else []

    def calls(self) -> int:
        return len(self.args())
