"""`nursery_evaluate`: scores a model (or a predictions file) on a dataset with the BFCL-style checker, stores the
result per (model, dataset) with its settings and per-example details, and ranks models on a leaderboard.
`nursery_evaluate_suite` scores a model on its held-out split and on its golden sets (and, on request, its bare
base model on the same), and `nursery_scorecard` puts those scores side by side for the views.

A model is scored with free and with guarded decoding by default: one stored evaluation per decoding, told apart
by `settings.decoding` ("free" | "guarded"), so each keeps plain metrics and drill-down details, and the
leaderboard shows a line per (model, dataset, decoding), ranked within its decoding."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import IO, Any, Callable

from .. import paths
from ..errors import InvalidInput, NotFound
from ..jsontext import decode_bytes, lines as text_lines, loads_strict, read_text
from .bfcl import bfcl_examples, read_bfcl  # noqa: F401  (public re-exports)
from .checker import check_calls, possible_answer_from_gold, standardize_string  # noqa: F401
from .metrics import score_example, small_sample_warning, summarise, wilson_interval
from .formats import OUTPUT_FORMATS
from .parser import ParseResult, parse_tool_calls  # noqa: F401
from ..store import get_store, new_id

# The headline numbers, in the order tables and the CLI show them.
HEADLINE = ["ast_accuracy", "format_validity", "call_precision", "call_recall", "no_call_precision",
            "no_call_recall", "name_accuracy", "arg_exact_match", "arg_f1", "schema_validity",
            "hallucinated_tool_rate", "hallucinated_param_rate"]
DECODINGS = ("both", "guarded", "free")


def load_eval_examples(dataset: str, split: str = "eval", limit: int | None = None) -> list[dict]:
    from ..datasets import load_examples

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
        return name, decode_bytes(data, name) if isinstance(data, bytes) else str(data).lstrip("\ufeff")
    p = Path(source)
    if not p.is_file():
        raise InvalidInput("predictions file not found", file=str(source))
    return str(p), read_text(p)


def read_predictions(source: Any) -> dict[str, str]:
    """`{"id", "output"}` per line (a path or an uploaded file) → id → output; errors name file, line, field."""
    p, text = _predictions_source(source)
    out: dict[str, str] = {}
    for n, line in text_lines(text):
        obj = loads_strict(line, file=p, line=n)
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


def score_outputs(examples: list[dict], outputs: list[str], output_format: str = "nursery") -> tuple[list[dict], dict]:
    """Per-example details and the summary metrics (`output_format`: see evaluation/formats.py)."""
    details = [score_example(ex, out, output_format) for ex, out in zip(examples, outputs)]
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
                     limit: int | None = None, predictions: str | Path | IO | None = None, *,
                     max_new_tokens: int | None = None, temperature: float | None = None,
                     top_p: float | None = None, seed: int | None = None, batch_size: int | None = None,
                     decoding: str = "both", guarded: bool | None = None, store_result: bool = True,
                     output_format: str = "auto",
                     created_by: str | None = None, progress: Callable[[int, int], object] | None = None) -> dict:
    """Runs `model_name` on the dataset's split (batched) — or scores a predictions file without a model, its
    outputs read in `output_format` (evaluation/formats.py; "auto" detects each output's form) — and
    stores the result. Returns {id, model, dataset, split, num_examples, settings, metrics, details_path,
    decoding}. `decoding` "both" (the default) runs the model free, then guarded, and stores both: the result is
    the guarded run's, with `runs` = [free result, guarded result]; `guarded` True/False is short for decoding
    "guarded"/"free". Predictions files have decoding None."""
    if guarded is not None:
        decoding = "guarded" if guarded else "free"
    if decoding not in DECODINGS:
        raise InvalidInput(f"decoding must be one of {', '.join(DECODINGS)}, not {decoding!r}", field="decoding")
    if not dataset:
        raise InvalidInput("choose a dataset to evaluate on", field="dataset")
    if predictions is None and not model_name:
        raise InvalidInput("give a model to run, or a predictions file to score", field="model")
    examples = load_eval_examples(dataset, split, limit)
    settings: dict[str, Any] = {"split": split, "limit": limit,
                                "dataset_kind": get_store().get_dataset(dataset).get("kind") or "training"}
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
        if output_format not in OUTPUT_FORMATS:
            raise InvalidInput(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}",
                               field="output_format")
        settings.update(source="predictions", predictions_file=pred_name, missing_predictions=missing,
                        output_format=output_format)
        if progress:
            progress(len(examples), len(examples))
        label = model_name or f"predictions:{Path(pred_name).stem}"
        return _record(label, dataset, split, examples, outputs, settings, store_result, created_by)

    from ..jobs.inflight import exclusive_run, run_key

    with exclusive_run("evaluate", run_key("evaluate", model_name, dataset, split),
                       f"the evaluation of {model_name} on {dataset}", created_by):
        return _evaluate_model(model_name, dataset, split, examples, settings, decoding, max_new_tokens,
                               temperature, top_p, seed, batch_size, store_result, created_by, progress)


def _evaluate_model(model_name, dataset, split, examples, settings, decoding, max_new_tokens, temperature, top_p,
                    seed, batch_size, store_result, created_by, progress) -> dict:
    from ..inference import TEXT_ANSWER_TOKENS, GenerationSettings, generate_batch, text_cut_note
    from ..training.rendering import eval_prompts

    prompts = []
    for ex in examples:
        prefix, _ = eval_prompts(ex)
        prompts.append({"messages": prefix, "tools": ex.get("tools")})
    modes = ["free", "guarded"] if decoding == "both" else [decoding]
    runs = []
    for k, mode in enumerate(modes):
        gen = GenerationSettings.of(None, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    seed=seed, batch_size=batch_size, guarded=mode == "guarded",
                                    text_tokens=TEXT_ANSWER_TOKENS if mode == "guarded" else None)
        cb = (lambda done, total, k=k: progress(k * total + done, total * len(modes))) if progress else None
        out = generate_batch(model_name, prompts, gen, progress=cb)
        ran = {"decoding": mode, "decoding_ran": out.decoding["decoding"]}
        notes = list(out.decoding["notes"])
        if gen.text_tokens:  # the details show such answers cut: say why
            notes.append(text_cut_note(gen.text_tokens))
        if notes:
            ran["decoding_notes"] = notes
        runs.append(_record(model_name, dataset, split, examples, list(out),
                            {**settings, "source": "model", **gen.to_dict(), **ran}, store_result, created_by))
    if len(runs) == 1:
        return runs[0]
    return {**runs[-1], "runs": runs}


def decoding_of(settings: dict | None) -> str | None:
    """An evaluation's decoding: "free" | "guarded" (older model runs were free); None for predictions files.
    A guarded run that partly fell back to free says so: "guarded (mixed)"."""
    settings = settings or {}
    if settings.get("source") != "model":
        return None
    mode = settings.get("decoding") or "free"
    ran = settings.get("decoding_ran") or mode
    return mode if ran == mode else f"{mode} ({ran})"


def _record(model_label: str, dataset: str, split: str, examples: list[dict], outputs: list[str],
            settings: dict, store_result: bool, created_by: str | None) -> dict:
    """Scores outputs and stores them as one evaluation (details file + row). Predictions are parsed in
    settings' output_format (a model's own outputs strictly, as Hermes); the forms auto found are counted."""
    details, metrics = score_outputs(examples, outputs, settings.get("output_format") or "nursery")
    if settings.get("output_format") == "auto":
        found: dict[str, int] = {}
        for d in details:
            key = d.get("output_format") or "plain answer"
            found[key] = found.get(key, 0) + 1
        settings = {**settings, "output_formats_found": found}
    result = {"model": model_label, "dataset": dataset, "split": split, "num_examples": len(examples),
              "settings": settings, "decoding": decoding_of(settings), "metrics": metrics}
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


def ast_score(ev: dict) -> dict:
    """A stored evaluation's headline for tables: {dataset, dataset_kind, split, num_examples, ast_accuracy,
    ci95 [low, high] (Wilson 95 %), warning (None from 30 examples), decoding, evaluation_id, created_at}."""
    m = ev.get("metrics") or {}
    n = ev.get("num_examples") or m.get("num_examples") or 0
    acc = m.get("ast_accuracy", ev.get("ast_accuracy"))
    ci = (m.get("ci95") or {}).get("ast_accuracy")
    if ci is None and acc is not None and n:  # stored before intervals were: the count is recoverable
        interval = wilson_interval(round(acc * n), n)
        ci = list(interval) if interval else None
    return {"dataset": ev.get("dataset"), "dataset_kind": (ev.get("settings") or {}).get("dataset_kind") or "training",
            "split": ev.get("split"), "num_examples": n, "ast_accuracy": acc, "ci95": ci,
            "warning": small_sample_warning(n), "decoding": decoding_of(ev.get("settings")),
            "evaluation_id": ev.get("id"), "created_at": ev.get("created_at")}


def nursery_leaderboard(dataset: str | None = None, decoding: str | None = None) -> list[dict]:
    """The newest evaluation per (model, dataset, decoding), best BFCL-style AST accuracy first, ranked within
    its dataset and decoding ("free" | "guarded"; None for predictions files; `decoding` filters); each row also
    carries dataset_kind ('training' | 'golden'), ast_ci95 (Wilson 95 % [low, high]), ci95 (every proportion's,
    when the evaluation stored them) and warning (under 30 examples)."""
    latest: dict[tuple[str, str, str | None], dict] = {}
    for ev in get_store().list_evaluations(dataset=dataset):  # newest first
        mode = decoding_of(ev.get("settings"))
        if decoding is None or (mode or "").split(" ")[0] == decoding:
            latest.setdefault((ev["model"], ev["dataset"], mode), ev)
    rows = []
    for (_, _, mode), ev in latest.items():
        m = ev.get("metrics") or {}
        score = ast_score(ev)
        rows.append({"model": ev["model"], "dataset": ev["dataset"], "dataset_kind": score["dataset_kind"],
                     "decoding": mode, "split": ev["split"], "num_examples": ev["num_examples"],
                     **{k: m.get(k) for k in HEADLINE},
                     "ast_ci95": score["ci95"], "ci95": m.get("ci95"), "warning": score["warning"],
                     "per_category": {c: v.get("ast_accuracy") for c, v in (m.get("per_category") or {}).items()},
                     "settings": ev.get("settings"), "evaluation_id": ev["id"], "created_at": ev["created_at"]})
    rows.sort(key=lambda r: (r["dataset"], -(r["ast_accuracy"] or 0.0), r["model"], r["decoding"] or ""))
    for i, r in enumerate(rows):
        r["rank"] = 1 + sum(1 for o in rows[:i] if o["dataset"] == r["dataset"] and o["decoding"] == r["decoding"])
    return rows


def nursery_scorecard(models: list[str]) -> dict[str, dict]:
    """Held-out and golden-set scores side by side, per model: {model: {"held_out": ast_score | None,
    "golden": {golden set: ast_score}}}. Held-out is the newest evaluation on a training dataset, the model's
    own training dataset first."""
    store = get_store()
    by_model = store.latest_evaluations_by_dataset(models)
    trained_on = {m: (store.get_model(m).get("dataset") if store.has_model(m) else None) for m in models}
    out: dict[str, dict] = {}
    for model, evs in by_model.items():
        scores = [ast_score(ev) for ev in evs.values()]
        golden = {s["dataset"]: s for s in scores if s["dataset_kind"] == "golden"}
        held = [s for s in scores if s["dataset_kind"] != "golden"]
        held.sort(key=lambda s: (s["dataset"] == trained_on.get(model), s["created_at"] or ""), reverse=True)
        out[model] = {"held_out": held[0] if held else None, "golden": dict(sorted(golden.items()))}
    return out


def evaluation_plan(model_name: str, dataset: str | None = None, split: str = "eval",
                    golden: list[str] | None = None) -> list[dict]:
    """What nursery_evaluate_suite runs for a model: [{dataset, split, dataset_kind}], held-out first. The
    held-out dataset is `dataset`, else the model's training dataset; golden sets are `golden` when given
    ([] for none), else every golden set whose tools the model was trained on (all of them for a bare model)."""
    from ..golden import golden_set, golden_sets_for

    store = get_store()
    if dataset:
        store.get_dataset(dataset)  # NotFound before anything loads
    row = store.get_model(model_name) if model_name and store.has_model(model_name) else None
    if row is None and model_name:
        from ..base_models import resolve

        try:
            resolve(model_name)  # a base model or a local directory; nothing is loaded
        except NotFound:
            raise NotFound(f"no model named {model_name!r}: it is neither a trained adapter (see the models list) "
                           "nor a base model") from None
    row_dataset = row.get("dataset") if row else None
    held = dataset or (row_dataset if row_dataset and store.has_dataset(row_dataset) else None)
    if golden is None:
        tools = [t.get("function", {}).get("name") for t in (row or {}).get("tools") or [] if isinstance(t, dict)]
        names = golden_sets_for(tools or None)
    else:
        names = [golden_set(g)["name"] for g in golden]
    plan = []
    if held:
        plan.append({"dataset": held, "split": split, "dataset_kind": store.get_dataset(held).get("kind")})
    plan += [{"dataset": g, "split": "eval", "dataset_kind": "golden"} for g in names if g != held]
    if not plan:
        raise InvalidInput(f"nothing to evaluate {model_name!r} on: pass a dataset, or add a golden set "
                           "(golden add / golden import)", field="dataset")
    return plan


def nursery_evaluate_suite(model_name: str, dataset: str | None = None, split: str = "eval", *,
                           golden: list[str] | None = None, with_base: bool = False, limit: int | None = None,
                           created_by: str | None = None,
                           progress: Callable[[str, int, int], object] | None = None, **generation: Any) -> dict:
    """Scores a model on its held-out split and its golden sets (see evaluation_plan), and with `with_base`
    its bare base model on the same data; each run is stored like nursery_evaluate's. Returns the fields of
    the first guarded run, else the first run (the nursery_evaluate shape), plus runs: [{model, dataset,
    dataset_kind, split, is_base, decoding, num_examples, metrics (with ci95 and warning), id, ...}], a run per
    decoding. `limit` caps every run; `generation` goes to nursery_evaluate
    unchanged (so new generation settings pass through); `progress` gets (run label, done, total). Raises NotFound / InvalidInput like nursery_evaluate."""
    plan = evaluation_plan(model_name, dataset, split, golden)
    models = [(model_name, False)]
    if with_base:
        from ..inference import resolve_model

        ref = resolve_model(model_name)
        if ref.kind == "base":
            raise InvalidInput(f"{model_name!r} is a base model already: with_base scores a trained model's base",
                               field="with_base")
        models.append((ref.base_ref, True))
    from ..jobs.inflight import exclusive_run, run_key

    with exclusive_run("evaluate", run_key("evaluate", model_name), f"the evaluation of {model_name}", created_by):
        runs = _run_suite(models, plan, limit, created_by, progress, generation)
    top = next((x for x in runs if x.get("decoding") == "guarded"), runs[0])
    return {**top, "runs": runs}


def _run_suite(models, plan, limit, created_by, progress, generation) -> list[dict]:
    runs = []
    for label, is_base in models:
        for step in plan:
            tag = f"{'base ' if is_base else ''}{label} on {step['dataset']}"
            r = nursery_evaluate(label, step["dataset"], split=step["split"], limit=limit, created_by=created_by,
                                 progress=functools.partial(progress, tag) if progress else None, **generation)
            for one in r.get("runs") or [r]:  # free and guarded, by default: one run each
                runs.append({**one, "dataset_kind": step["dataset_kind"] or "training", "is_base": is_base})
    return runs


def import_bfcl(test_file: str | Path, answers_file: str | Path | None, name: str | None = None,
                description: str | None = None) -> dict:
    """A BFCL test file (+ possible answers) stored as an evaluation dataset (all examples in 'eval')."""
    from ..datasets import nursery_import_dataset

    return nursery_import_dataset(test_file, name, format="bfcl", answers=answers_file, description=description)
