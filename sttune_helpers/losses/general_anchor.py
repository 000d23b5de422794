"""The general anchor (train.general_anchor): a loss wrapper that holds the model's unprompted
embeddings where the base model had them while the task is learnt behind train.task_prompt.

Each step it adds weight x mean(1 - cos(e, e0)) over a few of the training texts drawn at random,
of similar length where their lengths are given (a window of the length-sorted texts at a random
start: on STS-B 16 random texts pad to 2.2x the tokens of 16 neighbours), e the model's embedding
of the text WITHOUT the task prompt, e0 the base model's (computed once, before training).
Anchoring the same texts without a prompt pulls straight against the task (bench/RESULTS.md,
session 19: it lands on the WiSE-FT curve); behind a prompt the two can both hold.

It imports torch, so ``losses/__init__`` does not import it: training imports it directly."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback

from ..config.ranges import check_value

ANCHOR_KEY = "train.general_anchor"
TEXTS_PER_STEP = 16
EVERY = 1


class GeneralAnchorLoss(nn.Module):
    """``loss(features, labels) + weight * mean(1 - cos(e, e0))`` over ``TEXTS_PER_STEP`` of ``texts``
    a step (a seeded draw), ``anchors`` their base-model embeddings, row for row.

    With ``every`` k above 1 the term is added on every k-th batch only, at k times the weight: the
    same pull summed over k batches, at 1/k of the anchor's forward and backward (each anchor pass has
    a fixed part, whatever its texts: bench/RESULTS.md, session 29).

    Like L2SPLoss it holds the model as ``model`` and the task loss as ``loss``, so the trainer's
    model swap for DDP reaches both; the texts are tokenized with ``model.preprocess``, which applies
    no prompt (the model's default prompt is applied by ``encode`` only)."""

    def __init__(self, loss, texts: Sequence[str], anchors: np.ndarray, weight: float, seed: int,
                 texts_per_step: int = TEXTS_PER_STEP, lengths: Sequence[int] | None = None,
                 every: int = EVERY):
        check_value(ANCHOR_KEY, weight)
        if int(every) < 1:
            raise ValueError(f"the general anchor's every must be a whole number of batches, 1 or more: got {every}")
        if len(texts) == 0 or len(texts) != len(anchors):
            raise ValueError(f"the general anchor needs one base embedding per text: {len(texts)} texts, "
                             f"{len(anchors)} embeddings")
        super().__init__()
        self.model = loss.model
        self.loss = loss
        self.weight = float(weight)
        if lengths is not None and len(lengths) != len(texts):
            raise ValueError(f"the general anchor needs one length per text: {len(texts)} texts, "
                             f"{len(lengths)} lengths")
        # Sorted by length, a step's texts are neighbours: a window that wraps around, so every text is
        # drawn equally often. Without lengths, the texts' own order (draws are then random rows).
        order = np.argsort(np.asarray(lengths), kind="stable") if lengths is not None else np.arange(len(texts))
        self.by_length = lengths is not None
        self.texts = [texts[i] for i in order]
        self.texts_per_step = min(int(texts_per_step), len(self.texts))
        self.every = int(every)
        self.batches = 0  # batches seen: the term is added on the first and every ``every``-th after it
        self.register_buffer("anchors", torch.as_tensor(np.asarray(anchors)[order], dtype=torch.float32),
                             persistent=False)
        # Its own generator: the draws neither consume nor depend on the global random state.
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def resume_at(self, batches: int) -> None:
        """Go on as the interrupted run would have after ``batches`` batches (a run resumed from a
        checkpoint): the same draws and the same batches anchored, so that it trains the same model."""
        self.generator.manual_seed(self.seed)
        for batch in range(batches):
            if batch % self.every == 0:
                self.draw()
        self.batches = batches

    def draw(self) -> torch.Tensor:
        """The rows of this step's texts."""
        if self.by_length:
            start = torch.randint(len(self.texts), (1,), generator=self.generator)
            return (start + torch.arange(self.texts_per_step)) % len(self.texts)
        return torch.randint(len(self.texts), (self.texts_per_step,), generator=self.generator)

    def drift(self):
        """mean(1 - cos) between the model's unprompted embeddings of this step's texts and the base's."""
        rows = self.draw()
        features = self.model.preprocess([self.texts[i] for i in rows.tolist()])
        device = self.anchors.device
        features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
        embeddings = self.model(features)["sentence_embedding"]
        target = self.anchors[rows.to(device)]
        return (1 - nn.functional.cosine_similarity(embeddings.float(), target, dim=-1)).mean()

    def forward(self, sentence_features, labels):
        task = self.loss(sentence_features, labels)
        if self.weight == 0:
            return task
        factor = 1  # an evaluation pass (no gradients): the term at its average weight, not counted
        if torch.is_grad_enabled():
            anchored, self.batches = self.batches % self.every == 0, self.batches + 1
            if not anchored:
                return task
            factor = self.every
        term = self.weight * factor * self.drift()
        if isinstance(task, dict):  # losses reporting components: the anchor is one more
            return {**task, "general_anchor": term}
        return task + term

    def get_config_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "general_anchor": self.weight, "texts": len(self.texts),
                "texts_per_step": self.texts_per_step, "every": self.every, "length_grouped": self.by_length}


def with_general_anchor(loss, weight: float | None, texts: Sequence[str], anchors: np.ndarray | None, seed: int,
                        lengths: Sequence[int] | None = None, texts_per_step: int = TEXTS_PER_STEP,
                        every: int = EVERY):
    """``loss`` wrapped in GeneralAnchorLoss where ``weight`` is set and above 0; else ``loss`` itself."""
    check_value(ANCHOR_KEY, weight)
    if not weight:
        return loss
    return GeneralAnchorLoss(loss, texts, anchors, weight, seed, texts_per_step=texts_per_step, lengths=lengths,
                             every=every)


class ResumeGeneralAnchor(TrainerCallback):
    """Where the trainer resumes from a checkpoint, the anchor goes on from the batches already trained."""

    def __init__(self, loss: GeneralAnchorLoss):
        self.loss = loss

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            self.loss.resume_at(state.global_step * args.gradient_accumulation_steps)
