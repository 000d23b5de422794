"""Notebook 04's slider over the weight-interpolation sweep: the test and reference scores at each
alpha, and a button that saves the chosen mix as the final model."""

from __future__ import annotations

from typing import Any, Callable

import ipywidgets as widgets
from IPython.display import display

from .config_panel import _STYLE, _WIDE, _escape
from .help import with_help

SLIDER_HELP = ("the share of the fine-tuned weights in the mix: 0 is the base model, 1 the fine-tuned one. "
               "Lower values give back task accuracy (test) for general ability (reference): pick the lowest "
               "alpha whose test score you can accept")
SAVE_HELP = ("save this mix as model_final/ beside model/; model/ is left as it is. Test scored the sweep: "
             "a mix chosen here has been chosen on test, so its test score is no longer an unbiased estimate")


def interpolation_picker(rows: list[dict[str, Any]], save: Callable[[float], Any], interactive: bool = True,
                         suggested: float | None = None) -> widgets.VBox | None:
    """A slider over the interpolation sweep's alphas that shows the test and reference scores at
    each, and a button that saves the chosen mix (``save(alpha)``). None in headless runs."""
    if not interactive or not rows:
        return None
    alphas = [row["alpha"] for row in rows]
    by_alpha = {row["alpha"]: row for row in rows}
    slider = widgets.SelectionSlider(options=alphas, value=suggested if suggested in by_alpha else alphas[-1],
                                     description="alpha (0 base, 1 fine-tuned)", style=_STYLE, layout=_WIDE)
    slider = with_help(slider, SLIDER_HELP)
    scores = widgets.HTML()
    button = widgets.Button(description="Save as final model", button_style="primary", tooltip=SAVE_HELP)
    status = widgets.HTML()
    progress = widgets.Output()

    def describe(alpha: float) -> str:
        row = by_alpha[alpha]
        task = "n/a" if row["task"] is None else f"{row['task']:.4f}"
        reference = "n/a" if row["reference"] is None else f"{row['reference']:.4f}"
        return f"test {task} · reference {reference}"

    def on_change(change):
        scores.value = describe(change["new"])

    def on_save(_):
        # A button's callback runs outside any cell: without the Output, what saving prints (the
        # progress bar) would go to JupyterLab's Log Console instead of beside the button.
        progress.clear_output()
        button.disabled = True
        saved = None
        try:
            with progress:  # under IPython an error shows here, and goes no further
                saved = save(slider.value)
        finally:
            button.disabled = False
        status.value = (f"saved alpha {slider.value} to {_escape(str(saved))}" if saved is not None
                        else "<span style='color:#b00020'>not saved: the error is shown beside the button</span>")

    slider.observe(on_change, names="value")
    button.on_click(on_save)
    scores.value = describe(slider.value)
    box = widgets.VBox([slider, scores, widgets.HBox([button, progress, status])])
    display(box)
    return box
