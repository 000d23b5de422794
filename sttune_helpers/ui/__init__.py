"""JupyterLab widgets bound to a RunConfig (headless runs skip them).

config_panel.py          notebooks 02 and 03: a control per setting; the training panel's Train button
sweep_panel.py           notebook 03: the sweep's trials, storage and search ranges; Run sweep
interpolation_picker.py  notebook 04: pick the base / fine-tuned mix and save it as the final model
help.py                  help text on the controls as JupyterLab shows it on hover; what `auto` precision is here
"""

from .config_panel import ConfigPanel, dom_class, show_panel, training_panel
from .interpolation_picker import interpolation_picker
from .sweep_panel import SweepPanel, sweep_panel

__all__ = ["ConfigPanel", "dom_class", "show_panel", "training_panel", "interpolation_picker", "SweepPanel",
           "sweep_panel"]
