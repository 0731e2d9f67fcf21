"""System commands: the environment report."""
from __future__ import annotations

from .. import doctor
from . import Command


def register(sub) -> None:
    Command(sub, "doctor", "Report versions, device, data directory, provider keys (set or not) and components",
            lambda a: doctor.report(with_sizes=not a.quick)).arg(
        "--quick", action="store_true", help="skip measuring the data directory's size")
