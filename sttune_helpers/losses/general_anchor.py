"""The general anchor (train.general_anchor): a loss wrapper that holds the model's unprompted
embeddings where the base model had them while the task is learnt behind train.task_prompt.

Each step it adds weight x mean(1 - cos(e, e0)) over a few of the training texts drawn at random,
of similar length where their lengths are given (a window of the length-sorted texts at a random
start: on STS-B 16 random texts pad to 2.2x the tokens of 16 neighbours), e the model's embedding
of the text WITHOUT the task prompt, e0 the base model's. The draws are fixed before training
(AnchorDraws), so that e0 is computed once, for the texts drawn only: a quarter of STS-B's.
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


class AnchorDraws:
    """What the anchor draws on each of ``draws`` anchored batches, fixed up front from ``seed``: a
    window of ``texts_per_step`` texts neighbouring in length (with ``lengths``), else random rows.
    ``texts`` are the texts drawn at least once, the rows of the base embeddings the loss needs, and
    ``rows[i]`` the i-th draw's rows into them. A run longer than planned draws the schedule again."""

    def __init__(self, texts: Sequence[str], seed: int, texts_per_step: int = TEXTS_PER_STEP,
                 lengths: Sequence[int] | None = None, draws: int = 1024):
        if len(texts) == 0:
            raise ValueError("the general anchor needs at least one text to draw")
        if lengths is not None and len(lengths) != len(texts):
            raise ValueError(f"the general anchor needs one length per text: {len(texts)} texts, "
                             f"{len(lengths)} lengths")
        # Sorted by length, a step's texts are neighbours: a window that wraps around, so every text is
        # drawn equally often. Without lengths, the texts' own order (draws are then random rows).
        order = np.argsort(np.asarray(lengths), kind="stable") if lengths is not None else np.arange(len(texts))
        self.by_length = lengths is not None
        self.pool_size = len(texts)
        self.texts_per_step = min(int(texts_per_step), len(texts))
        generator = torch.Generator().manual_seed(int(seed))  # neither consumes nor depends on the global state
        window = torch.arange(self.texts_per_step)
        drawn = []
        for _ in range(max(1, int(draws))):
            if self.by_length:
                drawn.append((torch.randint(len(texts), (1,), generator=generator) + window) % len(texts))
            else:
                drawn.append(torch.randint(len(texts), (self.texts_per_step,), generator=generator))
        pool_rows = torch.stack(drawn)
        used, self.rows = torch.unique(pool_rows, return_inverse=True)  # used is sorted: length order
        self.texts = [texts[order[i]] for i in used.tolist()]

    def __len__(self) -> int:
        return len(self.rows)


class GeneralAnchorLoss(nn.Module):
    """``loss(features, labels) + weight * mean(1 - cos(e, e0))`` over the texts ``draws`` gives each
    anchored batch, ``anchors`` the base-model embeddings of ``draws.texts``, row for row.

    With ``every`` k above 1 the term is added on every k-th batch only, at k times the weight: the
    same pull summed over k batches, at 1/k of the anchor's forward and backward (each anchor pass has
    a fixed part, whatever its texts: bench/RESULTS.md, session 29).

    Like L2SPLoss it holds the model as ``model`` and the task loss as ``loss``, so the trainer's
    model swap for DDP reaches both; the texts are tokenized with ``model.preprocess``, which applies
    no prompt (the model's default prompt is applied by ``encode`` only)."""

    def __init__(self, loss, draws: AnchorDraws, anchors: np.ndarray, weight: float, every: int = EVERY):
        check_value(ANCHOR_KEY, weight)
        if int(every) < 1:
            raise ValueError(f"the general anchor's every must be a whole number of batches, 1 or more: got {every}")
        if len(draws.texts) != len(anchors):
            raise ValueError(f"the general anchor needs one base embedding per text drawn: {len(draws.texts)} "
                             f"texts, {len(anchors)} embeddings")
        super().__init__()
        self.model = loss.model
        self.loss = loss
        self.weight = float(weight)
        self.draws = draws
        self.texts = draws.texts
        self.texts_per_step = draws.texts_per_step
        self.by_length = draws.by_length
        self.every = int(every)
        self.batches = 0  # batches seen: the term is added on the first and every ``every``-th after it
        self.drawn = 0  # draws made
        self.register_buffer("anchors", torch.as_tensor(np.asarray(anchors), dtype=torch.float32), persistent=False)

    def resume_at(self, batches: int) -> None:
        """Go on as the interrupted run would have after ``batches`` batches (a run resumed from a
        checkpoint): the same draws and the same batches anchored, so that it trains the same model."""
        self.batches = batches
        self.drawn = -(-batches // self.every)  # the anchored batches among the first ``batches``

    def draw(self) -> torch.Tensor:
        """The rows of this step's texts."""
        rows = self.draws.rows[self.drawn % len(self.draws)]
        self.drawn += 1
        return rows

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
        return {"loss": self.loss, "general_anchor": self.weight, "texts": self.draws.pool_size,
                "texts_drawn": len(self.texts), "texts_per_step": self.texts_per_step, "every": self.every,
                "length_grouped": self.by_length}


def with_general_anchor(loss, weight: float | None, draws: AnchorDraws | None, anchors: np.ndarray | None,
                        every: int = EVERY):
    """``loss`` wrapped in GeneralAnchorLoss where ``weight`` is set and above 0; else ``loss`` itself."""
    check_value(ANCHOR_KEY, weight)
    if not weight:
        return loss
    return GeneralAnchorLoss(loss, draws, anchors, weight, every=every)


class ResumeGeneralAnchor(TrainerCallback):
    """Where the trainer resumes from a checkpoint, the anchor goes on from the batches already trained."""

    def __init__(self, loss: GeneralAnchorLoss):
        self.loss = loss

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            self.loss.resume_at(state.global_step * args.gradient_accumulation_steps)
