"""Scoring weight states after training, on the validation split and on the general reference's
selection half: train.restore_best's best-or-last comparison and model selection share one scorer,
so the best and the last model are encoded once, in one freshly loaded model (the trained one may
carry the trainer's autocast wrapper) and at one precision (:func:`candidate_precision`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .. import shapes
from ..config import RunConfig
from ..core.statistics import Bootstrap
from ..modeling import load_configured_model, with_task_prompt
from ..rundir import RunDir
from ..scoring import load_task, score_model
from ..scoring.models import ModelScores
from .weights import State, same_weights


def candidate_precision(config: RunConfig, training_precision: str) -> str:
    """The precision candidates are compared in: validation's (train.validation_precision "auto": bf16
    where training ran in bf16, as the validation that chose the best checkpoint), or bf16 where
    eval.precision asks for it. The evaluation stage's figures keep eval.precision (fp32 by default)."""
    if config.eval.precision == "bf16" or (config.train.validation_precision == "auto"
                                           and training_precision == "bf16"):
        return "bf16"
    return "fp32"


class CandidateScorer:
    """Scores on validation are kept per weights: a state scored before is not encoded again."""

    def __init__(self, run: RunDir, config: RunConfig, device: str, precision: str = "fp32"):
        self.run, self.config, self.device, self.precision = run, config, device, precision
        self._validation_scores: list[tuple[State, ModelScores]] = []

    @cached_property
    def model(self):
        # the candidates are the trained model's weights: they encode the task with its prompt
        return with_task_prompt(load_configured_model(self.config, device=self.device), self.config.train.task_prompt)

    @cached_property
    def validation(self):
        return load_task(self.run, self.config, split="validation")

    @cached_property
    def metric(self) -> str:
        return shapes.get(self.validation.shape).primary_metric

    @cached_property
    def boot(self) -> Bootstrap:
        ev = self.config.eval
        return Bootstrap.draw(self.validation.n, ev.bootstrap_samples, ev.confidence, self.config.seed)

    @cached_property
    def reference(self):
        from ..scoring.reference import general_reference

        return general_reference(self.run, self.config, "selection") if self.config.eval.reference else None

    @property
    def parts(self) -> list:
        return self.reference.parts if self.reference is not None else []

    def load(self, state: State):
        """The scoring model with ``state``'s weights."""
        self.model.load_state_dict(state)
        return self.model

    def validation_scores(self, state: State) -> ModelScores:
        for scored_state, scores in self._validation_scores:
            if scored_state is state or same_weights(scored_state, state):
                return scores
        ev = self.config.eval
        scores = score_model(self.validation, self.load(state), self.boot, ev.batch_size, self.config.seed,
                             self.precision)
        self._validation_scores.append((state, scores))
        return scores

    def reference_scores(self, state: State, cache_dir: Path | None = None) -> dict[str, float]:
        """Each reference part's primary metric (points only, no intervals)."""
        ev, model = self.config.eval, self.load(state)
        values = {}
        for part in self.parts:
            boot = Bootstrap.draw(part.n, 1, ev.confidence, self.config.seed)
            scores = score_model(part, model, boot, ev.batch_size, self.config.seed, self.precision, cache_dir)
            values[part.name] = scores.metrics[shapes.get(part.shape).primary_metric]["value"]
        return values
