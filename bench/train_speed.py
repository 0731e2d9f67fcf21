"""Training speed: the design's original template vs Nursery's trainer, same data, base, epochs and LoRA shape.

(a) baseline: every example tokenised with padding="max_length" to 256, labels = input_ids (padding and prompt
    included), q/k/v/o LoRA r=8, batch 4, 2 epochs, a plain loop with the model's own loss (full logits).
(b) Nursery: the same LoRA shape, batch, epochs and rendering, with assistant-only labels, per-batch dynamic
    padding, length-grouped batches and the LM head on label positions only.
Data: the memory_store dataset (50 generated examples, its 45 train examples). Prints wall time, real
(non-padding) tokens/s and the ratio. Run: .venv/bin/python bench/train_speed.py [--examples 45]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=45)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nursery-bench-"))
    os.environ.setdefault("NURSERY_HOME", str(home))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.base_models import materialise_embedded
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.datasets import load_examples
    from nursery_core.training import trainer
    from nursery_core.training.config import TrainConfig
    from nursery_core.training.rendering import prepare_tokenizer, render_conversation

    base = materialise_embedded()
    nursery_generate_data("memory_store", 50, seed=0, name="memory-store-bench")
    train = load_examples("memory-store-bench", split="train")[: args.examples]
    threads = trainer.cpu_count()
    torch.set_num_threads(threads)
    print(f"{len(train)} train examples, base smollm2-135m, {args.epochs} epochs, {threads} threads")

    # ---------------------------------------------------------------------------- (a) baseline
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(base)), "chatml")
    texts = [render_conversation(tok, ex) for ex in train]
    full_lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    print(f"rendered lengths (tokens): min {min(full_lengths)}, mean {sum(full_lengths) / len(texts):.0f}, max "
          f"{max(full_lengths)}; longer than 256 (the baseline truncates them, often cutting the answer away): "
          f"{sum(n > 256 for n in full_lengths)}")
    enc = tok(texts, padding="max_length", max_length=256, truncation=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    labels = ids.clone()
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    real = 0
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for b in range(0, len(train), 4):
            sel = order[b:b + 4]
            loss = model(input_ids=ids[sel], attention_mask=mask[sel], labels=labels[sel]).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            real += int(mask[sel].sum())
    base_s = time.perf_counter() - t0
    print(f"(a) baseline : {base_s:8.1f} s  {real / base_s:8.1f} real tokens/s  final loss {float(loss):.3f}"
          f"  (padded tokens processed: {len(train) * 256 * args.epochs}, real: {real})")
    del model, opt

    # ---------------------------------------------------------------------------- (b) Nursery
    job = home / "bench-job"
    (job / "data").mkdir(parents=True)
    (job / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in train))
    (job / "data" / "eval.jsonl").write_text("")
    cfg = TrainConfig(base_model="smollm2-135m", base_model_dir=str(base), r=8, alpha=16, dropout=0.05,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], learning_rate=2e-4,
                      epochs=args.epochs, batch_size=4, max_length=1024, eval_fraction=0.0, seed=0)
    m = trainer.train(cfg, job)
    ours_s = m["train_seconds"]
    print(f"(b) Nursery  : {ours_s:8.1f} s  {m['tokens_per_s']:8.1f} real tokens/s  final loss "
          f"{m['final_loss']:.3f} (assistant tokens only)  real tokens: {m['real_tokens']}")
    print(f"speed-up (wall time a/b): {base_s / ours_s:.2f}x   real tokens/s ratio: "
          f"{m['tokens_per_s'] / (real / base_s):.2f}x   (target >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
