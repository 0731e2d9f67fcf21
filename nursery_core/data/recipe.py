"""A run's training-data recipe, applied to the training split only when a job is prepared: mix in examples
from another stored dataset (imported general tool-calling data, say) and mask the function names of a share
of the examples (masking.py). The eval split is never touched, so a run is scored on the dataset's own
held-out requests; everything is deterministic for the run's seed.
"""
from __future__ import annotations

import random
import re

from ..errors import InvalidConfig
from .masking import mask_example

_NORM = re.compile(r"[^a-z0-9]+")


def _requests(example: dict) -> set[str]:
    return {_NORM.sub(" ", (m.get("content") or "").lower()).strip()
            for m in example.get("messages") or [] if m.get("role") == "user"}


def apply_recipe(train: list[dict], evals: list[dict], seed: int = 0, function_masking: float = 0.0,
                 mix: list[dict] | None = None, mix_fraction: float = 0.0,
                 mix_name: str = "", practice: list[dict] | None = None) -> tuple[list[dict], dict]:
    """(training examples, report). round(mix_fraction × len(train)) examples drawn from `mix` (at most all
    of them; none whose user request is also an eval request) are appended, then the `practice` examples
    (data/practice_tools.py; none whose request is an eval request); then round(function_masking × n) of the n
    training examples, chosen by the seed, are masked. Report keys: mixed_from, mixed, mix_available,
    mix_dropped_eval_overlap, practice_added, practice_dropped_eval_overlap, masked, train_examples."""
    if not 0.0 <= function_masking <= 1.0:
        raise InvalidConfig(f"function_masking must be between 0 and 1, got {function_masking!r}")
    if mix_fraction < 0:
        raise InvalidConfig(f"mix_fraction must be >= 0, got {mix_fraction!r}")
    out = list(train)
    report = {"mixed_from": mix_name or None, "mixed": 0, "mix_available": 0, "mix_dropped_eval_overlap": 0,
              "practice_added": 0, "practice_dropped_eval_overlap": 0, "masked": 0}
    held = set().union(*(_requests(e) for e in evals)) if evals else set()
    if mix and mix_fraction > 0:
        pool = [e for e in mix if not (_requests(e) & held)]
        report["mix_available"] = len(pool)
        report["mix_dropped_eval_overlap"] = len(mix) - len(pool)
        want = min(len(pool), int(round(mix_fraction * len(train))))
        picked = random.Random(f"mix:{seed}").sample(pool, want) if want else []
        out += picked
        report["mixed"] = len(picked)
    if practice:
        kept = [e for e in practice if not (_requests(e) & held)]
        out += kept
        report["practice_added"] = len(kept)
        report["practice_dropped_eval_overlap"] = len(practice) - len(kept)
    if function_masking > 0 and out:
        rng = random.Random(f"mask:{seed}")
        chosen = set(rng.sample(range(len(out)), int(round(function_masking * len(out)))))
        out = [mask_example(ex, rng) if i in chosen and ex.get("tools") else ex for i, ex in enumerate(out)]
        report["masked"] = sum(1 for i in chosen if out[i].get("meta", {}).get("masked"))
    report["train_examples"] = len(out)
    return out, report
