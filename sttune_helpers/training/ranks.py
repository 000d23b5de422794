"""Inside one process of a data-parallel run: which rank this is (from torchrun's environment), the
device and DDP backend it trains with, gathering values from every rank, and a record of what this
rank trained on. Light at import (no torch)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from .errors import TrainingError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    """The ranks on this machine (torchrun's nproc-per-node)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def in_worker() -> bool:
    """True inside a process that torchrun (or accelerate launch) started as one of several."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def is_rank_zero() -> bool:
    return rank() == 0


def rank_device(device: str) -> str:
    """The device this rank trains on: its own GPU (cuda:LOCAL_RANK) when several share a machine."""
    if device == "cuda" and in_worker():
        return f"cuda:{local_rank()}"
    return device


def ddp_backend(device: str) -> str:
    if device.startswith("cuda"):
        return "nccl"
    if device == "cpu":
        return "gloo"
    raise TrainingError(f"training in several processes (train.nproc > 1) runs on CUDA GPUs or on the CPU, "
                        f"not on {device!r} (model.device)")


def gather_from_ranks(value: Any) -> list[Any]:
    """``value`` from every rank, in rank order (a one-item list outside a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


class RankRecorder:
    """What one rank trained on: the texts its model encoded in training mode and a digest of its
    first training batch (the ranks of a data-parallel run see different batches)."""

    def __init__(self, model):
        self.forward_calls = 0
        self.texts_encoded = 0
        self.first_batch_digest: str | None = None
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        if not module.training:  # encode() for validation and the collapse probe switches to eval mode
            return
        features = args[0] if args else kwargs.get("input")
        input_ids = features.get("input_ids") if isinstance(features, dict) else None
        if input_ids is None:
            return
        self.forward_calls += 1
        self.texts_encoded += int(input_ids.shape[0])
        if self.first_batch_digest is None:
            self.first_batch_digest = hashlib.sha1(input_ids.detach().cpu().numpy().tobytes()).hexdigest()[:16]

    def record(self, **extra: Any) -> dict[str, Any]:
        self._handle.remove()
        return {"rank": rank(), "forward_calls": self.forward_calls, "texts_encoded": self.texts_encoded,
                "first_batch_digest": self.first_batch_digest, **extra}
