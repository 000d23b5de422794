"""Validation leaves training's random draws alone: evaluating and saving a checkpoint draw from the
global random generators (the dropout masks of the next steps come from them), so a run that
validates more often trained another model from the same seed, and how often a run validates depends
on the machine's speed (validation_budget.py). SciFact, seed 1: 0.7352 against 0.7305 on identical
rows (bench/RESULTS.md, session 22)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from transformers import TrainerCallback


def _states() -> dict[str, Any]:
    import torch

    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _restore(states: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if states["cuda"] is not None:
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomStateGuard(TrainerCallback):
    """Keeps the random states of the end of each step and puts them back after a validation and after
    a checkpoint save, so the next step draws what it would have drawn without them. Append it last,
    after every callback that works at a validation."""

    def __init__(self):
        self._saved: dict[str, Any] | None = None

    def on_step_end(self, args, state, control, **kwargs):
        self._saved = _states()

    def on_evaluate(self, args, state, control, **kwargs):
        if self._saved is not None:
            _restore(self._saved)

    def on_save(self, args, state, control, **kwargs):
        if self._saved is not None:
            _restore(self._saved)
