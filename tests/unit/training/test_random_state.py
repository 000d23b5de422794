"""A validation and a checkpoint save leave the next training step's random draws as they would be
without them (the same seed trains the same model however often the run validates)."""

import random

import numpy as np
import torch

from sttune_helpers.training.random_state import RandomStateGuard


def draws():
    return torch.rand(4).tolist(), random.random(), np.random.rand()


def test_the_next_step_draws_what_it_would_draw_without_the_validation():
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    draws()  # a training step
    expected = draws()  # the step after it, with nothing in between

    guard = RandomStateGuard()
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    draws()
    guard.on_step_end(None, None, None)
    draws()  # the validation draws (a sampler, a probe)
    guard.on_evaluate(None, None, None)
    draws()  # the checkpoint save draws too
    guard.on_save(None, None, None)
    assert draws() == expected


def test_without_a_step_yet_nothing_is_restored():
    torch.manual_seed(1)
    guard = RandomStateGuard()
    before = torch.get_rng_state()
    guard.on_evaluate(None, None, None)
    assert torch.equal(torch.get_rng_state(), before)
