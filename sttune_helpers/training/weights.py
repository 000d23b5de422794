"""Arithmetic on model weights: snapshots of a model's state, uniform averages of snapshots (a
"model soup"), and interpolation toward the base weights (WiSE-FT)."""

from __future__ import annotations

import copy
from typing import Sequence

from .errors import TrainingError

State = dict  # parameter name -> tensor


def snapshot(model) -> State:
    """A detached CPU copy of the model's weights (survives further training steps)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def same_weights(first: State, second: State) -> bool:
    import torch

    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def check_same_layout(first: State, second: State, first_name: str, second_name: str) -> None:
    differing = sorted(set(first) ^ set(second))
    if differing:
        raise TrainingError(f"the {first_name} and {second_name} models differ in their modules, so their weights "
                            f"cannot be mixed: {', '.join(differing[:5])}")
    for key, value in second.items():
        if first[key].shape != value.shape:
            raise TrainingError(f"weight {key} has shape {tuple(first[key].shape)} in the {first_name} model and "
                                f"{tuple(value.shape)} in the {second_name} one: they cannot be mixed")


def mix_states(base: State, tuned: State, alpha: float) -> State:
    """(1 - alpha) * base + alpha * tuned for floating-point weights; alpha 0 gives the base weights,
    1 the tuned ones (torch.lerp is exact at both ends). Integer buffers come from ``tuned``."""
    import torch

    if not 0.0 <= alpha <= 1.0:
        raise TrainingError(f"interpolation alpha must be within 0..1, got {alpha}")
    check_same_layout(base, tuned, "base", "fine-tuned")
    mixed = {}
    for key, value in tuned.items():
        if value.is_floating_point():
            other = base[key].to(value.device)
            mixed[key] = torch.lerp(other.float(), value.float(), alpha).to(value.dtype)
        else:
            mixed[key] = value
    return mixed


def average_states(states: Sequence[State]) -> State:
    """The uniform average of several snapshots of one model (Wortsman et al. 2022's uniform soup)."""
    if not states:
        raise TrainingError("a model soup needs at least one snapshot")
    for other in states[1:]:
        check_same_layout(states[0], other, "first", "later")
    averaged = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            total = sum(state[key].float() for state in states)
            averaged[key] = (total / len(states)).to(value.dtype)
        else:
            averaged[key] = states[-1][key]
    return averaged


def with_weights(model, state: State):
    """A copy of ``model`` carrying ``state``'s weights."""
    copied = copy.deepcopy(model)
    copied.load_state_dict(state)
    return copied


def interpolate_models(base, tuned, alpha: float):
    """A copy of ``tuned`` whose weights are (1 - alpha) * base + alpha * tuned. Both models must
    have the same architecture: the same modules with the same parameter shapes."""
    return with_weights(tuned, mix_states(base.state_dict(), tuned.state_dict(), alpha))
