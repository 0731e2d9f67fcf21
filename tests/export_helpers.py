"""Helpers for the export tests: LoRA adapters saved the way the trainer saves them (+ run config)."""
from __future__ import annotations

import json
from pathlib import Path

from training_helpers import examples


def tool_free(exs: list[dict]) -> list[dict]:
    """The lockers examples without tool schemas in the prompt: short sequences keep CPU training fast."""
    return [{**ex, "tools": None} for ex in exs]


def train_steps(model, tok, exs: list[dict], steps: int, lr: float) -> float:
    """A few AdamW steps on the trainable parameters, loss on the assistant tokens only; returns the last loss."""
    import torch
    import torch.nn.functional as F

    from nursery_core.training.rendering import encode_example

    encoded = [encode_example(tok, ex, 512) for ex in exs]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    causal = model.get_base_model()
    model.train()
    loss = torch.tensor(0.0)
    for step in range(steps):
        enc = encoded[step % len(encoded)]
        labels = torch.tensor(enc["labels"][1:])
        hidden = causal.model(input_ids=torch.tensor([enc["input_ids"]])).last_hidden_state[0, :-1]
        keep = labels != -100
        # The LM head only at the answer positions: the 49k-token vocabulary dominates the cost otherwise.
        loss = F.cross_entropy(causal.lm_head(hidden[keep]), labels[keep])
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return float(loss.detach())


def make_adapter(base_dir: Path, out_dir: Path, *, base_ref: str | None = None, steps: int = 0,
                 lr: float = 1e-3, family: str = "chatml", seed: int = 1) -> Path:
    """A LoRA adapter over base_dir. steps=0: random (non-zero) LoRA weights, so merging visibly changes the
    model; steps>0: trained that many steps on the lockers examples from peft's usual zero init."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.training.rendering import prepare_tokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    prepare_tokenizer(tok, family)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0,
                     task_type="CAUSAL_LM", init_lora_weights=steps > 0)
    pm = get_peft_model(model, cfg)
    loss = train_steps(pm, tok, examples(8), steps, lr) if steps else None
    for pc in pm.peft_config.values():
        pc.base_model_name_or_path = base_ref or str(base_dir)
    pm.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    (out_dir / "training_config.json").write_text(json.dumps(
        {"base_model": base_ref or str(base_dir), "base_model_dir": str(base_dir)}))
    (out_dir / "metrics.json").write_text(json.dumps({"final_loss": loss, "family": family}))
    return out_dir
