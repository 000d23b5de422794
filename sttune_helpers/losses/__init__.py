"""Loss selection: the training data's shape -> the recommended loss and its alternatives, each with
its reason and parameters; building the chosen loss on a model; fitting the split's columns to it.

    registry.py  loss families (scaled, temperature, in-batch negatives, guided), classes by name, each shape's losses
    choose.py    the run's loss: the shape's recommendation or the config's, with its parameters and temperature
    build.py     the loss module on a model (MatryoshkaLoss wrapping)
    regularised.py  L2SPLoss: the task loss + weight x squared distance from the starting weights (imports torch)
    columns.py   the split's columns as the loss takes them (asks the shape; TSDAE's noise is in shapes/unlabeled.py)
    plan.py      plan.json: write, read back, explain; the train split's loss shape
    errors.py    LossError

The bake-off (train each candidate briefly) trains, so it sits above in ``training/bake_off.py``.
"""

from ..shapes import LossChoice
from .build import build_loss
from .choose import choose_loss, recommend, temperature_params
from .columns import fit_columns
from .errors import LossError
from .plan import explain, loss_shape, read_plan_loss, write_plan
from .registry import GUIDED_LOSSES, IN_BATCH_NEGATIVE_LOSSES, loss_choices, loss_class, supports_gather_across_devices

__all__ = ["LossChoice", "LossError", "GUIDED_LOSSES", "IN_BATCH_NEGATIVE_LOSSES", "build_loss", "choose_loss",
           "explain", "fit_columns", "loss_choices", "loss_class", "loss_shape", "read_plan_loss", "recommend",
           "supports_gather_across_devices", "temperature_params", "write_plan"]
