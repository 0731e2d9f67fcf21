"""Training speed: the design's original training template vs Nursery's trainer, same examples, base, epochs,
LoRA shape, batch size and threads, in one process (issue 3, Performance).

(a) baseline, the seed's way: each example flattened to a row {user_query, tool_name, tool_arguments} (its first
    user turn and its first call; a no-call example keeps its plain answer text), rendered in the seed's legacy
    form "User: <query>\\nAssistant: <tool_call>name({json args})</tool_call><eos>" (no tool schemas),
    tokenised with padding="max_length" to 256, labels = input_ids (the loss runs on every position, padding
    included, exactly as the seed did), q/k/v/o LoRA r=8, batch 4, a plain loop with the model's own loss.
(b) Nursery's trainer on the same examples with its own rendering (tool schemas in the system turn, every
    turn of the conversation), assistant-only labels, per-batch padding, length-grouped batches and the LM head
    on label positions only; the same LoRA shape, batch and epochs.

The two sides do not train on the same text: the baseline's text is a ~60-token stub without the tools, and
Nursery's is the full conversation. So two readings of "Nursery >= 3x faster" are printed: real (non-padding)
tokens per second (the issue's metric), and plain wall time for the same examples and epochs.

Data: the memory_store dataset (50 generated examples, seed 0, its stored 45-example train split).
Run: .venv/bin/python bench/train_speed.py [--epochs 1] [--examples N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


BASELINE_LEN = 256


def legacy_row(example: dict) -> dict:
    """The seed's flat row for an example: its first user query and its first call (or plain answer)."""
    from nursery_core.records import example_calls

    query = next(m["content"] for m in example["messages"] if m["role"] == "user")
    calls = example_calls(example)
    if calls:
        return {"user_query": query, "tool_name": calls[0]["name"], "tool_arguments": calls[0]["arguments"]}
    answer = next((m.get("content") or "" for m in example["messages"] if m["role"] == "assistant"), "")
    return {"user_query": query, "tool_name": None, "tool_arguments": None, "answer": answer}


def legacy_text(row: dict, eos: str) -> str:
    if row["tool_name"] is None:
        answer = row["answer"]
    else:
        answer = f"<tool_call>{row['tool_name']}({json.dumps(row['tool_arguments'])})</tool_call>"
    return f"User: {row['user_query']}\nAssistant: {answer}{eos}"


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=45, help="train examples used (default: all 45)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs for both sides (issue: 2; 1 halves the runtime)")
    ap.add_argument("--base-cache", default=os.environ.get("NURSERY_BENCH_BASE",
                                                           str(Path.home() / ".cache" / "nursery-bench")),
                    help="where the materialised SmolLM2 is kept between runs")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nursery-bench-"))
    os.environ["NURSERY_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.base_models import EMBEDDED_ALIAS, materialise_embedded
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.datasets import load_examples
    from nursery_core.training import trainer
    from nursery_core.training.config import TrainConfig
    from nursery_core.training.rendering import prepare_tokenizer

    base = materialise_embedded(Path(args.base_cache) / EMBEDDED_ALIAS)
    nursery_generate_data("memory_store", 50, seed=0, name="memory-store-bench")
    train = load_examples("memory-store-bench", split="train")[: args.examples]
    threads = trainer.cpu_count()
    torch.set_num_threads(threads)
    print(f"{len(train)} train examples (memory_store, seed 0), base smollm2-135m fp32, {args.epochs} epoch(s), "
          f"batch 4, q/k/v/o LoRA r=8, {threads} torch threads; load average at start {load_avg()}", flush=True)

    # ---------------------------------------------------------------------------- (a) baseline
    tok = AutoTokenizer.from_pretrained(str(base))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    rows = [legacy_row(ex) for ex in train]
    texts = [legacy_text(r, tok.eos_token) for r in rows]
    enc = tok(texts, padding="max_length", max_length=BASELINE_LEN, truncation=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    labels = ids.clone()  # the seed's labels: every position, padding included
    lens = mask.sum(1)
    print(f"(a) processes: legacy rows, {int(lens.min())}-{int(lens.max())} real tokens (mean "
          f"{float(lens.float().mean()):.0f}) padded to {BASELINE_LEN}; e.g. {texts[0][:160]!r}", flush=True)

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    base_real = base_total = 0
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for b in range(0, len(train), 4):
            sel = order[b:b + 4]
            loss = model(input_ids=ids[sel], attention_mask=mask[sel], labels=labels[sel]).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            base_real += int(mask[sel].sum())
            base_total += ids[sel].numel()
    base_s = time.perf_counter() - t0
    base_load = load_avg()
    base_tps = base_real / base_s
    print(f"(a) baseline : {base_s:8.1f} s  tokens processed {base_total} (real {base_real})  "
          f"{base_tps:8.1f} real tokens/s  final loss {float(loss.detach()):.3f}  [load avg {base_load}]", flush=True)
    del model, opt

    # ---------------------------------------------------------------------------- (b) Nursery
    job = home / "bench-job"
    (job / "data").mkdir(parents=True)
    (job / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in train))
    (job / "data" / "eval.jsonl").write_text("")
    cfg = TrainConfig(base_model=EMBEDDED_ALIAS, base_model_dir=str(base), r=8, alpha=16, dropout=0.05,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], learning_rate=2e-4,
                      epochs=args.epochs, batch_size=4, grad_accum=1, eval_fraction=0.0, seed=0,
                      num_threads=threads)
    # What Nursery's loop will process: its own encoding and batch order (deterministic from the seed).
    ntok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(base)), "chatml")
    nenc, dropped = trainer.encode_all(ntok, train, cfg.max_length)
    nlens = [len(e["input_ids"]) for e in nenc]
    nlab = sum(sum(1 for t in e["labels"] if t != -100) for e in nenc)
    ours_total = sum(max(nlens[i] for i in b) * len(b) for ep in range(args.epochs)
                     for b in trainer.batch_order(nlens, cfg.batch_size, cfg.seed, ep, cfg.group_by_length))
    print(f"(b) processes: full conversations with tool schemas, {min(nlens)}-{max(nlens)} tokens (mean "
          f"{sum(nlens) / len(nlens):.0f}), none truncated (max_length {cfg.max_length}, {dropped} dropped), "
          f"{nlab} assistant (loss) tokens per epoch", flush=True)
    m = trainer.train(cfg, job)
    ours_s = m["train_seconds"]
    ours_tps = m["tokens_per_s"]
    print(f"(b) Nursery  : {ours_s:8.1f} s  tokens processed {ours_total} (real {m['real_tokens']})  "
          f"{ours_tps:8.1f} real tokens/s  final loss {m['final_loss']:.3f} (assistant tokens only)  "
          f"[load avg {load_avg()}]", flush=True)
    ratio = ours_tps / base_tps
    print(f"\nreading 1 (issue metric) real tokens/s, Nursery / baseline: {ratio:.2f}x  (target >= 3x: "
          f"{'met' if ratio >= 3 else 'NOT met'})")
    print(f"reading 2 wall time for the same examples and epochs, baseline / Nursery: {base_s / ours_s:.2f}x  "
          f"(> 1 means Nursery finished first; its text per example is {sum(nlens) / len(nlens) / float(lens.float().mean()):.1f}x "
          f"longer because it carries the tool schemas the baseline never sees)")
    print(f"all tokens processed per second (padding included): baseline {base_total / base_s:.1f}, Nursery "
          f"{ours_total / ours_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
