"""How long each checkpoint save took during training, for the run's time report (training.json's
"timing"): the trainer reports no such time itself."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback


class CheckpointTimer(TrainerCallback):
    """Times every checkpoint save: from the end of the work before it (the step, or the validation
    at that step with the callbacks before this one) to the trainer's on_save, which follows the
    save (and the rotation of old checkpoints). Append it last, so that the other callbacks'
    work at a validation is not counted as saving."""

    def __init__(self):
        self.saves: list[dict[str, Any]] = []
        self._mark: float | None = None

    def on_step_end(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        now = time.perf_counter()
        seconds = now - self._mark if self._mark is not None else 0.0
        self.saves.append({"step": state.global_step, "seconds": round(max(0.0, seconds), 3)})
        self._mark = now

    def summary(self) -> dict[str, Any]:
        """training.json's "timing": each save this session (a resumed run: the saves after the resume)."""
        return {"checkpoint_saves": list(self.saves),
                "checkpoint_save_seconds": round(sum(s["seconds"] for s in self.saves), 3)}
