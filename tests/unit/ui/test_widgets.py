"""The config panel: every control edits panel.config, invalid entries are refused, Save and Train act;
every control of the config and sweep panels shows its help on hover."""

import typing

import pytest

from sttune_helpers.config import BatchSampler, Pooling, Precision, Scheduler, load_config, load_preset
from sttune_helpers.losses import loss_choices
from sttune_helpers.rundir import RunDir
from sttune_helpers.ui import ConfigPanel, show_panel


@pytest.fixture
def config():
    return load_preset("smoke")


@pytest.fixture
def run(tmp_path):
    return RunDir(tmp_path / "run")


@pytest.fixture
def panel(config, run):
    return ConfigPanel(config, "pair_score", run=run)


def test_controls_show_the_config_values(panel, config):
    assert panel.controls["train.learning_rate"].value == pytest.approx(config.train.learning_rate)
    assert panel.controls["train.batch_size"].value == config.train.batch_size
    assert panel.controls["loss.name"].value == "CoSENTLoss"
    assert panel.controls["model.max_seq_length"].value == 64
    assert panel.unset_boxes["model.max_seq_length"].value is False
    assert panel.unset_boxes["loss.temperature"].value is True  # None: the loss's own default
    assert panel.controls["loss.matryoshka_dims"].value == ""
    assert panel.status.value == ""


def test_the_loss_shown_is_the_one_recommended_for_the_runs_data(config, run):
    from sttune_helpers.core.io import atomic_write_json

    # 1,000 scored training pairs: cosine regression (below CoSENT's 5,000), which stage 02 will choose.
    atomic_write_json(run.data_report_path, {"counts": {"train": {"rows": 1000}}})
    panel = ConfigPanel(config, "pair_score", run=run)
    dropdown = panel.controls["loss.name"]
    assert dropdown.value == "CosineSimilarityLoss"
    assert dict(dropdown.options)["CosineSimilarityLoss (default)"] == "CosineSimilarityLoss"
    assert panel.config.loss.name is None  # shown, not written: stage 02 still decides
    atomic_write_json(run.data_report_path, {"counts": {"train": {"rows": 6000}}})
    assert ConfigPanel(config, "pair_score", run=run).controls["loss.name"].value == "CoSENTLoss"
    # With the general anchor on, CoSENT at any size (its weight was measured with it).
    atomic_write_json(run.data_report_path, {"counts": {"train": {"rows": 1000}}})
    anchored = config.with_overrides(["train.task_prompt='task: '", "train.general_anchor=10"])
    assert ConfigPanel(anchored, "pair_score", run=run).controls["loss.name"].value == "CoSENTLoss"
    # Turned on and off in the panel, the "(default)" label and the shown loss follow, and nothing is written.
    panel = ConfigPanel(config, "pair_score", run=run)
    dropdown = panel.controls["loss.name"]
    panel.controls["train.task_prompt"].value = "task: "
    panel.unset_boxes["train.general_anchor"].value = False
    assert panel.config.train.general_anchor is not None
    assert dropdown.value == "CoSENTLoss" and dict(dropdown.options)["CoSENTLoss (default)"] == "CoSENTLoss"
    assert panel.config.loss.name is None
    panel.unset_boxes["train.general_anchor"].value = True
    assert dropdown.value == "CosineSimilarityLoss" and "CosineSimilarityLoss (default)" in dict(dropdown.options)
    assert panel.config.loss.name is None


def test_sliders_and_dropdowns_edit_the_config(panel, config):
    panel.controls["train.learning_rate"].value = 3e-5
    panel.controls["train.batch_size"].value = 64
    panel.controls["train.epochs"].value = 2.5
    panel.controls["train.scheduler"].value = "cosine"
    panel.controls["train.precision"].value = "fp32"
    panel.controls["train.gradient_checkpointing"].value = True
    panel.controls["model.pooling"].value = "mean"
    panel.controls["loss.name"].value = "AnglELoss"
    panel.controls["seed"].value = 7

    assert isinstance(panel.config, type(config))
    assert panel.config is config  # edited in place, so the notebook's `config` stays current
    assert panel.config.train.learning_rate == pytest.approx(3e-5)
    assert panel.config.train.batch_size == 64
    assert panel.config.train.epochs == 2.5
    assert panel.config.train.scheduler == "cosine"
    assert panel.config.train.precision == "fp32"
    assert panel.config.train.gradient_checkpointing is True
    assert panel.config.model.pooling == "mean"
    assert panel.config.loss.name == "AnglELoss"
    assert panel.config.seed == 7


def test_loss_default_is_selected_and_its_reason_follows_the_choice(config, run):
    config.loss.name = None
    panel = ConfigPanel(config, "pair_score", run=run)
    choices = loss_choices("pair_score")
    assert panel.controls["loss.name"].value == choices[0].name
    assert panel.config.loss.name is None  # showing the default does not write it
    assert choices[0].reason[:40] in panel.loss_reason.value

    panel.controls["loss.name"].value = choices[1].name
    assert choices[1].reason[:40] in panel.loss_reason.value
    assert panel.config.loss.name == choices[1].name


def test_optional_values_switch_between_none_and_a_value(panel):
    panel.controls["loss.temperature"].value = 0.02  # moving the slider leaves "loss default"
    assert panel.config.loss.temperature == pytest.approx(0.02)
    assert panel.unset_boxes["loss.temperature"].value is False

    panel.unset_boxes["loss.temperature"].value = True
    assert panel.config.loss.temperature is None

    panel.unset_boxes["loss.temperature"].value = False
    assert panel.config.loss.temperature == pytest.approx(0.02)

    panel.controls["train.max_steps"].value = 50
    assert panel.config.train.max_steps == 50
    panel.unset_boxes["train.early_stopping_patience"].value = True
    assert panel.config.train.early_stopping_patience is None
    panel.controls["model.hidden_dropout"].value = 0.2
    assert panel.config.model.hidden_dropout == pytest.approx(0.2)
    panel.unset_boxes["model.max_seq_length"].value = True
    assert panel.config.model.max_seq_length is None


def test_text_entries_are_parsed(panel):
    panel.controls["loss.matryoshka_dims"].value = "64, 32"
    assert panel.config.loss.matryoshka_dims == [64, 32]
    panel.controls["loss.matryoshka_dims"].value = " "
    assert panel.config.loss.matryoshka_dims is None

    panel.controls["loss.params"].value = '{"margin": 0.3}'
    assert panel.config.loss.params == {"margin": 0.3}
    panel.controls["train.early_stopping_metric"].value = "pearson_cosine"
    assert panel.config.train.early_stopping_metric == "pearson_cosine"
    panel.controls["train.early_stopping_metric"].value = ""
    assert panel.config.train.early_stopping_metric is None


def test_invalid_text_keeps_the_config_and_says_why(panel):
    panel.controls["loss.matryoshka_dims"].value = "64, 32"
    panel.controls["loss.matryoshka_dims"].value = "64, abc"
    assert panel.config.loss.matryoshka_dims == [64, 32]
    assert "loss.matryoshka_dims" in panel.status.value and "abc" in panel.status.value

    panel.controls["loss.params"].value = "[1, 2]"
    assert panel.config.loss.params == {}
    assert "loss.params" in panel.status.value

    assert panel.save() is None  # nothing is saved while an entry is wrong
    assert not panel.run.config_path.exists()

    panel.controls["loss.matryoshka_dims"].value = "128"
    panel.controls["loss.params"].value = ""
    assert panel.config.loss.matryoshka_dims == [128]
    assert panel.status.value == ""


def test_save_writes_the_edited_config(panel, run):
    panel.controls["train.learning_rate"].value = 5e-5
    panel.controls["train.batch_size"].value = 32
    panel.controls["loss.matryoshka_dims"].value = "64,32"
    panel.controls["loss.temperature"].value = 0.1

    path = panel.save()

    assert path == run.config_path
    saved = load_config(path)
    assert saved.train.learning_rate == pytest.approx(5e-5)
    assert saved.train.batch_size == 32
    assert saved.loss.matryoshka_dims == [64, 32]
    assert saved.loss.temperature == pytest.approx(0.1)
    assert saved.to_dict() == panel.config.to_dict()
    assert str(run.config_path) in panel.message.value
    assert f"sttune run --config {run.config_path}" in panel.message.value


def test_save_without_a_run_is_disabled(config):
    panel = ConfigPanel(config, "pair_score")
    assert panel.save_button.disabled
    assert panel.save() is None


def test_train_calls_on_train_with_the_current_config(config, run):
    calls = []
    panel = ConfigPanel(config, "pair_score", run=run, on_train=lambda c: calls.append(c.to_dict()) or "done")
    assert not panel.train_button.disabled
    panel.controls["train.epochs"].value = 3.0

    assert panel.train() == "done"
    assert len(calls) == 1 and calls[0]["train"]["epochs"] == 3.0
    assert not panel.train_button.disabled


def test_train_without_on_train_is_disabled(panel):
    assert panel.train_button.disabled
    assert panel.train() is None


def test_dropdown_options_come_from_the_config_types(panel):
    assert panel.controls["train.precision"].options == typing.get_args(Precision)
    assert panel.controls["train.batch_sampler"].options == typing.get_args(BatchSampler)
    assert panel.controls["model.pooling"].options == typing.get_args(Pooling)
    assert panel.controls["train.scheduler"].options == typing.get_args(Scheduler)
    assert [value for _, value in panel.controls["loss.name"].options] == [c.name for c in loss_choices("pair_score")]


def test_values_the_controls_do_not_offer_are_kept(config, run):
    config.train.batch_size = 24
    config.train.scheduler = "cosine_with_restarts"
    panel = ConfigPanel(config, "pair_score", run=run)
    assert panel.controls["train.batch_size"].value == 24
    assert panel.controls["train.scheduler"].value == "cosine_with_restarts"
    assert panel.config.train.batch_size == 24


def test_refresh_after_the_config_changes_elsewhere(panel, config):
    panel.config = config.with_overrides(["train.learning_rate=1e-4", "loss.temperature=0.05"])
    assert panel.controls["train.learning_rate"].value == pytest.approx(1e-4)
    assert panel.unset_boxes["loss.temperature"].value is False
    assert panel.controls["loss.temperature"].value == pytest.approx(0.05)


def test_show_panel_headless_returns_none(config, run):
    assert show_panel(config, "pair_score", run=run, interactive=False) is None


def test_show_panel_interactive_returns_the_panel(config, run):
    panel = show_panel(config, "pair_score", run=run)
    assert isinstance(panel, ConfigPanel)


def test_a_failed_training_is_reported(config, run):
    def broken(_config):
        raise RuntimeError("out of memory")

    panel = ConfigPanel(config, "pair_score", run=run, on_train=broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        panel.train()
    assert "Training failed: out of memory" in panel.message.value
    assert not panel.train_button.disabled  # can be tried again


def test_interpolation_picker_shows_each_alphas_scores_and_saves_the_chosen_one():
    from sttune_helpers.ui import interpolation_picker

    rows = [{"alpha": 0.0, "task": 0.70, "reference": 0.82}, {"alpha": 0.5, "task": 0.78, "reference": None},
            {"alpha": 1.0, "task": 0.80, "reference": 0.75}]
    saved = []
    box = interpolation_picker(rows, lambda alpha: saved.append(alpha) or f"model_final@{alpha}", suggested=0.5)
    slider, scores = box.children[0], box.children[1]
    button, _progress, status = box.children[2].children
    assert slider.value == 0.5 and scores.value == "test 0.7800 · reference n/a"
    slider.value = 1.0
    assert scores.value == "test 0.8000 · reference 0.7500"
    button.click()
    assert saved == [1.0] and "model_final@1.0" in status.value
    assert interpolation_picker(rows, saved.append, interactive=False) is None
    # Both controls say what they do on hover: the slider in its label, the button in its tooltip.
    assert "0 is the base model" in _span_title(slider.description) and slider.tooltip
    assert "model_final/" in button.tooltip and "chosen on test" in button.tooltip


def test_saving_the_final_model_shows_its_progress_beside_the_button(monkeypatch):
    import ipywidgets as widgets

    from sttune_helpers.ui import interpolation_picker

    # The Output widgets whose context is open: where a kernel sends what is printed. As under IPython,
    # an Output shows an error raised inside it and stops it there.
    entered = []
    monkeypatch.setattr(widgets.Output, "__enter__", lambda self: entered.append(self) or self)
    monkeypatch.setattr(widgets.Output, "__exit__", lambda self, *exc: entered.remove(self) or True)
    captured_in = []
    rows = [{"alpha": 0.5, "task": 0.78, "reference": 0.8}]
    box = interpolation_picker(rows, lambda alpha: captured_in.append(list(entered)) or "model_final")
    button, progress, status = box.children[2].children
    button.click()
    assert isinstance(progress, widgets.Output) and captured_in == [[progress]]
    assert "model_final" in status.value and not entered

    def full_disk(alpha):
        raise OSError("no space left on device")

    box = interpolation_picker(rows, full_disk)
    button, _progress, status = box.children[2].children
    button.click()
    assert "not saved" in status.value and not button.disabled  # can be tried again


def test_regularisation_controls_are_off_until_set(panel):
    for key in ("train.l2sp_weight", "train.lora_rank", "train.lora_alpha"):
        assert panel.unset_boxes[key].value is True and panel.controls[key] is not None
    panel.controls["train.lora_rank"].value = 8
    panel.controls["train.lora_dropout"].value = 0.1
    panel.controls["train.l2sp_weight"].value = 1.0
    train = panel.config.train
    assert (train.lora_rank, train.lora_alpha, train.l2sp_weight) == (8, None, pytest.approx(1.0))
    assert train.lora_dropout == pytest.approx(0.1)
    panel.unset_boxes["train.lora_rank"].value = True
    assert panel.config.train.lora_rank is None


def test_the_general_anchor_needs_the_task_prompt_set_first(panel):
    assert panel.controls["train.task_prompt"].value == "" and panel.unset_boxes["train.general_anchor"].value is True
    panel.unset_boxes["train.general_anchor"].value = False  # the slider's 10, without a prompt: refused
    assert panel.config.train.general_anchor is None and "train.task_prompt" in panel.errors["train.general_anchor"]
    assert "train.general_anchor" in panel.status.value
    panel.controls["train.task_prompt"].value = "task: "
    panel.unset_boxes["train.general_anchor"].value = True
    panel.unset_boxes["train.general_anchor"].value = False
    assert (panel.config.train.task_prompt, panel.config.train.general_anchor) == ("task: ", pytest.approx(10.0))
    assert not panel.errors
    panel.controls["train.task_prompt"].value = "  "  # no text: off, which the anchor refuses
    assert panel.config.train.task_prompt == "task: " and "train.task_prompt" in panel.errors
    panel.controls["train.general_anchor_texts"].value = 8
    assert panel.config.train.general_anchor_texts == 8
    panel.controls["train.general_anchor_every"].value = 2
    assert panel.config.train.general_anchor_every == 2
    assert panel.controls["train.general_anchor_texts"].min == 1  # the setting's own bound, a count


def test_the_shape_recipe_box_names_what_it_fills_and_turns_it_off(config, run):
    panel = ConfigPanel(config, "pair_binary", run=run)
    box = panel.controls["train.shape_recipe"]
    assert box.value is True
    assert ("task_prompt 'task: ', general_anchor 10.0, general_anchor_texts 8, general_anchor_every 2, "
            "learning_rate 8e-05, batch_size 32") in box.tooltip
    assert "measured with OnlineContrastiveLoss and CoSENTLoss" in box.tooltip
    box.value = False
    assert panel.config.train.shape_recipe is False
    assert "triplet has none" in ConfigPanel(config, "triplet", run=run).controls["train.shape_recipe"].tooltip
    retrieval = ConfigPanel(config, "retrieval", run=run).controls["train.shape_recipe"].tooltip
    assert "attention_dropout 0.0" in retrieval and "another loss, named or recommended, keeps its own" in retrieval


def test_control_bounds_come_from_the_range_table(panel):
    from sttune_helpers.config import RANGES

    # A closed end of the setting's range is the control's bound.
    for key in ("train.max_steps", "train.gradient_accumulation_steps", "train.evaluations_per_epoch",
                "train.early_stopping_patience", "train.lora_rank", "model.max_seq_length", "seed",
                "train.warmup_ratio", "train.weight_decay", "train.lora_dropout", "model.hidden_dropout",
                "model.attention_dropout", "train.early_stopping_threshold"):
        assert panel.controls[key].min == RANGES[key].low, key
    assert panel.controls["seed"].max == RANGES["seed"].high
    # An open or missing end gets a practical limit inside the range (a log slider's ends are exponents).
    for key in ("train.epochs", "train.lora_alpha", "train.warmup_ratio", "train.lora_dropout", "train.max_steps"):
        control = panel.controls[key]
        assert RANGES[key].contains(control.min) and RANGES[key].contains(control.max), key
    for key in ("train.learning_rate", "loss.temperature", "train.l2sp_weight"):
        control = panel.controls[key]
        assert RANGES[key].contains(control.base ** control.min) and RANGES[key].contains(control.base ** control.max)


def test_a_control_bound_outside_the_setting_range_is_a_bug():
    from sttune_helpers.ui.config_panel import control_bounds, log_bounds

    assert control_bounds("train.warmup_ratio", high=0.5) == (0.0, 0.5)
    assert control_bounds("seed") == (0, 2**32 - 1)
    with pytest.raises(ValueError, match="train.lora_dropout"):
        control_bounds("train.lora_dropout", high=1.0)  # 1 is outside [0, 1)
    with pytest.raises(ValueError, match="train.epochs"):
        control_bounds("train.epochs", 0.0, 20.0)  # epochs > 0
    with pytest.raises(ValueError, match="loss.temperature"):
        log_bounds("loss.temperature", None, -1.0, 1.0)


def _span_title(label_html: str) -> str | None:
    """The title of the help span in a control's label, as the browser reads it (entities decoded)."""
    from html.parser import HTMLParser

    found = []

    class Spans(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "span" and "title" in dict(attrs):
                found.append(dict(attrs)["title"])

    Spans().feed(label_html)
    return found[0] if found else None


def test_every_control_shows_its_help_on_hover(panel):
    import ipywidgets as widgets

    for key, control in panel.controls.items():
        assert control.tooltip and control.tooltip.strip(), f"{key} has no help (the page would show title=null)"
        if isinstance(control, widgets.Checkbox):
            # A checkbox copies its description into its title verbatim: its label is an HTML widget beside it.
            assert control.description == ""
            label = next(w for w in panel._bindings[key].shown.children if isinstance(w, widgets.HTML))
            assert _span_title(label.value) == control.tooltip, key
        else:
            # Dropdowns and text boxes drop `tooltip` when they have a description (ipywidgets#3964):
            # the description label carries the help as a span's title.
            assert control.description_allow_html, key
            assert _span_title(control.description) == control.tooltip, key


def test_help_with_quotes_and_markup_is_escaped(panel):
    control = panel.controls["train.early_stopping_metric"]
    assert '"spearman_cosine"' in control.tooltip
    assert _span_title(control.description) == control.tooltip  # the quotes survive the attribute
    from sttune_helpers.ui.help import help_span

    assert _span_title(help_span("a <b>", 'x "y" <z>')) == 'x "y" <z>'
    assert "<b>" not in help_span("a <b>", "help")


def test_precision_help_says_what_auto_picks_on_this_machine(config, run, monkeypatch):
    from sttune_helpers.ui import help as panel_help

    monkeypatch.setattr(panel_help, "pick_device", lambda preference: "cpu")
    monkeypatch.setattr(panel_help, "pick_precision",
                        lambda preference, device: ("bf16", "the CPU has AMX bf16 units (amx_bf16)"))
    panel = ConfigPanel(config, "pair_score", run=run)
    help_text = panel.controls["train.precision"].tooltip
    assert "here bf16: the CPU has AMX bf16 units" in help_text and "fp32 on CPU" not in help_text
    assert "here bf16, as training runs in bf16" in panel.controls["train.validation_precision"].tooltip

    monkeypatch.setattr(panel_help, "pick_precision", lambda preference, device: ("fp32", "no fast bf16 here"))
    panel = ConfigPanel(config, "pair_score", run=run)
    assert "here fp32: no fast bf16 here" in panel.controls["train.precision"].tooltip
    assert "here fp32, as training runs in fp32" in panel.controls["train.validation_precision"].tooltip


def test_precision_help_when_the_device_cannot_be_told(monkeypatch):
    from sttune_helpers.core.errors import SettingError
    from sttune_helpers.ui import help as panel_help

    def no_cuda(preference):
        raise SettingError("model.device is 'cuda' but torch sees no CUDA device")

    monkeypatch.setattr(panel_help, "pick_device", no_cuda)
    assert "unknown here: model.device is 'cuda'" in panel_help.precision_help("cuda")


def test_the_config_summary_follows_the_controls(panel):
    assert "learning_rate <code>2e-05</code>" in panel.summary.value
    panel.controls["train.learning_rate"].value = 3e-5
    assert "learning_rate <code>3e-05</code>" in panel.summary.value
    panel.unset_boxes["train.max_steps"].value = False
    assert "max_steps <code>1000</code>" in panel.summary.value
    panel.controls["loss.params"].value = "[1, 2]"  # refused: the summary keeps the config's value
    assert "params <code>{}</code>" in panel.summary.value
    panel.config = panel.config.with_overrides(["train.epochs=2.5"])
    assert "epochs <code>2.5</code>" in panel.summary.value


def test_an_unset_keys_control_is_greyed_out(panel):
    steps, no_cap = panel.controls["train.max_steps"], panel.unset_boxes["train.max_steps"]
    assert panel.config.train.max_steps is None and no_cap.value and steps.disabled  # 1000 is not in effect
    no_cap.value = False
    assert not steps.disabled and panel.config.train.max_steps == steps.value
    no_cap.value = True
    assert steps.disabled and panel.config.train.max_steps is None
    steps.value = 200  # set from code: leaves "no cap" and takes effect
    assert not steps.disabled and not no_cap.value and panel.config.train.max_steps == 200
    panel.config = panel.config.with_overrides(["train.lora_rank=8"])
    assert not panel.controls["train.lora_rank"].disabled and panel.controls["train.lora_alpha"].disabled


def test_validation_settings_have_controls_within_their_ranges(panel):
    from sttune_helpers.config import RANGES
    from sttune_helpers.config.schema import TrainConfig
    from sttune_helpers.ui.config_panel import literal_options

    corpus, share = panel.controls["train.validation_corpus_size"], panel.controls["train.max_validation_share"]
    assert corpus.value == "auto" and panel.config.train.validation_corpus_size == "auto"  # the default
    corpus.value = "whole corpus"
    assert panel.config.train.validation_corpus_size is None
    corpus.value = "0"  # below the range: refused, named in the status line, the last good value kept
    assert panel.config.train.validation_corpus_size is None
    assert "train.validation_corpus_size" in panel.status.value and "from 1 to" in panel.status.value
    assert RANGES["train.validation_corpus_size"].low == 1
    assert share.max == RANGES["train.max_validation_share"].high
    assert RANGES["train.max_validation_share"].contains(share.min) and share.min > 0
    assert panel.controls["train.validation_precision"].options == literal_options(TrainConfig, "validation_precision")

    corpus.value = "500"
    share.value = 0.2
    panel.controls["train.validation_precision"].value = "fp32"
    panel.unset_boxes["train.max_validation_share"].value = True
    train = panel.config.train
    assert (train.validation_corpus_size, train.validation_precision, train.max_validation_share) == (500, "fp32", None)


def test_every_sweep_panel_control_shows_its_help_on_hover(config, tmp_path):
    from sttune_helpers.ui import SweepPanel

    config = config.with_overrides({"sweep.space": {
        "train.learning_rate": {"low": 1.0e-5, "high": 1.0e-3, "log": True},
        "train.warmup_ratio": {"low": 0.0, "high": 0.2},
        "train.epochs": {"low": 1, "high": 4, "step": 1},
        "train.batch_size": {"choices": [4, 8]}}})
    panel = SweepPanel(config, "panel", tmp_path / "runs")
    assert len(panel.controls) == 2 + 2 * 3  # trials, storage, and low / high per numeric key
    for key, control in panel.controls.items():
        assert control.tooltip and control.tooltip.strip(), f"{key} has no help (the page would show title=null)"
        assert control.description_allow_html, key
        assert _span_title(control.description) == control.tooltip, key
    help_of = {key: control.tooltip for key, control in panel.controls.items()}
    assert str(tmp_path / "runs" / "panel") in help_of["storage"]  # where the default sqlite file goes
    # Each end of a range names its key, which end it is, and how the trials sample the range.
    assert "smallest value of train.learning_rate" in help_of["train.learning_rate.low"]
    assert "largest value of train.learning_rate" in help_of["train.learning_rate.high"]
    assert "log scale" in help_of["train.learning_rate.low"]
    assert "steps of 1" in help_of["train.epochs.high"] and "uniformly" in help_of["train.warmup_ratio.low"]
    # The labels still say low / high, and moving a slider still edits the space.
    assert ">low</span>" in panel.controls["train.warmup_ratio.low"].description
    panel.controls["train.warmup_ratio.high"].value = 0.3
    assert config.sweep.space["train.warmup_ratio"]["high"] == pytest.approx(0.3)
