"""What the model sees: one example rendered by the trainer's own chat template and labelled by the trainer's
own label builder (`rendering.encode_example`), as segments of text marked trained or not.

Used by the Data Garden (any dataset example, for a chosen base model and max length) and the Training Forge
(a job's own data with the job's config). Nothing here re-implements rendering or masking."""
from __future__ import annotations

import threading
from functools import lru_cache

from .. import paths
from ..errors import InvalidInput, NotFound
from .config import TrainConfig

_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _tokenizer(base_model: str, base_model_dir: str):
    from .trainer import load_tokenizer

    cfg = TrainConfig(base_model=base_model, base_model_dir=base_model_dir or "")
    return load_tokenizer(cfg)[0]


def tokenizer_for(config: TrainConfig):
    """The trainer's tokenizer for this config (cached per base; loading one takes about a second)."""
    with _LOCK:  # the cache is shared by Streamlit's threads; HF tokenizers are not re-entrant while loading
        return _tokenizer(config.base_model, config.base_model_dir or "")


def render_example(example: dict, config: TrainConfig | None = None) -> dict:
    """The example as training sees it. Returns {text: the exact chat-template text (tools in the system turn,
    <tool_call> blocks in the answers), segments: [{text, trained}] covering the tokens kept (consecutive
    tokens of one kind merged), num_tokens, trained_tokens, truncated (bool: max_length cut the text),
    max_length, base_model}. Raises InvalidInput for an example the template cannot render."""
    from .rendering import encode_example

    cfg = config or TrainConfig()
    tok = tokenizer_for(cfg)
    try:
        enc = encode_example(tok, example, cfg.max_length, with_text=True)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"example {example.get('id', '?')!r} cannot be rendered: {e}") from None
    text, offsets, labels = enc["text"], enc["offsets"], enc["labels"]
    segments: list[dict] = []
    pos = 0
    for (start, end), label in zip(offsets, labels):
        trained = label != -100
        if start > pos:  # text between tokens (a space the tokenizer folds into the next token's offset)
            _add(segments, text[pos:start], trained)
        if end > start:
            _add(segments, text[start:end], trained)
        pos = max(pos, end)
    covered = pos
    return {"text": text, "segments": segments, "num_tokens": len(labels),
            "trained_tokens": sum(1 for x in labels if x != -100), "truncated": covered < len(text.rstrip()),
            "cut_text": text[covered:], "max_length": cfg.max_length, "base_model": cfg.base_model}


def _add(segments: list[dict], piece: str, trained: bool) -> None:
    if segments and segments[-1]["trained"] == trained:
        segments[-1]["text"] += piece
    else:
        segments.append({"text": piece, "trained": trained})


def job_examples(job_id: str, split: str = "train", limit: int = 50) -> tuple[list[dict], TrainConfig]:
    """A job's own data (what it trained on: data/train.jsonl after its recipe, or data/eval.jsonl) and its
    config. NotFound when the job directory is gone."""
    import json

    from ..store import get_store

    get_store().get_job(job_id)
    jd = paths.job_dir(job_id)
    cfg_file = jd / "config.json"
    if not cfg_file.exists():
        raise NotFound(f"job {job_id}'s files are gone, so its data cannot be shown")
    cfg = TrainConfig.load(cfg_file)
    data = jd / "data" / ("train.jsonl" if split == "train" else "eval.jsonl")
    rows = []
    if data.exists():
        with open(data, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rows.append(json.loads(line))
                if len(rows) >= limit:
                    break
    return rows, cfg
