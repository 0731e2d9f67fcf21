"""Rank-awareness for data-parallel training across the GPUs of one box with torch.distributed (DDP).

torchrun (see training/launch.py) sets RANK / WORLD_SIZE / LOCAL_RANK in every process; `Rank.from_env()` reads
them and `init()` joins the process group: nccl on CUDA (one GPU per process, cuda:LOCAL_RANK), gloo on CPU
(what the tests use). Rank 0 alone writes events, logs and the adapter; the others only compute.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..errors import InvalidConfig


@dataclass(frozen=True)
class Rank:
    """This process's place in the run: rank, world size and local rank (all 0/1/0 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Rank":
        """Reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK; raises InvalidConfig on values that do not fit."""
        if os.environ.get("WORLD_SIZE", "1").strip() in ("", "1"):
            return cls()  # a stray RANK without a world (another launcher's shell) does not matter alone
        try:
            rank = int(os.environ.get("RANK", "0"))
            world = int(os.environ["WORLD_SIZE"])
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as e:
            raise InvalidConfig(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {e}") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise InvalidConfig(f"inconsistent torch.distributed environment: RANK={rank} WORLD_SIZE={world} "
                                f"LOCAL_RANK={local}")
        return cls(rank, world, local)


def init(rank: Rank, device_type: str):
    """Joins the process group (nccl for cuda, gloo for cpu) unless already joined; returns this process's
    torch.device (cuda:LOCAL_RANK on GPUs). Raises InvalidConfig when there are fewer GPUs than processes."""
    import torch
    import torch.distributed as dist

    device = torch.device("cpu")
    if device_type == "cuda":
        if rank.local_rank >= torch.cuda.device_count():
            raise InvalidConfig(f"process {rank.rank} wants cuda:{rank.local_rank} but only "
                                f"{torch.cuda.device_count()} GPU(s) are visible: use at most that many processes")
        torch.cuda.set_device(rank.local_rank)
        device = torch.device("cuda", rank.local_rank)
    if rank.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo",
                                rank=rank.rank, world_size=rank.world_size,
                                device_id=device if device_type == "cuda" else None)
    return device


def all_sum(values: list[float], device) -> list[float]:
    """Element-wise sum of `values` over every process (the values themselves without a process group)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def finish() -> None:
    """Leaves the process group (every rank, after its last collective); nothing when torch was never loaded."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
