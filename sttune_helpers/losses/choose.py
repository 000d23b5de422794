"""The loss a run uses: the shape's recommendation for this size of data and batch, or the one set
in the config (checked against the shape), with its parameters and the config's temperature."""

from __future__ import annotations

import math

from .. import shapes
from ..config import RunConfig
from ..shapes import LossChoice
from .errors import LossError
from .registry import SCALED_LOSSES, TEMPERATURE_LOSSES, loss_choices, loss_class, registered_for


def recommend(shape: str, n_train: int, batch_size: int, anchored: bool = False) -> tuple[LossChoice, str]:
    """The registered default for ``shape``, or a better fit for this size of data (and, where
    ``anchored``, for train.general_anchor), with why."""
    loss_choices(shape)  # an unknown shape: the error names the known ones
    return shapes.get(shape).recommend_loss(n_train, batch_size, anchored)


def choose_loss(config: RunConfig, shape: str | None = None,
                n_train: int = 0) -> tuple[LossChoice, list[LossChoice], str]:
    """The loss this run will use, the alternatives, and how the choice was made."""
    shape = shape or config.data.shape
    choices = loss_choices(shape)
    if config.loss.name is None:
        chosen, how = recommend(shape, n_train, config.train.batch_size, anchored=bool(config.train.general_anchor))
        how = f"recommended: {how}"
    else:
        named = [c for c in choices if c.name == config.loss.name]
        if named:
            chosen = named[0]
        else:
            loss_class(config.loss.name)  # raises with the list of known losses if there is none
            fitting = registered_for(config.loss.name)
            if fitting:
                raise LossError(f"loss.name={config.loss.name} does not fit {shape} training data (it is for "
                                f"{', '.join(fitting)}); the losses for {shape}: "
                                f"{', '.join(c.name for c in choices)}")
            chosen = LossChoice(config.loss.name, "chosen in the config; not among this shape's registered losses")
        how = "set in the config (loss.name)"
    params = {**chosen.params, **config.loss.params}
    try:
        if config.loss.temperature is not None:
            params.update(temperature_params(chosen.name, config.loss.temperature))
        check_params(chosen.name, config.loss.params)
    except LossError as exc:
        if config.loss.name is None:  # the user may have tuned them for another loss than the one recommended
            raise LossError(f"{exc} ({chosen.name} is {how}; set loss.name to the loss they are for)") from None
        raise
    chosen = LossChoice(chosen.name, chosen.reason, params, chosen.tunable)
    return chosen, [c for c in choices if c.name != chosen.name], how


def check_params(loss_name: str, params: dict) -> None:
    """Refuse loss.params that the loss's constructor does not take, before any training."""
    import inspect

    try:
        signature = inspect.signature(loss_class(loss_name).__init__)
    except (LossError, TypeError, ValueError):  # an unknown class is named elsewhere; no signature: not checkable
        return
    accepted = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(params) - set(accepted) - {"self"})
    if unknown:
        takes = ", ".join(name for name in accepted if name not in ("self", "model")) or "nothing"
        verb = "does" if len(unknown) == 1 else "do"
        raise LossError(f"loss.params {', '.join(unknown)} {verb} not apply to {loss_name}; it takes {takes}")


def temperature_params(loss_name: str, temperature: float) -> dict[str, float]:
    """loss.temperature as the loss's own parameter: ``scale = 1 / temperature`` or ``temperature``."""
    if not (isinstance(temperature, (int, float)) and 0 < temperature <= 10 and math.isfinite(temperature)):
        raise LossError(f"loss.temperature must be a number in (0, 10], got {temperature!r}")
    if loss_name in SCALED_LOSSES:
        return {"scale": 1.0 / temperature}
    if loss_name in TEMPERATURE_LOSSES:
        return {"temperature": float(temperature)}
    raise LossError(f"loss.temperature does not apply to {loss_name}; it applies to "
                    f"{', '.join(sorted(SCALED_LOSSES | TEMPERATURE_LOSSES))}")
