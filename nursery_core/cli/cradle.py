"""Model Cradle commands: test-model, compare-models, evaluate, leaderboard (torch loads inside the handlers)."""
from __future__ import annotations

import argparse
import json

from ..errors import InvalidInput
from ..evaluation.formats import OUTPUT_FORMATS
from . import Command, positive_int


def _gen(args) -> dict:
    return {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
            "seed": args.seed, "batch_size": getattr(args, "batch_size", None)}


def _guarded(args) -> bool:
    return args.decoding != "free"


def _with_decoding(cmd: Command, default: str) -> Command:
    """--guarded / --free (exclusive); `default` says what neither means for this command."""
    group = cmd.parser.add_mutually_exclusive_group()
    only = "only " if default == "both" else ""
    group.add_argument("--guarded", dest="decoding", action="store_const", const="guarded", default=None,
                       help=f"{only}guarded decoding: tool calls constrained to the offered tools' schemas"
                       + {"guarded": " (default)", "both": " (default: free and guarded)"}.get(default, ""))
    group.add_argument("--free", dest="decoding", action="store_const", const="free",
                       help=f"{only}free (unconstrained) decoding" + (" (default)" if default == "free" else ""))
    return cmd


def _decoding_line(r: dict) -> str:
    """'decoding: guarded · served by llama.cpp' and the notes of both (test-model and compare results)."""
    from ..formatting import served_by

    served, engine_notes = served_by(r)
    notes = (r.get("decoding_notes") or []) + engine_notes
    return (f"decoding: {r.get('decoding')}" + (f" · served by {served}" if served else "")
            + "".join(f"\n  note: {n}" for n in notes))


def _with_generation(cmd: Command) -> Command:
    return (cmd.arg("--max-new-tokens", type=int, default=None, metavar="N", help="default 256")
            .arg("--temperature", type=float, default=None, metavar="X", help="0 = greedy (default)")
            .arg("--top-p", type=float, default=None, metavar="P")
            .arg("--seed", type=int, default=None, metavar="S"))


def _test(args) -> dict:
    from ..interactive import nursery_test_model

    tools = None
    if args.tools_file:
        from pathlib import Path
        p = Path(args.tools_file)
        if not p.is_file():
            raise InvalidInput("tools file not found", file=args.tools_file)
        tools = p.read_text(encoding="utf-8")
    return nursery_test_model(args.model, args.prompt, tools=tools, tools_from=args.tools_from,
                              system=args.system, guarded=_guarded(args),
                              **{k: v for k, v in _gen(args).items() if k != "batch_size"})


def _human_test(r: dict) -> str:
    lines = [f"model {r['model']} (tools: {', '.join(r['tools']) or '-'}; from {r['tools_source']})",
             _decoding_line(r), "completion:", r["completion"] or "(empty)", ""]
    if not r["calls"]:
        lines.append("no tool call" + ("" if r["format_ok"] else " (malformed: " + "; ".join(r["parse_errors"]) + ")"))
    for c in r["calls"]:
        mark = "valid" if c["schema_valid"] else "INVALID: " + "; ".join(c["schema_errors"])
        lines.append(f"call {c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})  [{mark}]")
    return "\n".join(lines)


def _compare(args) -> dict:
    from ..compare import nursery_compare_models

    if args.prompt and args.dataset:
        raise InvalidInput("use either --prompt or --dataset, not both", field="prompt")
    return nursery_compare_models(args.model_a, args.model_b, prompts=args.prompt, dataset=args.dataset,
                                  split=args.split, limit=args.limit, tools_from=args.tools_from,
                                  guarded=_guarded(args), **_gen(args))


def _human_compare(r: dict) -> str:
    a, b = r["model_a"], r["model_b"]
    if r["mode"] == "batch":
        lines = [f"{r['num_examples']} examples of {r['dataset']} ({r['split']}): "
                 f"A={a} {_pct(r['a_ast_accuracy'])}, B={b} {_pct(r['b_ast_accuracy'])}", _decoding_line(r)]
        lines += [f"  {k}: {v}" for k, v in r["summary"].items()]
        for row in r["rows"]:
            if row["outcome"] != "both right":
                lines.append(f"- {row['id']} [{row['outcome']}] {row['prompt'][:80]}")
        return "\n".join(lines)
    lines = [_decoding_line(r)]
    for row in r["rows"]:
        lines += [f"prompt: {row['prompt']}", f"  A ({a}): {row['a']['completion'][:300]}",
                  f"  B ({b}): {row['b']['completion'][:300]}"]
        for d in row["diff"]:
            lines.append(f"  {d['tool']}: {d['status']}" + "".join(
                f"; {x['argument']} {x['status']}" for x in d["arguments"] if x["status"] != "same"))
        if not row["diff"]:
            lines.append("  neither calls a tool")
    return "\n".join(lines)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _evaluate(args) -> dict:
    from ..evaluation.api import nursery_evaluate, nursery_evaluate_suite

    if not args.model and not args.predictions:
        raise InvalidInput("give a MODEL to run, or --predictions FILE to score", field="model")
    if args.golden and args.no_golden:
        raise InvalidInput("use either --golden NAME or --no-golden, not both", field="golden")
    if args.output_format and not args.predictions:
        raise InvalidInput("--output-format reads a predictions file: a model's own outputs are parsed strictly "
                           "as Hermes", field="output_format")
    if args.predictions:
        if not args.dataset:
            raise InvalidInput("--predictions needs --dataset (the dataset the predictions answer)", field="dataset")
        if args.golden or args.with_base:
            raise InvalidInput("--golden and --with-base run a model; a predictions file answers one dataset",
                               field="predictions")
        r = nursery_evaluate(args.model, args.dataset, split=args.split, limit=args.limit,
                             predictions=args.predictions, created_by=args.created_by,
                             output_format=args.output_format or "auto", **_gen(args))
        return {**r, "runs": [{**r, "is_base": False}]}
    return nursery_evaluate_suite(args.model, args.dataset, split=args.split, limit=args.limit,
                                  golden=[] if args.no_golden else args.golden, with_base=args.with_base,
                                  created_by=args.created_by, decoding=args.decoding or "both", **_gen(args))


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _human_eval(r: dict) -> str:
    from ..evaluation.api import HEADLINE
    from ..formatting import score

    lines = []
    runs = r.get("runs") or [r]
    if len(runs) > 1:
        lines.append("AST accuracy [Wilson 95% interval]:")
        for run in runs:
            m = run["metrics"]
            kind = "golden" if run.get("dataset_kind") == "golden" else "held-out"
            who = f"base {run['model']}" if run.get("is_base") else run["model"]
            lines.append(f"  {kind:<8} {run['dataset']:<20} {who:<24} {run.get('decoding') or '':<8} "
                         f"{score(m.get('ast_accuracy'), (m.get('ci95') or {}).get('ast_accuracy'), run['num_examples'], m.get('warning'))}")
        lines.append("")
    # The headline run (guarded when it ran) beside its free twin on the same data.
    same = [x for x in runs if (x["model"], x["dataset"], bool(x.get("is_base"))) ==
            (r["model"], r["dataset"], bool(r.get("is_base")))] or [r]
    ids = ", ".join(x["id"] for x in same if x.get("id"))
    lines.append(f"{r['model']} on {r['dataset']} ({r['split']}, {r['num_examples']} examples)"
                 + (f"  [evaluation {ids}]" if ids else ""))
    missing = (r.get("settings") or {}).get("missing_predictions")
    if missing:
        lines.append(f"  warning: {missing} example(s) of the {r['split']} split have no prediction in the file "
                     f"and are not scored; the scores cover the {r['num_examples']} that have one")
    if len(same) > 1:
        lines.append(f"  {'':<24} " + "".join(f"{x.get('decoding') or '':<24}" for x in same))
    for k in HEADLINE:
        cells = []
        for x in same:
            ci = (x["metrics"].get("ci95") or {}).get(k)
            cells.append(_num(x["metrics"].get(k)) + (f"  [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        lines.append(f"  {k:<24} " + "".join(f"{c:<24}" for c in cells).rstrip())
    for x in same:
        tag = f"{x['decoding']} " if len(same) > 1 else ""
        m = x["metrics"]
        if m.get("warning"):
            lines.append(f"  {tag}warning: {m['warning']}")
        for cat, cm in (m.get("per_category") or {}).items():
            lines.append(f"  {tag}[{cat}] n={cm['num_examples']} ast={_pct(cm['ast_accuracy'])} "
                         f"format={_pct(cm['format_validity'])} arg_f1={cm['arg_f1']}")
        if m.get("hallucinated_tool_names"):
            lines.append(f"  {tag}hallucinated tools: "
                         + ", ".join(f"{k} ({v})" for k, v in m["hallucinated_tool_names"].items()))
        for note in (x.get("settings") or {}).get("decoding_notes") or []:
            lines.append(f"  {tag}note: {note}")
    return "\n".join(lines)


def _leaderboard(args) -> list[dict]:
    from ..evaluation.api import nursery_leaderboard
    return nursery_leaderboard(args.dataset, args.decoding)


def _human_board(rows: list[dict]) -> str:
    from ..formatting import score

    if not rows:
        return "no evaluations yet: try `python -m nursery_core evaluate MODEL --dataset NAME`"
    w = max(len(r["model"]) for r in rows)
    return "\n".join(f"{r['dataset']:<20} {'golden' if r.get('dataset_kind') == 'golden' else 'held-out':<8} "
                     f"{r['decoding'] or 'file':<8} #{r['rank']:<3} {r['model']:<{w}}  "
                     f"ast {score(r['ast_accuracy'], r.get('ast_ci95'), None)}  "
                     f"format {_pct(r['format_validity']):>6}  arg_f1 {r['arg_f1']}  n={r['num_examples']}"
                     + ("  ⚠ small sample" if r.get("warning") else "")
                     for r in rows)


def register(sub) -> None:
    _with_decoding(_with_generation(
        Command(sub, "test-model", "Run one prompt through a model with its tools: raw completion, parsed calls, "
                "JSON and schema validity.", _test, _human_test)
        .arg("model", metavar="MODEL", help="a trained model or a base model alias/directory")
        .arg("--prompt", required=True, metavar="TEXT")
        .arg("--tools-from", metavar="DATASET", help="use this dataset's tools (default: the model's own)")
        .arg("--tools-file", metavar="FILE", help="a JSON file with tool schemas")
        .arg("--system", metavar="TEXT", help="a system message")), "guarded")
    _with_decoding(_with_generation(
        Command(sub, "compare-models", "Two models side by side: on prompts (calls diffed) or on a dataset's "
                "eval split (each example labelled both right / A right / B right / both wrong).",
                _compare, _human_compare)
        .arg("model_a", metavar="A").arg("model_b", metavar="B")
        .arg("--prompt", action="append", metavar="TEXT", help="a prompt (repeat for several)")
        .arg("--dataset", metavar="NAME")
        .arg("--split", choices=["eval", "train", "all"], default="eval")
        .arg("--limit", type=positive_int, default=None, metavar="N")
        .arg("--tools-from", metavar="DATASET", help="tools for --prompt (default: model A's)")
        .arg("--batch-size", type=positive_int, default=None, metavar="N")), "guarded")
    _with_decoding(_with_generation(
        Command(sub, "evaluate", "Score a model (or a predictions file) with the BFCL-style AST checker and store "
                "the result: by default a model's held-out split and every golden set whose tools it was trained "
                "on, each accuracy with a Wilson 95% interval, with free and with guarded decoding (one "
                "evaluation each; --free or --guarded for one).", _evaluate, _human_eval)
        .arg("model", nargs="?", metavar="MODEL", help="a trained model or base model (optional with --predictions: "
             "then it only names the result)")
        .arg("--dataset", metavar="NAME", help="the held-out dataset (default: the model's training dataset)")
        .arg("--golden", action="append", metavar="NAME", help="score on this golden set (repeat; default: every "
             "golden set whose tools the model was trained on)")
        .arg("--no-golden", action="store_true", help="score the held-out split only")
        .arg("--with-base", action="store_true", help="also score the bare base model on the same data")
        .arg("--split", choices=["eval", "train", "all"], default="eval")
        .arg("--limit", type=positive_int, default=None, metavar="N")
        .arg("--predictions", metavar="FILE", help='score {"id", "output"} lines instead of running a model')
        .arg("--output-format", choices=list(OUTPUT_FORMATS), default=None,
             help="with --predictions: how the outputs write calls (default auto: Hermes <tool_call>, JSON or a "
                  "```json block, Llama 3 pythonic [f(a=1)], Mistral [TOOL_CALLS]; nursery: the strict parser)")
        .arg("--batch-size", type=positive_int, default=None, metavar="N")
        .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS)), "both")
    (Command(sub, "leaderboard", "Models ranked by BFCL-style AST accuracy (newest evaluation per model, dataset "
             "and decoding; ranked within each decoding).", _leaderboard, _human_board)
     .arg("--dataset", metavar="NAME")
     .arg("--decoding", choices=["free", "guarded"], default=None, help="only this decoding's evaluations"))
