"""Help text on the panels' controls, shown on hover in JupyterLab 4, and the help that depends on
the machine (what ``auto`` precision resolves to here).

ipywidgets 8's ``tooltip`` reaches the page only for some views (controls 2.0, JupyterLab 4): a slider
puts it on its label, but a Dropdown or a text box with a description drops it
(jupyter-widgets/ipywidgets#3964), and a label without one gets ``title="null"``. So the help is
also written into the description itself, as the ``title`` of an HTML span (``description_allow_html``;
the widget manager's sanitizer keeps a span's title). A Checkbox copies its description into its
own ``title`` as raw text, so a checkbox keeps no description: its label is an HTML widget beside it.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from .. import shapes
from ..core.errors import SttuneError
from ..core.hardware import pick_device, pick_precision

HELP_CLASS = "sttune-help"  # the span that carries the help; a stable selector for the browser test


def with_help(control: widgets.DOMWidget, help_text: str) -> widgets.Widget:
    """Give ``control`` its help on hover; returns what to lay out (the control, or for a checkbox
    the checkbox with its label beside it)."""
    if not help_text.strip():
        raise ValueError(f"{control.description!r}: every control needs help text")  # a bug in the caller
    control.tooltip = help_text
    label = help_span(control.description, help_text)
    if isinstance(control, widgets.Checkbox):
        control.description = ""
        control.indent = False
        control.layout.width = "auto"
        return widgets.HBox([control, widgets.HTML(label)])
    control.description = label
    control.description_allow_html = True
    return control


def help_span(label: str, help_text: str) -> str:
    return (f'<span class="{HELP_CLASS}" title="{html.escape(help_text, quote=True)}">'
            f"{html.escape(label, quote=False)}</span>")


def precision_help(device_preference: str = "auto") -> str:
    """train.precision's help, naming what ``auto`` picks on this machine and why."""
    precision, why = _auto_precision(device_preference)
    here = f"here {precision}: {why}" if precision else why
    return f"auto: bf16 or fp16 where the hardware trains faster in it, else fp32 ({here}); the others force one"


def validation_precision_help(device_preference: str = "auto") -> str:
    """train.validation_precision's help, naming the precision validation encodes in here under ``auto``."""
    precision, why = _auto_precision(device_preference)
    encodes = "bf16" if precision == "bf16" else "fp32"
    here = f"here {encodes}, as training runs in {precision}" if precision else why
    return (f"auto: validation and model selection encode in bf16 where training runs in bf16 ({here}); "
            "fp32 forces fp32")


def _auto_precision(device_preference: str) -> tuple[str | None, str]:
    """(what train.precision=auto picks, why); (None, why not) where the device cannot be told."""
    try:
        device = pick_device(device_preference)
    except SttuneError as exc:
        return None, f"unknown here: {exc}"
    return pick_precision("auto", device)


def shape_recipe_help(shape: str | None) -> str:
    """What train.shape_recipe does for the run's data shape (shapes/: its measured ``recipe``)."""
    recipe = shapes.get(shape).recipe if shape in shapes.REGISTRY else None
    if recipe is None:
        return ("stage 02 fills a shape's measured settings where you leave the defaults"
                + (f"; {shape} has none: its defaults are its recipe" if shape else ""))
    settings = ", ".join(f"{key.split('.')[-1]} {value!r}" for key, value in recipe.settings.items())
    return (f"stage 02 fills {shape}'s measured settings where you leave the defaults: {settings} "
            f"(measured with {' and '.join(recipe.losses)}; a run that trains with another loss, named or "
            "recommended, keeps its own)")
