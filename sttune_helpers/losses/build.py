"""Building the chosen loss on a model: its parameters as the loss class takes them (distance
metrics, the label count, a guide model, a decoder), optionally wrapped in MatryoshkaLoss."""

from __future__ import annotations

from typing import Any

from ..shapes import LossChoice
from .errors import LossError
from .registry import GUIDED_LOSSES, loss_class, supports_gather_across_devices


def _distance_metric(name: str, enum_cls) -> Any:
    """'cosine', 'euclidean' or 'manhattan' as the loss's own metric (TripletDistanceMetric.COSINE,
    SiameseDistanceMetric.COSINE_DISTANCE, ...)."""
    key = str(name).strip().upper()
    for candidate in (key, f"{key}_DISTANCE"):
        if candidate in vars(enum_cls) or candidate in dir(enum_cls):
            return getattr(enum_cls, candidate)
    raise LossError(f"unknown distance_metric {name!r}; choose cosine, euclidean or manhattan")


def build_loss(model, choice: LossChoice, *, labels: list[str] | None = None, guide=None,
               matryoshka_dims: list[int] | None = None, gather_across_devices: bool = False):
    """The loss module for ``model``; ``labels`` for SoftmaxLoss, ``guide`` for GISTEmbedLoss.
    ``gather_across_devices`` (multi-process training) makes the in-batch-negative losses that
    support it score every process's batch as negatives, unless loss.params says otherwise."""
    from sentence_transformers.sentence_transformer import losses

    cls = loss_class(choice.name)
    params = dict(choice.params)
    if gather_across_devices and supports_gather_across_devices(choice.name):
        params.setdefault("gather_across_devices", True)
    if "distance_metric" in params and isinstance(params["distance_metric"], str):
        enum_cls = losses.TripletDistanceMetric if choice.name == "TripletLoss" else losses.SiameseDistanceMetric
        params["distance_metric"] = _distance_metric(params["distance_metric"], enum_cls)
    if choice.name == "SoftmaxLoss":
        if not labels:
            raise LossError("SoftmaxLoss needs the label set (data.labels, or the labels of the data report)")
        params.update(embedding_dimension=model.get_embedding_dimension(), num_labels=len(labels))
    if choice.name in GUIDED_LOSSES:
        if guide is None:
            raise ValueError(f"{choice.name} needs a guide model")
        params["guide"] = guide
    if choice.name == "DenoisingAutoEncoderLoss":
        params.setdefault("decoder_name_or_path", _transformer_path(model))
        params.setdefault("tie_encoder_decoder", True)
    try:
        loss = cls(model, **params)
    except TypeError as exc:
        raise LossError(f"loss {choice.name} does not take the parameters {choice.params}: {exc}") from None
    except ValueError as exc:  # a parameter out of the loss's range
        raise LossError(f"loss.params of {choice.name}: {exc}") from None
    if matryoshka_dims:
        dimension = model.get_embedding_dimension()
        dims = sorted({int(d) for d in matryoshka_dims}, reverse=True)
        if dims[0] > dimension or dims[-1] < 1:
            raise LossError(f"loss.matryoshka_dims must lie in 1..{dimension} (the model's embedding size), got "
                            f"{matryoshka_dims}")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss


def _transformer_path(model) -> str:
    transformer = model[0]
    auto_model = getattr(transformer, "auto_model", None) or getattr(transformer, "model", None)
    path = getattr(getattr(auto_model, "config", None), "_name_or_path", None)
    if not path:
        raise LossError("DenoisingAutoEncoderLoss needs the model's transformer folder or hub name for its decoder")
    return path
