"""L2-SP (Li et al. 2018): a loss wrapper that adds weight x the squared distance of the model's
trainable weights from their starting values to the task loss (train.l2sp_weight).

It imports torch, so ``losses/__init__`` does not import it: training imports it directly."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config.ranges import check_value

L2SP_KEY = "train.l2sp_weight"


def check_l2sp_weight(weight: float | None) -> None:
    """A SettingError naming train.l2sp_weight unless it is None or in its range (config/ranges.py)."""
    check_value(L2SP_KEY, weight)


class L2SPLoss(nn.Module):
    """``loss(features, labels) + weight * sum ||theta - theta0||^2`` over the parameters of
    ``loss.model`` that require gradients when the wrapper is built (theta0: their values then, a
    float32 copy on the model's device, kept as non-persistent buffers the optimizer never sees).

    Like MatryoshkaLoss it holds the model as ``model`` and the task loss as ``loss``, so the
    trainer's model card, its model swap for DDP (``override_model_in_loss``) and lookups over
    ``modules()`` reach the task loss."""

    def __init__(self, loss, weight: float):
        check_l2sp_weight(weight)
        super().__init__()
        self.model = loss.model
        self.loss = loss
        self.weight = float(weight)
        named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        self.parameter_names = [name for name, _ in named]
        # A plain list, not a ModuleList or ParameterList: the parameters are the model's, not registered twice.
        self._parameters_list = [p for _, p in named]
        for i, (_, p) in enumerate(named):
            self.register_buffer(f"theta0_{i}", p.detach().to(dtype=torch.float32).clone(), persistent=False)

    def anchors(self) -> list:
        return [getattr(self, f"theta0_{i}") for i in range(len(self._parameters_list))]

    def penalty(self):
        """sum over the anchored parameters of ||theta - theta0||^2 (a float32 scalar with gradients)."""
        terms = [(p.float() - anchor).pow(2).sum() for p, anchor in zip(self._parameters_list, self.anchors())]
        if not terms:
            return torch.zeros((), device=self.model.device)
        return torch.stack(terms).sum()

    def forward(self, sentence_features, labels):
        task = self.loss(sentence_features, labels)
        if self.weight == 0:
            return task
        if isinstance(task, dict):  # losses reporting components: the penalty is one more
            return {**task, "l2sp": self.weight * self.penalty()}
        return task + self.weight * self.penalty()

    def get_config_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "l2sp_weight": self.weight}

    @property
    def citation(self) -> str:
        return """
@inproceedings{li2018explicit,
    title={Explicit Inductive Bias for Transfer Learning with Convolutional Networks},
    author={Li, Xuhong and Grandvalet, Yves and Davoine, Franck},
    booktitle={Proceedings of the 35th International Conference on Machine Learning},
    year={2018},
    url={https://arxiv.org/abs/1802.01483},
}
"""


def with_l2sp(loss, weight: float | None):
    """``loss`` wrapped in L2SPLoss where ``weight`` is set and above 0; else ``loss`` itself. Build it
    after the model's trainable parameters are settled (e.g. LoRA adapters added): those are anchored."""
    check_l2sp_weight(weight)
    if not weight:
        return loss
    return L2SPLoss(loss, weight)
