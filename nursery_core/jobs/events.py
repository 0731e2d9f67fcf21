"""Decoding the worker's JSON-lines event stream, shared by the local tail and the remote (SFTP) tail."""
from __future__ import annotations

import json
from typing import Iterable


def decode_events(lines: Iterable[bytes], after_seq: int) -> tuple[list[dict], int]:
    """(new events, highest seq seen): skips partial or foreign lines and events already recorded, so a
    re-attached runner never stores an event twice."""
    out = []
    for raw in lines:
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        seq = int(ev.get("seq") or 0)
        if seq and seq <= after_seq:
            continue
        after_seq = max(after_seq, seq)
        out.append(ev)
    return out, after_seq
