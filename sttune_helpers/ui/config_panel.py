"""The config panel of notebooks 02 and 03: ipywidgets controls bound to a RunConfig.

Every control edits one dotted config key. A change is checked by ``RunConfig.with_overrides`` (the
same typing the YAML files and ``-p key=value`` get) before it reaches the config, so the config is
always valid: an invalid entry is named in the panel's status line and the config keeps its value.
Headless runs (papermill) skip the panel: ``show_panel(..., interactive=False)`` does nothing.
The controls' bounds come from the settings' range table (config/ranges.py, :func:`control_bounds`).
"""

from __future__ import annotations

import html
import json
import math
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import yaml
from IPython.display import display

from ..config import RANGES, ConfigError, ModelConfig, RunConfig, TrainConfig
from ..config.ranges import get_key, set_key
from ..core.errors import SttuneError
from ..core.io import read_json
from ..losses import loss_choices, recommend
from ..rundir import RunDir
from .help import precision_help, shape_recipe_help, validation_precision_help, with_help

BATCH_SIZES = tuple(2**power for power in range(2, 10))  # 4 .. 512
LOSS_DEFAULT_TEMPERATURE = 0.05  # what the scaled losses use when loss.temperature is None (scale 20)

_STYLE = {"description_width": "initial"}
_WIDE = widgets.Layout(width="520px")
# The validation corpus entry's named choices (ui text for "auto" and None).
CORPUS_AUTO, CORPUS_WHOLE = "auto", "whole corpus"


def literal_options(section: type, field_name: str) -> tuple[Any, ...]:
    """The allowed values of a Literal-typed config field, e.g. (ModelConfig, "pooling")."""
    hint = typing.get_type_hints(section)[field_name]
    if typing.get_origin(hint) is not typing.Literal:
        raise TypeError(f"{section.__name__}.{field_name} is not a Literal field")
    return typing.get_args(hint)


def control_bounds(key: str, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """A control's (min, max) for ``key``: the range table's bound where the table has a closed end
    (train.warmup_ratio's 0, train.max_steps' 1), else the practical limit ``low`` / ``high`` of the
    control, which must lie within the range (an open end such as learning_rate's > 0, or no end)."""
    allowed = RANGES[key]
    if allowed.low is not None and not allowed.low_open:
        low = allowed.low
    if allowed.high is not None and not allowed.high_open:
        high = allowed.high
    for bound in (low, high):
        if bound is None or not allowed.contains(bound):
            raise ValueError(f"{key}: a control bound {bound!r} is outside the setting's range "
                             f"({allowed.describe()}) or missing")  # a bug in this module
    return low, high


def log_bounds(key: str, value: float | None, low: float, high: float) -> tuple[float, float]:
    """A FloatLogSlider's exponent range for ``key``: the practical ``low``..``high`` (a log scale
    reaches no 0), which must lie within the key's range, widened to the config's value."""
    allowed = RANGES[key]
    if not (allowed.contains(low) and allowed.contains(high)):
        raise ValueError(f"{key}: a slider range {low!r}..{high!r} is outside the setting's range "
                         f"({allowed.describe()})")  # a bug in this module
    return _log_bounds(value, low, high)


def log_slider(description: str, key: str, value: float | None, low: float, high: float, *, step: float,
               readout_format: str, start: float | None = None) -> widgets.FloatLogSlider:
    """A wide base-10 log slider for ``key`` over :func:`log_bounds`, at ``start`` until the config sets it."""
    low_exponent, high_exponent = log_bounds(key, value, low, high)
    extra = {} if start is None else {"value": start}
    return widgets.FloatLogSlider(description=description, base=10, min=low_exponent, max=high_exponent, step=step,
                                  readout_format=readout_format, layout=_WIDE, **extra)


class InvalidEntry(SttuneError, ValueError):
    """Text in a control that cannot become a config value; the message says what to type."""


@dataclass
class _Binding:
    """One config key, its value control and, for an Optional key, the checkbox that means None."""

    key: str
    control: widgets.ValueWidget
    to_config: Callable[[Any], Any]  # control value -> config value; raises InvalidEntry
    to_control: Callable[[Any], Any]  # config value (not None) -> control value
    unset: widgets.Checkbox | None = None
    shown: widgets.Widget | None = None  # what the panel lays out for the control (with its label)

    def read(self) -> Any:
        if self.unset is not None and self.unset.value:
            return None
        return self.to_config(self.control.value)

    def row(self) -> widgets.Widget:
        shown = self.shown or self.control
        return widgets.HBox([shown, self.unset]) if self.unset is not None else shown

    def show_unset(self) -> None:
        """An unset key's control is greyed out: its value is not in effect (max steps under "no cap")."""
        if self.unset is not None:
            self.control.disabled = self.unset.value


class ConfigPanel:
    """Controls for the loss and the training hyperparameters, editing ``config`` in place.

    ``controls["train.learning_rate"]`` is the control of a key; ``unset_boxes[key]`` is the
    checkbox of an Optional key (checked = None). ``widget`` is what to display.
    """

    def __init__(self, config: RunConfig, shape: str, run: RunDir | None = None,
                 on_train: Callable[[RunConfig], Any] | None = None):
        self._config = config
        self.shape = shape
        self.run = run
        self.on_train = on_train
        self.choices = loss_choices(shape)
        self.recommended = self._recommended_loss()
        self.errors: dict[str, str] = {}  # key -> why its current entry was not applied
        self._bindings: dict[str, _Binding] = {}
        self._syncing = False  # True while config values are pushed into the controls

        self.loss_reason = widgets.HTML()
        self.status = widgets.HTML()
        self.message = widgets.HTML()  # the outcome of Save / Train
        self.summary = widgets.HTML()  # the settings as the config holds them now, following every change
        self.summary.add_class("sttune-config-summary")
        self.output = widgets.Output()  # what on_train prints, shown under the panel
        self.save_button = widgets.Button(description="Save config", icon="save", disabled=run is None,
                                          tooltip="write config.yaml into the run directory")
        self.train_button = widgets.Button(description="Train", icon="play", button_style="primary",
                                           disabled=on_train is None, tooltip="train with these settings")
        self.save_button.on_click(lambda _: self.save())
        self.train_button.on_click(lambda _: self.train())
        # Stable selectors for the browser test (tests/test_browser.py): labels are for people.
        self.save_button.add_class("sttune-save-config")
        self.train_button.add_class("sttune-train")
        self.message.add_class("sttune-panel-message")

        sections = {
            "Loss": self._loss_controls(),
            "Optimisation": self._optimisation_controls(),
            "Validation": self._validation_controls(),
            "Regularisation": self._regularisation_controls(),
            "Model": self._model_controls(),
        }
        self.tabs = widgets.Tab(children=[widgets.VBox(rows) for rows in sections.values()], titles=list(sections))
        self.widget = widgets.VBox([self.tabs, self.status, widgets.HBox([self.save_button, self.train_button]),
                                    self.message, self.summary, self.output])
        for binding in self._bindings.values():
            binding.control.observe(lambda change, b=binding: self._on_control_change(b, change), names="value")
            if binding.unset is not None:
                binding.unset.observe(lambda _, b=binding: self._on_unset_change(b), names="value")
        self.controls["loss.name"].observe(lambda _: self._show_loss_reason(), names="value")
        # The anchor changes which loss is recommended for scored pairs (losses/choose.py).
        self.controls["train.general_anchor"].observe(lambda _: self._follow_recommendation(), names="value")
        self.unset_boxes["train.general_anchor"].observe(lambda _: self._follow_recommendation(), names="value")
        self.refresh()

    # --- the config ------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return self._config

    @config.setter
    def config(self, config: RunConfig) -> None:
        self._config = config
        self.refresh()

    @property
    def controls(self) -> dict[str, widgets.ValueWidget]:
        return {key: binding.control for key, binding in self._bindings.items()}

    @property
    def unset_boxes(self) -> dict[str, widgets.Checkbox]:
        return {key: b.unset for key, b in self._bindings.items() if b.unset is not None}

    def refresh(self) -> None:
        """Show the config's current values in the controls (after the config was changed elsewhere)."""
        self._syncing = True
        try:
            for key, binding in self._bindings.items():
                value = get_key(self._config, key)
                if binding.unset is not None:
                    binding.unset.value = value is None
                if value is not None or binding.unset is None:
                    _set_control(binding.control, binding.to_control(value))
                binding.show_unset()
        finally:
            self._syncing = False
        self.errors.clear()
        self._show_status()
        self._show_loss_reason()
        self._show_summary()

    def _on_unset_change(self, binding: _Binding) -> None:
        binding.show_unset()
        self._apply(binding)

    def _on_control_change(self, binding: _Binding, change: dict | None = None) -> None:
        if self._syncing:
            return
        if change is not None and _only_snapped(binding.control, change["old"], change["new"]):
            # The browser drew the slider and sent back the value put on its step grid: not a move.
            return
        if binding.unset is not None and binding.unset.value:
            # Moving the control means "use this value": leave the None setting without a second write.
            self._syncing = True
            binding.unset.value = False
            binding.show_unset()
            self._syncing = False
        self._apply(binding)

    def _apply(self, binding: _Binding) -> None:
        """Check the control's value as an override; apply it, or name what is wrong and keep the old value."""
        if self._syncing:
            return
        try:
            checked = self._config.with_overrides({binding.key: binding.read()})
        except (InvalidEntry, ConfigError) as exc:
            self.errors[binding.key] = str(exc)
        else:
            self.errors.pop(binding.key, None)
            set_key(self._config, binding.key, get_key(checked, binding.key))
        self._show_status()
        self._show_summary()

    def _show_summary(self) -> None:
        """The sections the panel edits as the config holds them now; replaces a static `config.train`
        under the panel, which went stale at the first change. One wrapped line per section, so that it
        stays short and in view (a collapsible box would close at every update)."""
        config = self._config.to_dict()
        lines = [f"<b>seed</b>: <code>{config['seed']}</code>"]
        for section in ("loss", "model", "train"):
            pairs = " · ".join(f"{_escape(name)} <code>{_escape(_summary_value(value))}</code>"
                               for name, value in config[section].items())
            lines.append(f"<b>{section}</b>: {pairs}")
        self.summary.value = ("<div style='font-size:90%;line-height:1.5'><i>The config now (follows the panel):</i>"
                              f"<br>{'<br>'.join(lines)}</div>")

    def _show_status(self) -> None:
        if not self.errors:
            self.status.value = ""
            return
        items = "".join(f"<li><code>{_escape(key)}</code>: {_escape(text)}</li>"
                        for key, text in self.errors.items())
        self.status.value = (f"<div style='color:#b00020'>Not applied (the config keeps its previous value):"
                             f"<ul>{items}</ul></div>")

    def _show_loss_reason(self) -> None:
        name = self.controls["loss.name"].value
        choice = next((c for c in self.choices if c.name == name), None)
        if choice is None:
            self.loss_reason.value = (f"<i>{_escape(str(name))} is set in the config and is not among the "
                                      f"{_escape(self.shape)} shape's registered losses.</i>")
            return
        defaults = getattr(choice, "params", {}) or {}
        self.controls["loss.params"].placeholder = f"YAML mapping; default {_flow_yaml(defaults) or '{}'}"
        tunable = getattr(choice, "tunable", {}) or {}  # optional: newer registries describe their parameters
        hints = "".join(f"<br><code>{_escape(p)}</code>: {_escape(t)}" for p, t in tunable.items())
        self.loss_reason.value = f"<i>{_escape(choice.reason)}</i>{hints}"

    # --- actions -----------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write the config to the run directory; returns the path (None when there is nothing to save to)."""
        if self.run is None:
            self._say("No run directory to save to.", error=True)
            return None
        if self.errors:
            self._say("Not saved: fix the entries listed above first.", error=True)
            return None
        self.run.save_config(config_to_save(self.run, self._config))
        path = self.run.config_path
        command = f"sttune run --config {shlex.quote(str(path))}"
        self._say(f"Saved <code>{_escape(str(path))}</code>. The same run headless: "
                  f"<code>{_escape(command)}</code>")
        return path

    def train(self) -> Any:
        """Call ``on_train(config)`` with its output shown under the panel; returns what it returns."""
        if self.on_train is None:
            self._say("No training function was given to this panel.", error=True)
            return None
        if self.errors:
            self._say("Not started: fix the entries listed above first.", error=True)
            return None
        self.output.clear_output()
        self._say("Training...")
        self.train_button.disabled = True  # a second click would queue a second run
        result, failed = None, False
        try:
            with self.output:
                try:
                    result = self.on_train(self._config)
                except Exception as exc:
                    failed = True
                    self._say(f"Training failed: {_escape(str(exc))}", error=True)
                    # Under IPython the Output shows the traceback and swallows the error; elsewhere it propagates.
                    raise
        finally:
            self.train_button.disabled = False
        if not failed:
            self._say("Training finished.")
        return result

    def _say(self, text_html: str, error: bool = False) -> None:
        self.message.value = f"<span style='color:#b00020'>{text_html}</span>" if error else text_html

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # --- the controls --------------------------------------------------------------------------
    def _bind(self, key: str, control: widgets.ValueWidget, *, help_text: str,
              to_config: Callable[[Any], Any] = lambda v: v, to_control: Callable[[Any], Any] = lambda v: v,
              unset_label: str | None = None) -> widgets.Widget:
        control.style = _STYLE
        control.add_class(dom_class(key))
        shown = with_help(control, help_text)
        unset = widgets.Checkbox(description=unset_label, indent=False, style=_STYLE,
                                 layout=widgets.Layout(width="auto")) if unset_label else None
        binding = _Binding(key, control, to_config, to_control, unset, shown)
        self._bindings[key] = binding
        return binding.row()

    def _recommended_loss(self) -> str:
        """What loss.name: null gives this run: the shape's recommendation for its number of training
        rows (stage 02 records the same in plan.json); the shape's default before data_prep ran."""
        try:
            report = read_json(self.run.data_report_path) if self.run is not None else None
            rows = int(report["counts"]["train"]["rows"]) if report else 0
        except (OSError, ValueError, KeyError, TypeError):
            rows = 0
        train = self._config.train
        return recommend(self.shape, rows, train.batch_size, anchored=bool(train.general_anchor))[0].name

    def _loss_options(self) -> list[tuple[str, str]]:
        name = self._config.loss.name
        options = [(f"{c.name} (default)" if c.name == self.recommended else c.name, c.name) for c in self.choices]
        if name is not None and name not in {c.name for c in self.choices}:
            options.append((f"{name} (from the config)", name))
        return options

    def _follow_recommendation(self) -> None:
        """Relabel "(default)" where a setting changed the recommended loss, and show it where loss.name is unset."""
        recommended = self._recommended_loss()
        if recommended == self.recommended:
            return
        self.recommended = recommended
        dropdown = self.controls["loss.name"]
        syncing, self._syncing = self._syncing, True
        try:
            dropdown.options = self._loss_options()
            dropdown.value = self._config.loss.name or recommended
        finally:
            self._syncing = syncing
        self._show_loss_reason()

    def _loss_controls(self) -> list[widgets.Widget]:
        loss = self._config.loss
        return [
            self._bind("loss.name", widgets.Dropdown(description="loss", options=self._loss_options(), layout=_WIDE),
                       to_control=lambda name: name or self.recommended,
                       help_text="a sentence-transformers loss class; (default) marks what sttune recommends "
                                 "for this shape and amount of training data"),
            self.loss_reason,
            self._bind("loss.temperature",
                       log_slider("temperature", "loss.temperature", loss.temperature, 0.005, 1.0, step=0.01,
                                  readout_format=".3g", start=LOSS_DEFAULT_TEMPERATURE),
                       unset_label="loss default",
                       help_text="softmax temperature of the contrastive and ranking losses (scale = 1/temperature)"),
            self._bind("loss.matryoshka_dims",
                       widgets.Text(description="Matryoshka dims", placeholder="off; e.g. 384, 256, 128, 64",
                                    layout=_WIDE, continuous_update=False),
                       to_config=_parse_dims, to_control=lambda dims: ", ".join(str(d) for d in dims or []),
                       help_text="wrap the loss in MatryoshkaLoss over these embedding sizes; empty = off"),
            self._bind("loss.params",
                       widgets.Text(description="loss parameters", layout=_WIDE, continuous_update=False),
                       to_config=_parse_mapping, to_control=_flow_yaml,
                       help_text="keyword arguments of the loss class, e.g. {margin: 0.5}"),
        ]

    def _optimisation_controls(self) -> list[widgets.Widget]:
        train = self._config.train
        epochs_min, epochs_max = control_bounds("train.epochs", 0.1, 20.0)
        steps_min, steps_max = control_bounds("train.max_steps", high=10**9)
        warmup_min, warmup_max = control_bounds("train.warmup_ratio", high=0.5)
        decay_min, decay_max = control_bounds("train.weight_decay", high=0.3)
        accumulation_min, accumulation_max = control_bounds("train.gradient_accumulation_steps", high=1024)
        seed_min, seed_max = control_bounds("seed")
        return [
            self._bind("train.learning_rate",
                       log_slider("learning rate", "train.learning_rate", train.learning_rate, 1e-6, 1e-3, step=0.05,
                                  readout_format=".1e"),
                       help_text="the optimiser's peak step size; 2e-5 suits full fine-tuning, ~2e-4 LoRA"),
            self._bind("train.batch_size", widgets.Dropdown(description="batch size", options=BATCH_SIZES),
                       help_text="in-batch-negative losses gain from bigger batches"),
            self._bind("train.epochs",
                       widgets.FloatSlider(description="epochs", min=epochs_min, max=max(epochs_max, train.epochs),
                                           step=0.1, layout=_WIDE),
                       help_text="passes over the training split; fractions stop part-way"),
            self._bind("train.max_steps", widgets.BoundedIntText(description="max steps", min=steps_min,
                                                                 max=steps_max, value=1000),
                       unset_label="no cap (epochs decide)", help_text="overrides epochs when set"),
            self._bind("train.warmup_ratio",
                       widgets.FloatSlider(description="warmup ratio", min=warmup_min,
                                           max=max(warmup_max, train.warmup_ratio), step=0.01, layout=_WIDE),
                       help_text="share of the steps over which the learning rate rises from 0"),
            self._bind("train.weight_decay",
                       widgets.FloatSlider(description="weight decay", min=decay_min,
                                           max=max(decay_max, train.weight_decay), step=0.005, readout_format=".3f",
                                           layout=_WIDE),
                       help_text="AdamW's decoupled weight decay (not applied to biases and LayerNorm weights)"),
            self._bind("train.scheduler", widgets.Dropdown(description="scheduler",
                                                           options=literal_options(TrainConfig, "scheduler")),
                       help_text="how the learning rate falls after warmup"),
            self._bind("train.gradient_accumulation_steps",
                       widgets.BoundedIntText(description="gradient accumulation steps", min=accumulation_min,
                                              max=accumulation_max),
                       help_text="one optimiser step per this many batches; in-batch negatives still see one batch"),
            self._bind("train.precision",
                       widgets.Dropdown(description="precision", options=literal_options(TrainConfig, "precision")),
                       help_text=precision_help(self._config.model.device)),
            self._bind("train.gradient_checkpointing",
                       widgets.Checkbox(description="gradient checkpointing", indent=False),
                       help_text="less GPU memory, about 30% slower"),
            self._bind("train.batch_sampler",
                       widgets.Dropdown(description="batch sampler",
                                        options=literal_options(TrainConfig, "batch_sampler")),
                       help_text="auto: no duplicate texts in a batch for in-batch-negative losses, and texts of "
                                 "similar length together where that was measured as accurate; length_grouped: "
                                 "texts of similar length share a batch (less padding, faster on short texts); "
                                 "topic_grouped (in-batch-negative losses): anchors on one topic share a batch, so "
                                 "the other rows are harder negatives"),
            self._bind("seed", widgets.BoundedIntText(description="seed", min=seed_min, max=seed_max),
                       help_text="seeds the data order, new weights and every sample: the same seed repeats a run"),
        ]

    def _validation_controls(self) -> list[widgets.Widget]:
        train = self._config.train
        evaluations_min, evaluations_max = control_bounds("train.evaluations_per_epoch", high=1000)
        corpus_min, corpus_max = control_bounds("train.validation_corpus_size", high=10**8)
        share_min, share_max = control_bounds("train.max_validation_share", low=0.01)
        patience_min, patience_max = control_bounds("train.early_stopping_patience", high=1000)
        threshold_min, threshold_max = control_bounds("train.early_stopping_threshold", high=1.0)
        return [
            self._bind("train.evaluations_per_epoch",
                       widgets.BoundedIntText(description="evaluations per epoch", min=evaluations_min,
                                              max=evaluations_max),
                       help_text="validation (and a checkpoint) this many times per epoch"),
            self._bind("train.max_validation_share",
                       widgets.FloatSlider(description="max validation share", min=share_min,
                                           max=max(share_max, train.max_validation_share or 0.0), step=0.01,
                                           value=0.1, layout=_WIDE),
                       unset_label="never spaced out",
                       help_text="where the first validation takes over 1.25x this share of the training time, "
                                 "evaluations (and their checkpoints) are spaced out to a whole multiple of their "
                                 "interval that keeps validation within the share"),
            self._bind("train.validation_corpus_size",
                       widgets.Combobox(description="validation corpus (documents)",
                                        options=[CORPUS_AUTO, CORPUS_WHOLE], ensure_option=False,
                                        continuous_update=False),
                       to_config=lambda text: _parse_corpus_size(text, corpus_min, corpus_max),
                       to_control=lambda size: {"auto": CORPUS_AUTO, None: CORPUS_WHOLE}.get(size, str(size)),
                       help_text="retrieval: validation ranks against every document relevant to a validation "
                                 "query plus distractors mined with the base model, this many in all "
                                 "(auto: 5 times the relevant documents, at least 1,000); the test uses the whole "
                                 "corpus"),
            self._bind("train.validation_precision",
                       widgets.Dropdown(description="validation precision",
                                        options=literal_options(TrainConfig, "validation_precision")),
                       help_text=validation_precision_help(self._config.model.device)),
            self._bind("train.early_stopping_patience",
                       widgets.BoundedIntText(description="patience (evaluations)", min=patience_min,
                                              max=patience_max, value=3),
                       unset_label="off", help_text="stop after this many evaluations without improvement"),
            self._bind("train.early_stopping_threshold",
                       widgets.BoundedFloatText(description="threshold", min=threshold_min, max=threshold_max,
                                                step=0.001),
                       help_text="the least gain that counts as an improvement"),
            self._bind("train.early_stopping_metric",
                       widgets.Text(description="metric", placeholder="the shape's primary metric",
                                    continuous_update=False, layout=_WIDE),
                       to_config=lambda text: text.strip() or None, to_control=lambda name: name or "",
                       help_text='as the evaluator names it, e.g. "spearman_cosine", "cosine_ap", "ndcg@10", "loss"'),
            self._bind("train.restore_best",
                       widgets.Dropdown(description="restore best",
                                        options=literal_options(TrainConfig, "restore_best")),
                       help_text="if_significant: the best checkpoint only where it beats the last beyond the noise"),
        ]

    def _regularisation_controls(self) -> list[widgets.Widget]:
        train = self._config.train
        rank_min, rank_max = control_bounds("train.lora_rank", high=1024)
        alpha_min, alpha_max = control_bounds("train.lora_alpha", 1e-3, 1e4)
        dropout_min, dropout_max = control_bounds("train.lora_dropout", high=0.5)
        texts_min, texts_max = control_bounds("train.general_anchor_texts", high=256)
        every_min, every_max = control_bounds("train.general_anchor_every", high=16)
        return [
            self._bind("train.shape_recipe", widgets.Checkbox(description="the shape's measured recipe", indent=False),
                       help_text=shape_recipe_help(self.shape)),
            self._bind("train.task_prompt",
                       widgets.Text(description="task prompt", placeholder="off; e.g. task: ", layout=_WIDE,
                                    continuous_update=False),
                       to_config=lambda text: text if text.strip() else None, to_control=lambda prompt: prompt or "",
                       help_text='prepended to the task\'s texts and saved as the model\'s default prompt; '
                                 'encode(texts, prompt="") leaves it out'),
            self._bind("train.general_anchor",
                       log_slider("general anchor", "train.general_anchor", train.general_anchor, 0.1, 100.0,
                                  step=0.1, readout_format=".3g", start=10.0),
                       unset_label="off",
                       help_text="with a task prompt: holds the unprompted model near the base model"),
            self._bind("train.general_anchor_texts",
                       widgets.BoundedIntText(description="anchor texts", min=texts_min, max=texts_max, value=16),
                       help_text="training texts the anchor encodes a step: each costs a forward and backward pass"),
            self._bind("train.general_anchor_every",
                       widgets.BoundedIntText(description="anchor every", min=every_min, max=every_max, value=1),
                       help_text="the anchor on every k-th step at k x its weight: the same pull at 1/k of its cost"),
            self._bind("train.l2sp_weight",
                       log_slider("L2-SP weight", "train.l2sp_weight", train.l2sp_weight, 1e-4, 10.0, step=0.1,
                                  readout_format=".1e", start=0.1),
                       unset_label="off",
                       help_text="adds this x the squared distance of the weights from the base's to the loss"),
            self._bind("train.lora_rank", widgets.BoundedIntText(description="LoRA rank", min=rank_min, max=rank_max,
                                                                 value=16),
                       unset_label="off (full fine-tuning)",
                       help_text="train low-rank adapters instead of every weight; try a learning rate of ~2e-4"),
            self._bind("train.lora_alpha",
                       widgets.BoundedFloatText(description="LoRA alpha", min=alpha_min, max=alpha_max, value=32.0),
                       unset_label="2 x rank", help_text="the adapters' scale is alpha / rank"),
            self._bind("train.lora_dropout",
                       widgets.FloatSlider(description="LoRA dropout", min=dropout_min,
                                           max=max(dropout_max, train.lora_dropout), step=0.01, layout=_WIDE),
                       help_text="dropout on the adapters' input"),
        ]

    def _model_controls(self) -> list[widgets.Widget]:
        model = self._config.model
        rows = [self._bind("model.pooling",
                           widgets.Dropdown(description="pooling", options=literal_options(ModelConfig, "pooling")),
                           help_text="model: keep the model's own; mean, max, cls rebuild it on the transformer")]
        dropouts = {"model.hidden_dropout": ("hidden dropout", "dropout between the transformer's layers"),
                    "model.attention_dropout": ("attention dropout", "dropout on the attention weights")}
        for key, (label, help_text) in dropouts.items():
            current = get_key(self._config, key)
            low, high = control_bounds(key, high=0.5)
            rows.append(self._bind(key, widgets.FloatSlider(description=label, min=low, value=0.1, step=0.01,
                                                            max=max(high, current or 0.0), layout=_WIDE),
                                   unset_label="model's own", help_text=help_text))
        length_min, length_max = control_bounds("model.max_seq_length", high=10**6)
        rows.append(self._bind("model.max_seq_length",
                               widgets.BoundedIntText(description="max sequence length (tokens)", min=length_min,
                                                      max=length_max, value=model.max_seq_length or 256),
                               unset_label="model's own", help_text="longer texts are truncated"))
        train_min, train_max = control_bounds("train.max_seq_length", high=10**6)
        rows.append(self._bind("train.max_seq_length",
                               widgets.BoundedIntText(description="training cut (tokens)", min=train_min,
                                                      max=train_max, value=self._config.train.max_seq_length or 128),
                               unset_label="as the model",
                               help_text="the training steps cut each text here (long documents train faster); "
                                         "validation and evaluation keep the max sequence length above"))
        return rows


def config_to_save(run: RunDir, config: RunConfig) -> RunConfig:
    """The config as config.yaml should hold it: open_run puts the shape the data stage detected into
    ``config.data.shape`` for the later stages, while config.yaml keeps "auto" (a replay on other data
    detects again), so a panel's Save keeps "auto" too."""
    if config.data.shape != "auto" and run.config_path.is_file() and run.data_report_path.is_file():
        detected = read_json(run.data_report_path).get("shape")
        if detected == config.data.shape and run.load_config().data.shape == "auto":
            return config.with_overrides({"data.shape": "auto"})
    return config


def _only_snapped(control: widgets.ValueWidget, old: Any, new: Any) -> bool:
    """Whether ``new`` is just ``old`` moved onto a float slider's step grid. A slider in the page sends
    that back as soon as it is drawn (2e-5 becomes 10**-4.7 on a log slider stepping 0.05 from 1e-6), which
    must change neither the config nor an Optional key's None box; a user's move is a whole step or more."""
    if isinstance(control, widgets.FloatLogSlider):
        if not (isinstance(old, (int, float)) and isinstance(new, (int, float)) and old > 0 and new > 0):
            return False
        def to_axis(value: float) -> float:
            return math.log(value, control.base)
    elif isinstance(control, widgets.FloatSlider):
        to_axis = float
    else:
        return False
    step, low, high = control.step, control.min, control.max
    if not step or old is None or new is None:
        return False
    position = min(max(to_axis(old), low), high)
    snapped = min(low + round((position - low) / step) * step, high)
    return abs(to_axis(new) - snapped) <= 1e-6 * step


def dom_class(key: str) -> str:
    """The CSS class of a key's control in the page, e.g. train.learning_rate -> sttune-train-learning_rate."""
    return "sttune-" + key.replace(".", "-")


def show_panel(config: RunConfig, shape: str, run: RunDir | None = None,
               on_train: Callable[[RunConfig], Any] | None = None, interactive: bool = True) -> ConfigPanel | None:
    """Display the panel in a notebook and return it; headless runs (interactive=False) get nothing."""
    if not interactive:
        return None
    panel = ConfigPanel(config, shape, run=run, on_train=on_train)
    display(panel.widget)
    return panel


# --- helpers ---------------------------------------------------------------------------------------


def _set_control(control: widgets.ValueWidget, value: Any) -> None:
    """Set a control's value; a Dropdown gains an option for a config value it does not offer (e.g. batch 24)."""
    if isinstance(control, widgets.Dropdown):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        if value not in values:
            options = list(control.options) + [value]
            if all(isinstance(v, int) for v in values + [value]):
                options = sorted(options)
            control.options = options
    control.value = value


def _log_bounds(value: float | None, low: float, high: float) -> tuple[float, float]:
    """A FloatLogSlider's exponent range covering [low, high] and the config's value."""
    low_exp, high_exp = math.log10(low), math.log10(high)
    if value is not None and value > 0:
        low_exp = min(low_exp, math.floor(math.log10(value)))
        high_exp = max(high_exp, math.ceil(math.log10(value)))
    return low_exp, high_exp


def _parse_corpus_size(text: str, low: int, high: int) -> int | str | None:
    """The validation corpus entry: "auto", "whole corpus" (None) or a number of documents."""
    text = text.strip().replace(",", "")
    if text in (CORPUS_AUTO, ""):
        return "auto"
    if text == CORPUS_WHOLE:
        return None
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidEntry(f"{text!r}: expected auto, whole corpus, or a number of documents from {low} to {high}")
    return int(text)


def _parse_dims(text: str) -> list[int] | None:
    """ "384, 256, 128" -> [384, 256, 128]; empty -> None (no Matryoshka wrapper)."""
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if not any(parts):
        return None
    dims = []
    for part in parts:
        if not part.isdigit() or int(part) == 0:
            raise InvalidEntry(f"{part!r} is not a positive whole number; write sizes like 384, 256, 128, 64")
        dims.append(int(part))
    return dims


def _parse_mapping(text: str) -> dict[str, Any]:
    """A YAML or JSON mapping such as {margin: 0.5}; empty -> {} (the loss's defaults)."""
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise InvalidEntry(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise InvalidEntry(f"expects a mapping such as {{margin: 0.5}}, got {text!r}")
    return value


def _summary_value(value: Any) -> str:
    """A setting as -p key=value takes it: 2e-05, null, true, linear, [64, 32], {margin: 0.5}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _flow_yaml(value) or "{}"
    return json.dumps(value)


def _escape(text: str) -> str:
    """Text for HTML element content (quotes stay readable; no attribute values are built from it)."""
    return html.escape(text, quote=False)


def _flow_yaml(mapping: dict[str, Any]) -> str:
    return yaml.safe_dump(mapping, default_flow_style=True).strip() if mapping else ""


def training_panel(run: RunDir, config: RunConfig, shape: str, interactive: bool = True) -> ConfigPanel | None:
    """The panel of the training notebook: its Train button saves the config to the run and trains
    with it, as the notebook's next cell and `sttune run --config RUN/config.yaml` would."""
    def save_and_train(panel_config: RunConfig):
        from ..stages import training  # torch and transformers load only when the button is pressed

        run.save_config(config_to_save(run, panel_config))
        return training.train(run, panel_config)

    return show_panel(config, shape, run=run, on_train=save_and_train, interactive=interactive)
