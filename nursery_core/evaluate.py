"""`nursery_evaluate`: scores a model (or a predictions file) on a dataset with the BFCL-style checker, stores the
result per (model, dataset) with its settings and per-example details, and ranks models on a leaderboard."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from . import paths
from .errors import InvalidInput, NotFound
from .evaluation.bfcl import bfcl_examples, read_bfcl  # noqa: F401  (public re-exports)
from .evaluation.checker import check_calls, possible_answer_from_gold, standardize_string  # noqa: F401
from .evaluation.metrics import score_example, summarise
from .evaluation.parser import ParseResult, parse_tool_calls  # noqa: F401
from .store import get_store, new_id

# The headline numbers, in the order tables and the CLI show them.
HEADLINE = ["ast_accuracy", "format_validity", "call_precision", "call_recall", "no_call_precision",
            "no_call_recall", "name_accuracy", "arg_exact_match", "arg_f1", "schema_validity",
            "hallucinated_tool_rate", "hallucinated_param_rate"]


def load_eval_examples(dataset: str, split: str = "eval", limit: int | None = None) -> list[dict]:
    from .datasets import load_examples

    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"limit must be a positive whole number, not {limit!r}", field="limit")
    examples = load_examples(dataset, split, limit=limit)
    if not examples:
        raise InvalidInput(f"dataset {dataset!r} has no {split!r} examples" +
                           (" (try --split all)" if split != "all" else ""), field="split")
    return examples


def _predictions_source(source: Any) -> tuple[str, str]:
    """(name, text) of a predictions file path or an uploaded file object."""
    if hasattr(source, "read"):
        data = source.getvalue() if hasattr(source, "getvalue") else source.read()
        name = Path(getattr(source, "name", "upload") or "upload").name
        try:
            return name, data.decode("utf-8") if isinstance(data, bytes) else str(data)
        except UnicodeDecodeError:
            raise InvalidInput("the predictions file is not UTF-8 text", file=name) from None
    p = Path(source)
    if not p.is_file():
        raise InvalidInput("predictions file not found", file=str(source))
    return str(p), p.read_text(encoding="utf-8")


def read_predictions(source: Any) -> dict[str, str]:
    """`{"id", "output"}` per line (a path or an uploaded file) → id → output; errors name file, line, field."""
    p, text = _predictions_source(source)
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise InvalidInput(f"not valid JSON: {e}", file=p, line=n) from None
        if not isinstance(obj, dict) or "id" not in obj:
            raise InvalidInput("each line must be an object with 'id' and 'output'", file=p, line=n, field="id")
        output = obj.get("output")
        if not isinstance(output, str):
            raise InvalidInput("'output' must be the model's raw text (a string)", file=p, line=n,
                               field="output")
        key = str(obj["id"])
        if key in out:
            raise InvalidInput(f"id {key!r} appears twice", file=p, line=n, field="id")
        out[key] = output
    if not out:
        raise InvalidInput("the predictions file is empty", file=p)
    return out


def score_outputs(examples: list[dict], outputs: list[str]) -> tuple[list[dict], dict]:
    """Per-example details and the summary metrics."""
    details = [score_example(ex, out) for ex, out in zip(examples, outputs)]
    return details, summarise(details)


def _write_details(eval_id: str, details: list[dict]) -> Path:
    target = paths.evaluations_dir() / f"{eval_id}.jsonl"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for d in details:
            f.write(json.dumps(d, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, target)
    return target


def nursery_evaluate(model_name: str | None = None, dataset: str = "", split: str = "eval",
                     limit: int | None = None, predictions: str | Path | None = None, *,
                     max_new_tokens: int | None = None, temperature: float | None = None,
                     top_p: float | None = None, seed: int | None = None, batch_size: int | None = None,
                     store_result: bool = True, created_by: str | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Runs `model_name` on the dataset's split (batched) — or scores a predictions file without a model — and
    stores the result. Returns {id, model, dataset, split, num_examples, settings, metrics, details_path}."""
    from .inference import GenerationSettings, generate_batch

    if not dataset:
        raise InvalidInput("choose a dataset to evaluate on", field="dataset")
    if predictions is None and not model_name:
        raise InvalidInput("give a model to run, or a predictions file to score", field="model")
    examples = load_eval_examples(dataset, split, limit)
    settings: dict[str, Any] = {"split": split, "limit": limit}
    missing = 0
    if predictions is not None:
        pred_name = _predictions_source(predictions)[0]
        preds = read_predictions(predictions)
        known = {str(ex.get("id")) for ex in examples}
        all_ids = known if split == "all" and limit is None else {
            str(ex.get("id")) for ex in load_eval_examples(dataset, "all")}
        unknown = [k for k in preds if k not in all_ids]
        if unknown:
            raise InvalidInput(f"prediction id {unknown[0]!r} is not in dataset {dataset!r}", file=pred_name,
                               field="id")
        missing = sum(1 for ex in examples if str(ex.get("id")) not in preds)
        examples = [ex for ex in examples if str(ex.get("id")) in preds]
        if not examples:
            raise InvalidInput(f"no prediction matches an example of {dataset!r} ({split} split)",
                               file=pred_name, field="id")
        outputs = [preds[str(ex.get("id"))] for ex in examples]
        model_label = model_name or f"predictions:{Path(pred_name).stem}"
        settings.update(source="predictions", predictions_file=pred_name, missing_predictions=missing)
        if progress:
            progress(len(examples), len(examples))
    else:
        from .training.rendering import eval_prompts

        gen = GenerationSettings.of(None, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    seed=seed, batch_size=batch_size)
        prompts = []
        for ex in examples:
            prefix, _ = eval_prompts(ex)
            prompts.append({"messages": prefix, "tools": ex.get("tools")})
        outputs = generate_batch(model_name, prompts, gen, progress=progress)
        model_label = model_name
        settings.update(source="model", **gen.to_dict())
    details, metrics = score_outputs(examples, outputs)
    result = {"model": model_label, "dataset": dataset, "split": split, "num_examples": len(examples),
              "settings": settings, "metrics": metrics}
    if store_result:
        eval_id = new_id("e")
        details_path = _write_details(eval_id, details)
        row = get_store().add_evaluation({
            "id": eval_id, "model": model_label, "dataset": dataset, "split": split, "created_by": created_by,
            "num_examples": len(examples), "settings": settings, "metrics": metrics,
            "details_path": str(details_path), "ast_accuracy": metrics["ast_accuracy"]})
        result.update(id=row["id"], created_at=row["created_at"], details_path=str(details_path))
    else:
        result.update(id=None, details=details)
    return result


def evaluation_details(eval_id: str) -> list[dict]:
    """The per-example rows of a stored evaluation (for drill-down)."""
    row = get_store().get_evaluation(eval_id)
    p = Path(row.get("details_path") or "")
    if not p.is_file():
        raise NotFound(f"the details of evaluation {eval_id} are missing ({p})")
    with open(p, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def list_evaluations(model: str | None = None, dataset: str | None = None, limit: int | None = 100) -> list[dict]:
    return get_store().list_evaluations(model=model, dataset=dataset, limit=limit)


def nursery_leaderboard(dataset: str | None = None) -> list[dict]:
    """The newest evaluation per (model, dataset), best BFCL-style AST accuracy first."""
    latest: dict[tuple[str, str], dict] = {}
    for ev in get_store().list_evaluations(dataset=dataset):  # newest first
        latest.setdefault((ev["model"], ev["dataset"]), ev)
    rows = []
    for ev in latest.values():
        m = ev.get("metrics") or {}
        rows.append({"model": ev["model"], "dataset": ev["dataset"], "split": ev["split"],
                     "num_examples": ev["num_examples"], **{k: m.get(k) for k in HEADLINE},
                     "per_category": {c: v.get("ast_accuracy") for c, v in (m.get("per_category") or {}).items()},
                     "settings": ev.get("settings"), "evaluation_id": ev["id"], "created_at": ev["created_at"]})
    rows.sort(key=lambda r: (r["dataset"], -(r["ast_accuracy"] or 0.0), r["model"]))
    for i, r in enumerate(rows):
        r["rank"] = 1 + sum(1 for o in rows[:i] if o["dataset"] == r["dataset"])
    return rows


def import_bfcl(test_file: str | Path, answers_file: str | Path | None, name: str | None = None,
                description: str | None = None) -> dict:
    """A BFCL test file (+ possible answers) stored as an evaluation dataset (all examples in 'eval')."""
    from .datasets import nursery_import_dataset

    return nursery_import_dataset(test_file, name, format="bfcl", answers=answers_file, description=description)
