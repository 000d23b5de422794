"""Notebook 03's sweep panel: the number of trials, the storage and a low / high slider for each
numeric key of ``sweep.space``; Run sweep runs the study and shows its results."""

from __future__ import annotations

import math
from pathlib import Path

import ipywidgets as widgets
from IPython.display import display

from ..config import ConfigError, RunConfig
from ..rundir import RunDir
from .config_panel import _STYLE, _WIDE, _escape, control_bounds
from .help import with_help


class SweepPanel:
    """The number of trials, the storage, and low / high sliders for each numeric key of
    ``config.sweep.space``, editing ``config.sweep`` in place; Run sweep runs it and shows the trials
    table and the parameter-importance plot. ``controls`` holds "trials", "storage" and, per numeric
    key, "KEY.low" and "KEY.high", each with its help on hover. A change that would make the space
    invalid (low above high) is named in the status line and not applied."""

    def __init__(self, config: RunConfig, name: str, runs_dir: str | Path, data_from: RunDir | None = None):
        from ..config import SWEEP_SPACE_EXAMPLE

        self.config = config
        self.name = name
        self.runs_dir = Path(runs_dir)
        self.data_from = data_from
        self.result = None  # the last sweep.SweepResult
        self.status = widgets.HTML()
        self.output = widgets.Output()
        trials_min, trials_max = control_bounds("sweep.trials", high=10_000)
        self.controls: dict[str, widgets.ValueWidget] = {
            "trials": widgets.BoundedIntText(description="trials", min=trials_min, max=trials_max,
                                             value=config.sweep.trials, style=_STYLE),
            "storage": widgets.Text(description="storage", value=config.sweep.storage or "", style=_STYLE,
                                    placeholder=f"sqlite in {self.runs_dir / name}; or any SQLAlchemy URL",
                                    layout=_WIDE, continuous_update=False),
        }
        self.controls["trials"].observe(lambda change: setattr(self.config.sweep, "trials", change["new"]),
                                        names="value")
        self.controls["storage"].observe(
            lambda change: setattr(self.config.sweep, "storage", change["new"].strip() or None), names="value")
        rows: list[widgets.Widget] = [
            with_help(self.controls["trials"], "trials to run, each a training run of its own; a study that "
                      "already exists in the storage gets this many more"),
            with_help(self.controls["storage"], f"where Optuna keeps the study; empty: sqlite in "
                      f"{self.runs_dir / name}. Machines given one URL (and study name) share the study"),
        ]
        for param in RunConfig.search_space(config.sweep.space, "sweep panel"):
            if param.kind == "categorical":
                rows.append(widgets.HTML(f"<code>{_escape(param.key)}</code>: one of "
                                         f"{_escape(', '.join(str(c) for c in param.choices))}"))
                continue
            pair = []
            for bound in ("low", "high"):
                control = _range_slider(param, bound)
                with_help(control, _bound_help(param, bound))
                control.observe(lambda change, k=param.key, b=bound: self._set_bound(k, b, change["new"]),
                                names="value")
                self.controls[f"{param.key}.{bound}"] = control
                pair.append(control)
            rows.append(widgets.HBox([widgets.HTML(f"<code>{_escape(param.key)}</code>",
                                                   layout=widgets.Layout(width="220px")), *pair]))
        self.run_button = widgets.Button(description="Run sweep", icon="play", button_style="primary",
                                         disabled=not config.sweep.space, tooltip="run the trials with these ranges")
        self.run_button.on_click(lambda _: self.run())
        if not config.sweep.space:
            example = _escape(SWEEP_SPACE_EXAMPLE)
            self.status.value = (f"No <code>sweep.space</code> in the config: name the settings to search, e.g. "
                                 f"<pre>{example}</pre>")
        self.widget = widgets.VBox([*rows, self.status, self.run_button, self.output])

    def _set_bound(self, key: str, bound: str, value: float) -> None:
        param = next(p for p in RunConfig.search_space(self.config.sweep.space, "sweep panel") if p.key == key)
        spec = dict(self.config.sweep.space[key])
        spec[bound] = int(round(value)) if param.kind == "int" else float(value)
        try:
            RunConfig.search_space({key: spec}, "sweep panel")
        except ConfigError as exc:
            self.status.value = f"<span style='color:#b00020'>Not applied: {_escape(str(exc))}</span>"
            return
        self.config.sweep.space[key] = spec
        self.status.value = ""

    def run(self):
        """Run the sweep with the panel's settings; shows the trials table and the importance plot."""
        from ..runner import sweep

        self.run_button.disabled = True
        self.output.clear_output()
        try:
            with self.output:
                self.result = sweep.run_sweep(self.config, self.name, self.runs_dir, data_from=self.data_from)
                display(sweep.trials_table(self.result))
                figure = sweep.plot_importance(self.result, path=self.result.root / "importance.png")
                if figure is not None:
                    display(figure)
        finally:
            self.run_button.disabled = False
        return self.result

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _range_slider(param, bound: str) -> widgets.ValueWidget:
    """A slider for one end of a range, spanning the range and as much again on each side."""
    low, high = param.low, param.high
    value = low if bound == "low" else high
    common = {"description": bound, "value": value, "style": _STYLE, "continuous_update": False}
    if param.log:
        exponents = (math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
        return widgets.FloatLogSlider(base=10, min=exponents[0], max=exponents[1], step=0.05, readout_format=".2e",
                                      **common)
    span = high - low
    minimum = max(0, low - span) if low >= 0 else low - span
    if param.kind == "int":
        return widgets.IntSlider(min=int(minimum), max=int(high + span), step=int(param.step or 1), **common)
    return widgets.FloatSlider(min=minimum, max=high + span, step=param.step or span / 100, readout_format=".3g",
                               **common)


def _bound_help(param, bound: str) -> str:
    """What one end of a key's range means for the values the trials sample."""
    end = "smallest" if bound == "low" else "largest"
    if param.log:
        how = "on a log scale (each power of ten as likely)"
    elif param.step:
        how = f"in steps of {param.step:g} from low"
    else:
        how = "uniformly between low and high"
    return f"the {end} value of {param.key} that trials try; they sample it {how}"


def sweep_panel(config: RunConfig, name: str, runs_dir: str | Path, data_from: RunDir | None = None,
                interactive: bool = True) -> SweepPanel | None:
    """Display the sweep panel in a notebook and return it; headless runs (interactive=False) get nothing."""
    if not interactive:
        return None
    panel = SweepPanel(config, name, runs_dir, data_from=data_from)
    display(panel.widget)
    return panel
