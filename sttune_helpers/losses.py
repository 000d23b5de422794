"""Loss selection: task shape -> recommended loss and alternatives, each with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .config import RunConfig
from .rundir import RunDir, atomic_write_json


@dataclass(frozen=True)
class LossChoice:
    name: str  # a sentence-transformers loss class name
    reason: str
    params: dict[str, Any] = field(default_factory=dict)


LOSS_REGISTRY: dict[str, list[LossChoice]] = {
    "pair_score": [
        LossChoice(
            "CoSENTLoss",
            "Optimises the ranking of all pairs in a batch by their gold scores, which is what Spearman "
            "correlation measures; it usually beats cosine regression on STS-style data for the same budget.",
        ),
        LossChoice(
            "CosineSimilarityLoss",
            "Regresses each pair's cosine similarity onto its gold score (MSE); the classic, robust STS recipe, "
            "but it spends effort on absolute values that a ranking metric ignores.",
        ),
        LossChoice(
            "AnglELoss",
            "CoSENT on angle differences, which keeps gradients alive where cosines saturate near 1; worth a "
            "try when many pairs are near-paraphrases.",
        ),
    ],
}


def loss_choices(shape: str) -> list[LossChoice]:
    if shape not in LOSS_REGISTRY:
        raise ValueError(f"no losses registered for task shape {shape!r}; known shapes: {', '.join(LOSS_REGISTRY)}")
    return LOSS_REGISTRY[shape]


def choose_loss(config: RunConfig) -> tuple[LossChoice, list[LossChoice], str]:
    """The loss this run will use, the alternatives, and how the choice was made."""
    choices = loss_choices(config.data.shape)
    if config.loss.name is None:
        chosen, how = choices[0], f"the default for the {config.data.shape} shape"
    else:
        named = [c for c in choices if c.name == config.loss.name]
        if named:
            chosen = named[0]
        else:
            _loss_class(config.loss.name)  # raises with the list of known losses if there is none
            chosen = LossChoice(config.loss.name, "chosen in the config; not among this shape's registered losses")
        how = "set in the config (loss.name)"
    params = {**chosen.params, **config.loss.params}
    chosen = LossChoice(chosen.name, chosen.reason, params)
    return chosen, [c for c in choices if c.name != chosen.name], how


def _loss_class(name: str):
    from sentence_transformers.sentence_transformer import losses

    cls = getattr(losses, name, None)
    if not isinstance(cls, type):
        known = sorted(n for n in dir(losses) if n.endswith("Loss") and isinstance(getattr(losses, n), type))
        raise ValueError(f"unknown loss {name!r}; sentence-transformers losses: {', '.join(known)}")
    return cls


def build_loss(model, choice: LossChoice):
    cls = _loss_class(choice.name)
    try:
        return cls(model, **choice.params)
    except TypeError as exc:
        raise ValueError(f"loss {choice.name} does not take the parameters {choice.params}: {exc}") from None


def write_plan(run: RunDir, config: RunConfig, n_train: int) -> dict[str, Any]:
    chosen, alternatives, how = choose_loss(config)
    plan = {
        "task_shape": config.data.shape,
        "n_train": n_train,
        "loss": {**asdict(chosen), "chosen_by": how},
        "alternatives": [asdict(a) for a in alternatives],
        "model": config.model.name,
        "hyperparameters": asdict(config.train),
    }
    atomic_write_json(run.plan_path, plan)
    return plan


def read_plan_loss(plan: dict[str, Any]) -> LossChoice:
    loss = plan["loss"]
    return LossChoice(loss["name"], loss["reason"], loss.get("params", {}))


def explain(plan: dict[str, Any]) -> str:
    """The loss choice in words (Markdown), for the notebook."""
    loss = plan["loss"]
    lines = [f"**{loss['name']}** for the `{plan['task_shape']}` shape ({plan['n_train']:,} training rows), "
             f"{loss['chosen_by']}.", "", loss["reason"]]
    if loss.get("params"):
        lines += ["", f"Parameters: `{loss['params']}`"]
    if plan["alternatives"]:
        lines += ["", "Alternatives (set `loss.name` to use one):"]
        lines += [f"- **{a['name']}**: {a['reason']}" for a in plan["alternatives"]]
    return "\n".join(lines)
