"""Loss selection: the training data's shape -> the recommended loss and its alternatives, each with
its reason and parameters; building the chosen loss on a model; fitting the split's columns to it."""

from __future__ import annotations

import math
import random
from dataclasses import asdict
from typing import Any

from . import shapes
from .config import RunConfig
from .core.io import atomic_write_json
from .rundir import RunDir
from .shapes import LossChoice

# Losses whose logits are similarities times ``scale``: temperature = 1 / scale.
SCALED_LOSSES = {"MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "CoSENTLoss", "AnglELoss"}
# Losses that take ``temperature`` itself.
TEMPERATURE_LOSSES = {"GISTEmbedLoss"}
# Losses that score every other in-batch text as a negative: they want big batches without duplicates.
IN_BATCH_NEGATIVE_LOSSES = {"MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "GISTEmbedLoss"}
# TSDAE's noise: the share of words deleted from each sentence, as in the paper.
TSDAE_DELETION_RATIO = 0.6


LOSS_REGISTRY: dict[str, tuple[LossChoice, ...]] = {name: shape.losses for name, shape in shapes.REGISTRY.items()}


def loss_choices(shape: str) -> list[LossChoice]:
    if shape not in LOSS_REGISTRY:
        raise ValueError(f"no losses registered for task shape {shape!r}; known shapes: {', '.join(LOSS_REGISTRY)}")
    return list(LOSS_REGISTRY[shape])


def loss_shape(report: dict[str, Any]) -> str:
    """The shape whose losses fit the train split: the train split's own shape (mining turns pairs
    into triplets), except unlabeled text, which stays unlabeled when the data stage made SimCSE pairs."""
    if report["shape"] == "unlabeled":
        return "unlabeled"
    return report.get("train_shape", report["shape"])


def recommend(shape: str, n_train: int, batch_size: int) -> tuple[LossChoice, str]:
    """The registered default for ``shape``, or a better fit for this size of data, with why."""
    choices = {c.name: c for c in loss_choices(shape)}
    default = loss_choices(shape)[0]
    # No GISTEmbedLoss for small retrieval sets: on SciFact (825 train pairs) it scored NDCG@10 0.657
    # where MultipleNegativesRankingLoss scored 0.667, same run otherwise (bench/RESULTS.md, session 6).
    if shape == "retrieval" and batch_size >= 256:
        return choices["CachedMultipleNegativesRankingLoss"], (
            f"a batch of {batch_size} texts is where in-batch negatives pay off, and gradient caching keeps its "
            "memory at that of a mini-batch")
    if shape in {"retrieval", "triplet", "unlabeled"} and batch_size < 32:
        return default, (f"the default for {shape}; note that a batch of {batch_size} gives each text only "
                         f"{max(0, batch_size - 1)} in-batch negatives: raise train.batch_size if memory allows")
    return default, f"the default for the {shape} shape at {n_train:,} training rows"


def choose_loss(config: RunConfig, shape: str | None = None, n_train: int = 0) -> tuple[LossChoice, list[LossChoice], str]:
    """The loss this run will use, the alternatives, and how the choice was made."""
    shape = shape or config.data.shape
    choices = loss_choices(shape)
    if config.loss.name is None:
        chosen, how = recommend(shape, n_train, config.train.batch_size)
        how = f"recommended: {how}"
    else:
        named = [c for c in choices if c.name == config.loss.name]
        if named:
            chosen = named[0]
        else:
            loss_class(config.loss.name)  # raises with the list of known losses if there is none
            registered_for = [s for s, cs in LOSS_REGISTRY.items() if any(c.name == config.loss.name for c in cs)]
            if registered_for:
                raise ValueError(f"loss.name={config.loss.name} does not fit {shape} training data (it is for "
                                 f"{', '.join(registered_for)}); the losses for {shape}: "
                                 f"{', '.join(c.name for c in choices)}")
            chosen = LossChoice(config.loss.name, "chosen in the config; not among this shape's registered losses")
        how = "set in the config (loss.name)"
    params = {**chosen.params, **config.loss.params}
    if config.loss.temperature is not None:
        params.update(temperature_params(chosen.name, config.loss.temperature))
    chosen = LossChoice(chosen.name, chosen.reason, params, chosen.tunable)
    return chosen, [c for c in choices if c.name != chosen.name], how


def temperature_params(loss_name: str, temperature: float) -> dict[str, float]:
    if not (isinstance(temperature, (int, float)) and 0 < temperature <= 10 and math.isfinite(temperature)):
        raise ValueError(f"loss.temperature must be a number in (0, 10], got {temperature!r}")
    if loss_name in SCALED_LOSSES:
        return {"scale": 1.0 / temperature}
    if loss_name in TEMPERATURE_LOSSES:
        return {"temperature": float(temperature)}
    raise ValueError(f"loss.temperature does not apply to {loss_name}; it applies to "
                     f"{', '.join(sorted(SCALED_LOSSES | TEMPERATURE_LOSSES))}")


def loss_class(name: str):
    from sentence_transformers.sentence_transformer import losses

    cls = getattr(losses, name, None)
    if not isinstance(cls, type):
        known = sorted(n for n in dir(losses) if n.endswith("Loss") and isinstance(getattr(losses, n), type))
        raise ValueError(f"unknown loss {name!r}; sentence-transformers losses: {', '.join(known)}")
    return cls


def _distance_metric(name: str, enum_cls) -> Any:
    """'cosine', 'euclidean' or 'manhattan' as the loss's own metric (TripletDistanceMetric.COSINE,
    SiameseDistanceMetric.COSINE_DISTANCE, ...)."""
    key = str(name).strip().upper()
    for candidate in (key, f"{key}_DISTANCE"):
        if candidate in vars(enum_cls) or candidate in dir(enum_cls):
            return getattr(enum_cls, candidate)
    raise ValueError(f"unknown distance_metric {name!r}; choose cosine, euclidean or manhattan")


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
            raise ValueError("SoftmaxLoss needs the label set (data.labels, or the labels of the data report)")
        params.update(embedding_dimension=model.get_embedding_dimension(), num_labels=len(labels))
    if choice.name in {"GISTEmbedLoss", "CachedGISTEmbedLoss"}:
        if guide is None:
            raise ValueError(f"{choice.name} needs a guide model")
        params["guide"] = guide
    if choice.name == "DenoisingAutoEncoderLoss":
        params.setdefault("decoder_name_or_path", _transformer_path(model))
        params.setdefault("tie_encoder_decoder", True)
    try:
        loss = cls(model, **params)
    except TypeError as exc:
        raise ValueError(f"loss {choice.name} does not take the parameters {choice.params}: {exc}") from None
    if matryoshka_dims:
        dimension = model.get_embedding_dimension()
        dims = sorted({int(d) for d in matryoshka_dims}, reverse=True)
        if dims[0] > dimension or dims[-1] < 1:
            raise ValueError(f"loss.matryoshka_dims must lie in 1..{dimension} (the model's embedding size), got "
                             f"{matryoshka_dims}")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss


def supports_gather_across_devices(loss_name: str) -> bool:
    """True where the loss class takes ``gather_across_devices`` (the MNRL and GIST families)."""
    import inspect

    return "gather_across_devices" in inspect.signature(loss_class(loss_name).__init__).parameters


def _transformer_path(model) -> str:
    transformer = model[0]
    auto_model = getattr(transformer, "auto_model", None) or getattr(transformer, "model", None)
    path = getattr(getattr(auto_model, "config", None), "_name_or_path", None)
    if not path:
        raise ValueError("DenoisingAutoEncoderLoss needs the model's transformer folder or hub name for its decoder")
    return path


# --- fitting the split's columns to the loss ----------------------------------------------------


def tsdae_noise(text: str, rng: random.Random, ratio: float = TSDAE_DELETION_RATIO) -> str:
    """Delete ``ratio`` of the words, keeping at least one, in order (TSDAE's noise)."""
    words = text.split()
    if not words:
        return text
    keep = [w for w in words if rng.random() > ratio]
    return " ".join(keep or [rng.choice(words)])


def fit_columns(dataset, shape: str, loss_name: str, labels: list[str] | None = None, seed: int = 0):
    """The split as the loss takes it: the trainer passes the text columns in order, and the column
    called label or score to the loss."""
    if shape == "pair_binary" and loss_name in IN_BATCH_NEGATIVE_LOSSES:
        return dataset.filter(lambda row: int(row["label"]) == 1).remove_columns("label")
    if shape == "pair_class":
        if labels is None:
            raise ValueError("pair_class data needs its label set to train")
        index = {label: i for i, label in enumerate(labels)}

        def encode(row):
            label = row["label"]
            return {"label": label if isinstance(label, int) else index[str(label)]}
        return dataset.map(encode)
    if shape == "unlabeled":
        from datasets import Dataset

        texts = dataset["text"] if "text" in dataset.column_names else dataset["anchor"]  # SimCSE pairs made already
        if loss_name == "DenoisingAutoEncoderLoss":
            rng = random.Random(seed)
            return Dataset.from_dict({"damaged": [tsdae_noise(t, rng) for t in texts], "original": texts})
        return Dataset.from_dict({"anchor": texts, "positive": texts})
    return dataset


# --- the plan ------------------------------------------------------------------------------------


def write_plan(run: RunDir, config: RunConfig, n_train: int, shape: str | None = None) -> dict[str, Any]:
    shape = shape or config.data.shape
    chosen, alternatives, how = choose_loss(config, shape, n_train)
    plan = {
        "task_shape": config.data.shape,
        "train_shape": shape,
        "n_train": n_train,
        "loss": {**asdict(chosen), "chosen_by": how},
        "alternatives": [asdict(a) for a in alternatives],
        "in_batch_negatives": chosen.name in IN_BATCH_NEGATIVE_LOSSES,
        "matryoshka_dims": config.loss.matryoshka_dims,
        "model": config.model.name,
        "hyperparameters": asdict(config.train),
    }
    atomic_write_json(run.plan_path, plan)
    return plan


def read_plan_loss(plan: dict[str, Any]) -> LossChoice:
    loss = plan["loss"]
    return LossChoice(loss["name"], loss["reason"], loss.get("params", {}), loss.get("tunable", {}))


def explain(plan: dict[str, Any]) -> str:
    """The loss choice in words (Markdown), for the notebook."""
    loss = plan["loss"]
    shape = plan.get("train_shape", plan["task_shape"])
    lines = [f"**{loss['name']}** for the `{shape}` training data ({plan['n_train']:,} rows), "
             f"{loss['chosen_by']}.", "", loss["reason"]]
    if loss.get("params"):
        lines += ["", f"Parameters: `{loss['params']}`"]
    if loss.get("tunable"):
        lines += ["", "Worth tuning: " + "; ".join(f"`{k}`: {v}" for k, v in loss["tunable"].items())]
    if plan.get("matryoshka_dims"):
        lines += ["", f"Wrapped in MatryoshkaLoss over the sizes {plan['matryoshka_dims']}: the leading dimensions "
                      "alone make a usable smaller embedding."]
    if plan.get("in_batch_negatives"):
        lines += ["", "In-batch negatives: batches are drawn without duplicate texts, and a larger "
                      "`train.batch_size` gives every text more negatives."]
    if plan["alternatives"]:
        lines += ["", "Alternatives (set `loss.name` to use one):"]
        lines += [f"- **{a['name']}**: {a['reason']}" for a in plan["alternatives"]]
    return "\n".join(lines)
