"""Frozen-trunk cache: run the layers below the lowest LoRA layer once per example, not once per epoch.

With `lora_layers=N` only the top N transformer blocks carry adapters (and LoRA dropout). The blocks below
them are frozen and, with no attention dropout in the base model, deterministic, so their output for an example is the same in every epoch.
The first time an example is seen, its trunk output is computed without autograd and kept in memory; every
later pass feeds it straight into the adapted top blocks. On a CPU, where the trunk's forward pass is most of
a step's cost, this makes the second and later epochs several times cheaper, and the result is identical to
running the whole model (a test checks the losses match).

Only decoders whose forward pass feeds `inputs_embeds` unchanged into a plain list of identical blocks are
cached (the Llama, Qwen2, Mistral families); anything else trains the normal way.
"""
from __future__ import annotations

import contextlib
import logging

log = logging.getLogger("nursery.train")

# Decoders whose forward is: embed → rotary → for block in layers → norm, with no scaling of inputs_embeds.
SUPPORTED = {"llama", "qwen2", "qwen3", "mistral"}
DEFAULT_BUDGET_BYTES = 4 << 30


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class TrunkCache:
    """Per-example outputs of the frozen bottom blocks, and the two half-passes that use them."""

    def __init__(self, decoder, split: int, budget_bytes: int):
        self.decoder = decoder
        self.split = split
        self.all_layers = decoder.layers
        self.bottom = type(self.all_layers)(list(self.all_layers)[:split])
        self.top = type(self.all_layers)(list(self.all_layers)[split:])
        self.budget = budget_bytes
        self.used = 0
        self.store: dict = {}
        self.hits = self.misses = 0

    @classmethod
    def build(cls, peft_model, lora_layers: int, device) -> "TrunkCache | None":
        """A cache when it is exact and worth it here (CPU, LoRA on the top blocks only), else None."""
        if not lora_layers or device.type != "cpu":
            return None
        causal = peft_model.get_base_model()
        cfg = causal.config
        decoder = getattr(causal, "get_decoder", lambda: None)()
        layers = getattr(decoder, "layers", None)
        if cfg.model_type not in SUPPORTED or layers is None:
            return None
        if len(set(getattr(cfg, "layer_types", None) or ["same"])) > 1:  # sliding/full mixes index by position
            return None
        if float(getattr(cfg, "attention_dropout", 0.0) or 0.0) > 0.0:
            return None
        n = len(layers)
        split = n - min(lora_layers, n)
        if split <= 0:
            return None
        if any("lora_" in name for name, _ in layers[:split].named_parameters()):
            return None  # adapters below the split: nothing below it is frozen
        avail = _available_bytes()
        budget = DEFAULT_BUDGET_BYTES if avail is None else min(DEFAULT_BUDGET_BYTES, avail // 3)
        return cls(decoder, split, budget)

    @contextlib.contextmanager
    def _layers(self, layers):
        self.decoder.layers = layers
        try:
            yield
        finally:
            self.decoder.layers = self.all_layers

    def _bottom(self, ids, mask=None, position_ids=None):
        """Output of the frozen blocks (before the final norm), without autograd."""
        import torch

        captured = {}

        def grab(_module, _inputs, output):
            captured["h"] = output[0] if isinstance(output, tuple) else output

        hook = self.bottom[-1].register_forward_hook(grab)
        try:
            with torch.no_grad(), self._layers(self.bottom):
                self.decoder(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
        finally:
            hook.remove()
        return captured["h"]

    def hidden(self, ids, keys: list, lengths: list[int], mask=None, position_ids=None):
        """The top blocks' output (after the final norm) for a right-padded batch, trunk from the cache. mask and
        position_ids: a packed batch's 4-D block mask and positions (training/packing.py), None for plain rows."""
        import torch

        if keys and all(k in self.store for k in keys):
            self.hits += len(keys)
            width = ids.shape[1]
            trunk = torch.zeros((len(keys), width, self.store[keys[0]].shape[-1]), dtype=self.store[keys[0]].dtype)
            for row, k in enumerate(keys):
                h = self.store[k]
                trunk[row, :h.shape[0]] = h
        else:
            trunk = self._bottom(ids, mask, position_ids)
            self.misses += len(keys)
            for row, (k, n) in enumerate(zip(keys, lengths)):
                if k in self.store:
                    continue
                size = n * trunk.shape[-1] * trunk.element_size()
                if self.used + size > self.budget:
                    break
                self.store[k] = trunk[row, :n].clone()
                self.used += size
        with self._layers(self.top):
            return self.decoder(inputs_embeds=trunk, attention_mask=mask, position_ids=position_ids,
                                use_cache=False)[0]
