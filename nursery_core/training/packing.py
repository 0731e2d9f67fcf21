"""Shared-prefix packing: examples whose prompts begin with the same tokens train in one row that runs that
prefix once.

Every tool-calling example starts with a system turn listing the offered tools: on the default data that is
~270 of its ~330 tokens, while the answer the loss reads is ~40. When several examples in a micro-batch offer
the same tools, their token sequences share that prefix exactly. A packed row holds the shared prefix once,
then each example's own tail (its user turn, answer, ...). A block attention mask lets every tail attend to the
prefix and to itself only, and each tail's position ids continue from the end of the prefix, so every tail
token sees exactly the context it would see alone: the loss and its gradient equal the unpacked batch's (a test
checks it), for a fraction of the tokens. The same idea is known as prefix sharing or "shared-prefix
batching" (e.g. in DPO/RLHF trainers that share one prompt across several completions).

Micro-batches ("units") are built once per run from the examples sorted by their tokens, so examples with a
common prefix land together, and reused every epoch in a new order: that keeps each row's frozen-trunk output
cacheable (trunk_cache.py) across epochs.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

MIN_PREFIX = 32  # tokens: a shorter common prefix is not worth a row of its own mask
SHARE_MIN = 0.5  # and it must be at least this share of the longest example sharing it


@dataclass
class PackedRow:
    """One row of a packed micro-batch: input_ids and labels (same length), position_ids, the tail spans
    [start, end) of its examples, the shared prefix length (0: a plain example), decision positions."""
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    segments: list[tuple[int, int]]
    prefix: int
    decisions: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)


def _lcp(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _first_label(e: dict) -> int:
    """Index of the first trained token (len when none)."""
    return next((i for i, t in enumerate(e["labels"]) if t != -100), len(e["labels"]))


def shareable_prefix(encoded: list[dict], members: list[int]) -> int:
    """Tokens the members can share: their common prefix, ending before any member's first trained token (so a
    tail's first token is never a label, whose prediction would read another example's last token)."""
    first = encoded[members[0]]["input_ids"]
    p = min(_lcp(first, encoded[m]["input_ids"]) for m in members)
    return max(0, min(p, min(_first_label(encoded[m]) for m in members) - 1))


def prefix_groups(encoded: list[dict]) -> list[list[int]]:
    """Example indices grouped by a shareable prefix of at least MIN_PREFIX tokens (lexicographic order of
    their tokens puts such examples next to each other); singletons for the rest."""
    return _runs(encoded, sorted(range(len(encoded)), key=lambda i: encoded[i]["input_ids"]))


def make_units(encoded: list[dict], batch_size: int, seed: int) -> list[list[int]]:
    """Micro-batches of example indices (each at most batch_size) that keep examples with a shared prefix
    together: each prefix group is shuffled by the seed and cut into batch_size chunks; the remainders of
    several groups fill up shared micro-batches (one packed row per group in them)."""
    rng = random.Random(seed)
    units: list[list[int]] = []
    rest: list[int] = []
    for g in prefix_groups(encoded):
        rng.shuffle(g)
        full = len(g) - len(g) % batch_size
        units += [g[i:i + batch_size] for i in range(0, full, batch_size)]
        rest += g[full:]
    units += [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    return units


def pack_unit(encoded: list[dict], unit: list[int]) -> list[PackedRow]:
    """The packed rows of one micro-batch: consecutive members (in token order) sharing a prefix of at least
    MIN_PREFIX tokens form one row; others stay plain rows."""
    rows: list[PackedRow] = []
    for group in _runs(encoded, sorted(unit, key=lambda i: encoded[i]["input_ids"])):
        p = shareable_prefix(encoded, group) if len(group) > 1 else 0
        if p < MIN_PREFIX:
            rows += [_plain(encoded, m) for m in group]
            continue
        head = encoded[group[0]]
        row = PackedRow(list(head["input_ids"][:p]), [-100] * p, list(range(p)), [], p, [], list(group))
        for m in group:
            e = encoded[m]
            start = len(row.input_ids)
            tail = e["input_ids"][p:]
            row.input_ids += tail
            row.labels += e["labels"][p:]
            row.position_ids += range(p, p + len(tail))
            row.segments.append((start, len(row.input_ids)))
            row.decisions += [d - p + start for d in e.get("decisions") or [] if d >= p]
        rows.append(row)
    return rows


def _runs(encoded: list[dict], ordered: list[int]) -> list[list[int]]:
    """Consecutive indices of `ordered` (sorted by tokens) cut where sharing stops paying: an example joins the
    run when the prefix it shares with it is at least MIN_PREFIX tokens and at least SHARE_MIN of the run's
    longest example (two tool lists that only begin with the same tool share a few dozen tokens; packing them
    would make long rows for little saving)."""
    runs: list[list[int]] = []
    longest = 0
    for i in ordered:
        n = len(encoded[i]["input_ids"])
        if runs:
            p = shareable_prefix(encoded, [runs[-1][0], i])
            if p >= MIN_PREFIX and p >= SHARE_MIN * max(longest, n):
                runs[-1].append(i)
                longest = max(longest, n)
                continue
        runs.append([i])
        longest = n
    return runs


def _plain(encoded: list[dict], m: int) -> PackedRow:
    e = encoded[m]
    n = len(e["input_ids"])
    return PackedRow(list(e["input_ids"]), list(e["labels"]), list(range(n)), [(0, n)], 0,
                     list(e.get("decisions") or []), [m])


def collate_rows(rows: list[PackedRow], pad_id: int, device, decision_weight: float = 1.0):
    """(input_ids, 4-D boolean attention mask (batch, 1, T, T) with True = may attend, labels, position_ids,
    decision weights or None) for packed rows, right-padded to the longest. A padding position attends to
    itself only (a row of all False would give NaN in the softmax); nothing reads its output."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    b = len(rows)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    labels = torch.full((b, width), -100, dtype=torch.long)
    pos = torch.zeros((b, width), dtype=torch.long)
    mask = torch.zeros((b, 1, width, width), dtype=torch.bool)
    mask[:, 0] = torch.eye(width, dtype=torch.bool)
    weights = torch.ones((b, width), dtype=torch.float32) if decision_weight != 1.0 else None
    for k, r in enumerate(rows):
        n = len(r.input_ids)
        ids[k, :n] = torch.tensor(r.input_ids)
        labels[k, :n] = torch.tensor(r.labels)
        pos[k, :n] = torch.tensor(r.position_ids)
        p = r.prefix
        if p:
            mask[k, 0, :p, :p] = torch.ones((p, p), dtype=torch.bool).tril()
        for s, e in r.segments:
            mask[k, 0, s:e, :p] = True
            mask[k, 0, s:e, s:e] = torch.ones((e - s, e - s), dtype=torch.bool).tril()
        if weights is not None:
            for d in r.decisions:
                weights[k, d] = decision_weight
    return (ids.to(device), mask.to(device), labels.to(device), pos.to(device),
            None if weights is None else weights.to(device))
