"""The GPU health check of a rented machine over its SSH session, as the vast and runpod backends run it before
training (the rule and the parser: `nursery_core.gpu_check`)."""
from __future__ import annotations

import os

from ...gpu_check import GpuVerdict, check_gpus
from .remote import RemoteRun


def check_remote_gpus(remote: RemoteRun, expected_gpus: int, min_memory_mb: float) -> GpuVerdict:
    """nvidia-smi and torch.cuda on the machine behind `remote` (connected), judged against what the offer
    promised (GPUs, MiB per GPU). Torch may be missing before the install step: then nvidia-smi decides.
    NURSERY_GPU_CHECK_PATH / NURSERY_GPU_CHECK_PYTHON put another nvidia-smi / python first (tests)."""
    return check_gpus(remote.s, expected_gpus=expected_gpus, min_memory_mb=min_memory_mb,
                      python=os.environ.get("NURSERY_GPU_CHECK_PYTHON") or remote.target.python,
                      extra_path=os.environ.get("NURSERY_GPU_CHECK_PATH") or None, require_torch=False)
