"""Model selection after training: weight arithmetic (soups, WiSE-FT mixes), the candidates, the
rule with its forgetting budget, and the whole step on a tiny model."""

import pytest
import torch

from sttune_helpers.config import ConfigError, load_preset
from sttune_helpers.core.errors import SettingError
from sttune_helpers.training import TrainingError
from sttune_helpers.training.selection import (
    Candidate,
    WeightHistory,
    check_selection_settings,
    choose,
    select_model,
    soup_members,
    training_points,
)
from sttune_helpers.training.weights import average_states, mix_states


def state(value: float) -> dict:
    return {"w": torch.full((2, 2), value), "steps": torch.tensor([7])}


def test_mixing_is_exact_at_both_ends_and_linear_between():
    base, tuned = state(0.0), state(4.0)
    assert torch.equal(mix_states(base, tuned, 0.0)["w"], base["w"])
    assert torch.equal(mix_states(base, tuned, 1.0)["w"], tuned["w"])
    assert torch.allclose(mix_states(base, tuned, 0.25)["w"], torch.full((2, 2), 1.0))
    assert torch.equal(mix_states(base, tuned, 0.25)["steps"], tuned["steps"])  # integer buffers are not mixed
    with pytest.raises(TrainingError, match="within 0..1"):
        mix_states(base, tuned, 1.5)


def test_a_soup_is_the_uniform_average_and_needs_one_layout():
    assert torch.allclose(average_states([state(1.0), state(2.0), state(6.0)])["w"], torch.full((2, 2), 3.0))
    with pytest.raises(TrainingError, match="differ in their modules"):
        average_states([state(1.0), {"other": torch.zeros(2)}])
    with pytest.raises(TrainingError, match="cannot be mixed"):
        mix_states(state(1.0), {"w": torch.zeros(3), "steps": torch.tensor([1])}, 0.5)


def history_of(*values: float, every: int = 100, first: int = 500) -> WeightHistory:
    """Validation points every ``every`` steps from step ``first``, with these weights."""
    history = WeightHistory(keep=len(values))
    history.points.extend((first + i * every, state(v)) for i, v in enumerate(values))
    return history


def test_the_candidates_name_the_fine_tuned_model_and_leave_out_duplicates():
    # train.restore_best kept the last model (final = the last validation point): best is another step.
    points = training_points(state(4.0), history_of(1.0, 2.0, 3.0, 4.0), best_state=state(2.0), soup_size=3)
    assert list(points) == ["last", "best", "soup"]
    assert torch.allclose(points["soup"]["w"], torch.full((2, 2), 3.0))  # the last three points: 2, 3, 4


def test_a_soup_averages_only_the_last_third_of_training():
    # SciFact's two validation points, half a run apart (steps 104 and 208): no soup.
    history = history_of(1.0, 2.0, every=104, first=104)
    assert list(training_points(state(2.0), history, best_state=state(2.0), soup_size=3)) == ["best"]
    assert [step for step, _ in soup_members(history, 3, state(2.0).keys())] == [208]
    # Points at steps 500, 600, 700 and 800 of 800: 500 is before the last third, so 600-800 are averaged.
    history = history_of(1.0, 2.0, 3.0, 6.0)
    assert [step for step, _ in soup_members(history, 4, state(6.0).keys())] == [600, 700, 800]
    soup = training_points(state(6.0), history, best_state=None, soup_size=4)["soup"]
    assert torch.allclose(soup["w"], torch.full((2, 2), 11 / 3))
    # It restored the best: the last validation point is the other candidate.
    points = training_points(state(2.0), history_of(1.0, 2.0, 3.0), best_state=state(2.0), soup_size=0)
    assert list(points) == ["best", "last"] and torch.equal(points["last"]["w"], state(3.0)["w"])
    # LoRA snapshots (other keys) cannot be mixed with the merged model: only the final model stays.
    lora = WeightHistory(keep=3)
    lora.points.append((1, {"w.lora_A": torch.zeros(2)}))
    assert list(training_points(state(2.0), lora, best_state=None, soup_size=3)) == ["last"]


def candidate(name, validation, within_noise, reference=None, forgetting=None, alpha=1.0):
    return Candidate(name, name.split("@")[0], alpha, validation=validation, within_noise=within_noise,
                     reference=reference or {}, forgetting=forgetting)


def test_within_the_noise_the_most_general_candidate_wins_under_the_budget():
    candidates = [candidate("last", 0.860, True, {"sts": 0.70, "squad": 0.60}, 0.08),
                  candidate("last@0.7", 0.858, True, {"sts": 0.76, "squad": 0.66}, 0.005, alpha=0.7),
                  candidate("last@0.5", 0.857, True, {"sts": 0.78, "squad": 0.67}, -0.01, alpha=0.5),
                  candidate("soup", 0.840, False, {}, None)]
    chosen, reason = choose(candidates, max_forgetting=0.01, rule="most_general")
    assert chosen.name == "last@0.5" and "within the noise of the best (last, 0.8600)" in reason
    assert choose(candidates, max_forgetting=None, rule="most_general")[0].name == "last@0.5"
    # The budget excludes the most general candidate only where it forgets too much.
    candidates[2].forgetting = 0.02
    assert choose(candidates, max_forgetting=0.01, rule="most_general")[0].name == "last@0.7"
    assert choose(candidates, max_forgetting=None, rule="most_general")[0].name == "last@0.5"


def test_the_budget_wins_over_the_noise_and_the_least_forgetting_is_the_last_resort():
    candidates = [candidate("last", 0.86, True, {"sts": 0.70}, 0.05),
                  candidate("last@0.7", 0.84, False, {"sts": 0.74}, 0.02, alpha=0.7),
                  candidate("last@0.5", 0.82, False, {"sts": 0.76}, 0.004, alpha=0.5),
                  candidate("last@0.3", 0.80, False, {"sts": 0.77}, -0.002, alpha=0.3)]
    chosen, reason = choose(candidates, max_forgetting=0.01, rule="most_general")
    assert chosen.name == "last@0.5" and "no candidate within the validation noise" in reason
    chosen, reason = choose(candidates, max_forgetting=-0.01, rule="most_general")
    assert chosen.name == "last@0.3" and "forgets least" in reason


def test_the_best_validation_rule_keeps_the_best_candidate_that_keeps_to_the_budget():
    candidates = [candidate("last", 0.860, True, {"sts": 0.70, "squad": 0.60}, 0.08),
                  candidate("last@0.85", 0.859, True, {"sts": 0.74, "squad": 0.64}, 0.03, alpha=0.85),
                  candidate("last@0.7", 0.858, True, {"sts": 0.76, "squad": 0.66}, 0.005, alpha=0.7),
                  candidate("last@0.5", 0.850, False, {"sts": 0.78, "squad": 0.67}, -0.01, alpha=0.5)]
    chosen, reason = choose(candidates, max_forgetting=0.05, rule="best_validation")
    assert chosen.name == "last@0.85" and "the best validation metric (0.8590)" in reason
    assert choose(candidates, max_forgetting=0.01, rule="best_validation")[0].name == "last@0.7"
    assert choose(candidates, max_forgetting=None, rule="best_validation")[0].name == "last"
    # most_general trades validation within the noise for general ability.
    assert choose(candidates, max_forgetting=0.05, rule="most_general")[0].name == "last@0.7"
    chosen, reason = choose(candidates, max_forgetting=-0.05, rule="best_validation")
    assert chosen.name == "last@0.5" and "forgets least" in reason


def test_the_fine_tuned_model_is_kept_unless_beaten_beyond_the_noise():
    def beating(c, gain, low):
        c.gain_over_fine_tuned, c.gain_ci_family, c.beats_fine_tuned = gain, [low, gain + 0.004], low > 0
        c.gain_confidence = 0.975
        return c

    candidates = [candidate("last", 0.860, True, {"sts": 0.72}, 0.02),
                  beating(candidate("last@0.85", 0.863, True, {"sts": 0.74}, 0.01, alpha=0.85), 0.003, -0.001),
                  beating(candidate("soup", 0.866, True, {"sts": 0.71}, 0.03), 0.006, 0.002)]
    # The 0.85 mix is best on validation among those within the noise, but only the soup beats "last".
    chosen, reason = choose(candidates, max_forgetting=0.05, rule="fine_tuned_unless_beaten", fine_tuned="last")
    assert chosen.name == "soup" and "beats the fine-tuned model (last)" in reason
    assert "97.5% interval [+0.0020, +0.0100], family-wise over 2 candidates" in reason
    assert choose(candidates, max_forgetting=0.05, rule="best_validation")[0].name == "soup"
    # The soup breaks a tighter budget: nothing affordable beats "last", which keeps to it.
    chosen, reason = choose(candidates, max_forgetting=0.025, rule="fine_tuned_unless_beaten", fine_tuned="last")
    assert chosen.name == "last" and "no candidate beats it" in reason
    # "last" breaks the budget itself: the best on validation among those that keep to it.
    chosen, reason = choose(candidates, max_forgetting=0.015, rule="fine_tuned_unless_beaten", fine_tuned="last")
    assert chosen.name == "last@0.85"
    # ... and the reason says what keeping to the budget cost, and how to keep the fine-tuned model.
    assert "the fine-tuned model (last, validation 0.8600) loses +0.0200 on the reference" in reason
    assert "more than eval.max_forgetting=0.015" in reason and "(0.8630, +0.0030;" in reason
    assert "eval.max_forgetting=null keeps the fine-tuned model" in reason
    assert "train.task_prompt with train.general_anchor" in reason  # the option that may avoid the trade
    # Without a reference, the same test on validation alone.
    plain = [candidate("best", 0.80, True), beating(candidate("soup", 0.81, True), 0.01, -0.002)]
    assert choose(plain, max_forgetting=0.05, rule="fine_tuned_unless_beaten", fine_tuned="best")[0].name == "best"


def test_beating_the_fine_tuned_model_holds_for_the_whole_family_of_comparisons():
    from types import SimpleNamespace

    import numpy as np

    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.training.selection import mark_noise

    rng = np.random.default_rng(0)

    def scores(value, spread=0.001):  # a candidate's metric and its resamples, paired with "last"'s zeros
        draws = value + spread * rng.standard_normal(4000) if value else np.zeros(4000)
        return SimpleNamespace(metrics={"m": {"value": value}}, resampled={"m": draws})

    boot = Bootstrap(np.zeros((4000, 1), dtype=int), confidence=0.95)
    # +0.0022 with an sd of 0.001: above 0 at 95% (lower end ~ +0.0002), not at 99% (~ -0.0004).
    gains = {"last": 0.0, "soup": 0.0022, "last@0.85": -0.004, "last@0.7": -0.006, "last@0.5": -0.01, "best": -0.002}
    candidates = [candidate(name, 0.8 + gain, False) for name, gain in gains.items()]
    mark_noise(candidates, {name: scores(gain) for name, gain in gains.items()}, "m", boot, "last")
    soup = candidates[1]
    assert soup.gain_ci95[0] > 0 and soup.gain_confidence == pytest.approx(0.99) and soup.gain_ci_family[0] < 0
    assert not any(c.beats_fine_tuned for c in candidates)
    assert choose(candidates, None, "fine_tuned_unless_beaten", "last")[0].name == "last"
    # Put alone to the fine-tuned model, the same gain beats it.
    alone = [candidate("last", 0.8, False), candidate("soup", 0.8022, False)]
    mark_noise(alone, {"last": scores(0.0), "soup": scores(0.0022)}, "m", boot, "last")
    assert alone[1].gain_confidence == pytest.approx(0.95) and alone[1].beats_fine_tuned
    assert choose(alone, None, "fine_tuned_unless_beaten", "last")[0].name == "soup"


def test_candidates_are_compared_in_the_precision_validation_uses():
    from sttune_helpers.training.candidate_scoring import candidate_precision

    config = load_preset("smoke")
    assert (candidate_precision(config, "bf16"), candidate_precision(config, "fp32")) == ("bf16", "fp32")
    config.train.validation_precision = "fp32"
    assert candidate_precision(config, "bf16") == "fp32"
    config.eval.precision = "bf16"  # asked for everywhere
    assert candidate_precision(config, "fp32") == "bf16"


def test_without_a_reference_the_best_validation_metric_wins():
    candidates = [candidate("last", 0.80, True), candidate("best", 0.82, True), candidate("soup", 0.81, True)]
    chosen, reason = choose(candidates, max_forgetting=0.01, rule="best_validation")
    assert chosen.name == "best" and "no reference" in reason


@pytest.mark.parametrize("name, value, message", [
    ("selection_alphas", [0.5, 1.0], r"eval\.selection_alphas\[1\]: 1\.0 is out of range; expected a number in \(0, 1\)"
     ),
    ("soup_size", -1, r"eval\.soup_size: -1 is out of range; expected an integer >= 0"),
    ("max_forgetting", -0.1, r"eval\.max_forgetting: -0\.1 is out of range"),
    ("selection_rule", "best",
     r"eval\.selection_rule'?:? .*one of 'fine_tuned_unless_beaten', 'best_validation', 'most_general'")])
def test_selection_settings_that_cannot_work_are_refused(name, value, message):
    # Refused when the config is built (config/ranges.py), and by training for a config edited in code.
    with pytest.raises(ConfigError, match=message):
        load_preset("smoke").with_overrides({f"eval.{name}": value})
    config = load_preset("smoke")
    setattr(config.eval, name, value)
    with pytest.raises(SettingError, match=message):
        check_selection_settings(config)


@pytest.mark.parametrize(("rule", "plot_all"), [("most_general", False), ("best_validation", False),
                                              ("best_validation", True), ("fine_tuned_unless_beaten", False)])
def test_training_saves_the_chosen_candidate_and_keeps_the_fine_tuned_one(tmp_path, rule, plot_all):
    from helpers.tiny_model import build_tiny_model_folder, prepared_run

    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.modeling import load_model
    from sttune_helpers.scoring import load_task, score_model
    from sttune_helpers.training import train_model

    run, config = prepared_run(tmp_path, str(build_tiny_model_folder(tmp_path / "model")), [
        "train.learning_rate=1e-3", "train.max_steps=6", "train.evaluations_per_epoch=6",
        "train.early_stopping_patience=null", "eval.select_model=true", "eval.selection_alphas=[0.5]",
        "eval.max_forgetting=null", f"eval.selection_rule={rule}", f"eval.selection_plot_all={str(plot_all).lower()}"])
    from sttune_helpers.core import progress
    from sttune_helpers.training import candidate_scoring

    events, scored_tasks = [], []
    encode_and_score = candidate_scoring.score_model

    def counting(task, *args, **kwargs):
        scored_tasks.append(task.name)
        return encode_and_score(task, *args, **kwargs)

    with progress.reporting_to(events.append), pytest.MonkeyPatch.context() as patch:
        patch.setattr(candidate_scoring, "score_model", counting)
        summary = train_model(run, config)
    selection = summary["selection"]
    from sttune_helpers.training.candidate_scoring import candidate_precision

    assert selection["precision"] == candidate_precision(config, summary["precision"])
    names = [c["name"] for c in selection["candidates"]]
    assert names[0] == selection["fine_tuned"] and "soup" in names and names[-1].endswith("@0.5")
    # The terminal gets a line per candidate scored on validation, per model on the reference, and the choice.
    scored = [e for e in events if e.task == "model selection" and e.kind == "milestone"]
    assert [(e.done, e.total) for e in scored] == [(i, len(names)) for i in range(1, len(names) + 1)]
    assert [e.detail for e in scored] == [f"{c['name']}: validation {selection['metric']} {c['validation']:.4f}"
                                          for c in selection["candidates"]]
    on_reference = [e.detail for e in events if e.task == "model selection on the general reference"]
    assert on_reference[0] == "base scored" and len(on_reference) == 1 + sum(
        1 for c in selection["candidates"] if c["reference"])
    assert events[-1].kind == "end" and events[-1].detail == f"chose {selection['chosen']}"
    assert selection["chosen"] in names and selection["reason"].startswith(selection["chosen"])
    near_best = {c["name"] for c in selection["candidates"] if c["within_noise"]}
    on_reference = {c["name"] for c in selection["candidates"] if c["reference"]}
    if rule == "best_validation":  # no budget: the best on validation, whatever it forgets
        chosen = next(c for c in selection["candidates"] if c["name"] == selection["chosen"])
        assert chosen["validation"] == max(c["validation"] for c in selection["candidates"])
        assert selection["rule"] == rule
        # Only the choice is scored on the reference, unless the plot asks for all within the noise
        # (several are within it here, so scoring them all would show).
        assert len(near_best) >= 2 and on_reference == (near_best if plot_all else {chosen["name"]})
    elif rule == "fine_tuned_unless_beaten":  # the fine-tuned model, unless beaten beyond the noise
        others = [c for c in selection["candidates"] if c["name"] != selection["fine_tuned"]]
        assert others and all(c["gain_ci95"][0] is not None for c in others)
        assert all(c["gain_confidence"] == pytest.approx(1 - 0.05 / len(others)) for c in others)
        beaten = [c for c in others if c["beats_fine_tuned"]]
        assert all(c["gain_ci_family"][0] > 0 for c in beaten)
        assert selection["chosen"] == (max(beaten, key=lambda c: c["validation"])["name"] if beaten
                                       else selection["fine_tuned"])
        assert selection["fine_tuned"] in on_reference and on_reference <= {selection["fine_tuned"]} | {
            c["name"] for c in beaten}
        # Notebook 03's table shows that evidence (none for the fine-tuned model itself).
        from sttune_helpers.stages.training import selection_table

        table = selection_table({"selection": selection})
        assert list(table["beats fine-tuned"]) == [None if c["name"] == selection["fine_tuned"] else
                                                   c["beats_fine_tuned"] for c in selection["candidates"]]
    else:  # most_general weighs every candidate within the noise
        assert on_reference == near_best
    # Trained on STS-B: the reference's STS part is not STS-B, and every part was scored for the base.
    parts = selection["reference"]["parts"]
    assert parts and not any("stsb" in p for p in parts) and set(selection["reference"]["base"]) == set(parts)
    assert any("stsb" in e["part"] for e in selection["reference"]["excluded"])
    # The base's reference embeddings are kept for the next run in this runs directory; the candidates'
    # (weights no other run has) are not.
    from sttune_helpers.scoring.embedding_cache import cache_directory

    assert len(list(cache_directory(run.root.parent).iterdir())) == 1
    # model/ holds the chosen candidate: it scores what the selection recorded for it on validation.
    task = load_task(run, config, split="validation")
    # Each set of weights is encoded on validation once: selection reads back the best and last models'
    # scores from the best-or-last comparison (which ran here: it recorded a difference), and a mix
    # equal to a scored model (here the warm-up's first step leaves the weights as they were) is not
    # encoded again.
    assert summary["checkpoint_choice"]["difference"] is not None
    assert scored_tasks.count(task.name) == len({c["validation"] for c in selection["candidates"]})
    chosen = next(c for c in selection["candidates"] if c["name"] == selection["chosen"])
    scored = score_model(task, load_model(str(run.model_dir), device="cpu"), Bootstrap.draw(task.n, 1, 0.95, 0),
                         precision=selection["precision"])
    assert scored.metrics[selection["metric"]]["value"] == pytest.approx(chosen["validation"], abs=1e-5)
    assert run.fine_tuned_dir.is_dir() == selection["differs_from_fine_tuned"]
    # The task-vs-general plot draws every candidate scored on the reference, and the base.
    from sttune_helpers.training import plot_selection

    figure = plot_selection(selection, path=tmp_path / "selection.png")
    drawn = sum(len(c.get_offsets()) for c in figure.axes[0].collections)
    assert drawn == sum(1 for c in selection["candidates"] if c["reference"]) >= 1
    # Candidates within the noise that the rule did not score are counted in the title, not hidden.
    assert (f"{len(near_best - on_reference)} more within the noise" in figure.axes[0].get_title()) == bool(
        near_best - on_reference)
    assert (tmp_path / "selection.png").stat().st_size > 10_000


def test_selection_after_lora_mixes_the_merged_model_with_the_base(tmp_path):
    from helpers.tiny_model import build_tiny_model_folder, prepared_run

    from sttune_helpers.training import train_model

    run, config = prepared_run(tmp_path, str(build_tiny_model_folder(tmp_path / "model")), [
        "train.learning_rate=1e-2", "train.max_steps=4", "train.evaluations_per_epoch=6",
        "train.early_stopping_patience=null", "train.lora_rank=2", "eval.select_model=true",
        "eval.selection_alphas=[0.5]", "eval.reference_max_pairs=50"])
    selection = train_model(run, config)["selection"]
    names = [c["name"] for c in selection["candidates"]]
    # The in-training snapshots hold adapter weights and are left out; the merged model is mixed with the base.
    assert "soup" not in names and names[-1] == f"{names[0]}@0.5" and len(names) <= 3
    assert selection["chosen"] in names


class MixScorer:
    """Scores a weight state by its one value w (a mix of base 0 and fine-tuned 1 at alpha has w = alpha):
    validation ``task(w)`` and the reference part ``general(w)``; counts what it scores."""

    metric = "m"

    def __init__(self, task, general=None):
        import numpy as np

        from sttune_helpers.core.statistics import Bootstrap

        self.task, self.general, self.scored = task, general, []
        self.boot = Bootstrap(np.zeros((2000, 1), dtype=int), confidence=0.95)
        self.parts = [type("Part", (), {"name": "sts"})()] if general else []
        self.reference, self.precision = None, "fp32"
        self.validation = type("Validation", (), {"n": 2000})()

    def validation_scores(self, weights):
        from types import SimpleNamespace

        import numpy as np

        w = round(float(weights["w"][0, 0]), 4)
        self.scored.append(w)
        value = self.task(w)
        draws = value + 0.0005 * np.random.default_rng(int(w * 1e4)).standard_normal(2000)
        return SimpleNamespace(metrics={"m": {"value": value}}, resampled={"m": draws})

    def reference_scores(self, weights, cache_dir=None):
        return {"sts": self.general(round(float(weights["w"][0, 0]), 4))}


class OneWeight(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((2, 2), value))
        self.register_buffer("steps", torch.tensor([7]))


@pytest.mark.parametrize(("peak", "scored_mixes"), [(1.0, [0.85]), (0.8, [0.85, 0.7]), (0.4, [0.85, 0.7, 0.5])])
def test_mixes_below_the_one_above_them_end_the_descent_of_the_alphas(monkeypatch, peak, scored_mixes):
    # Validation is concave in alpha (peak at ``peak``): past the first mix that scores below the one
    # above it the rest score lower still, and fine_tuned_unless_beaten leaves them unscored.
    from sttune_helpers.core import progress
    from sttune_helpers.training import selection

    monkeypatch.setattr(selection, "read_report", lambda run: {"shape": "pair_score"})
    config = load_preset("smoke")
    config.eval.soup_size, config.eval.max_forgetting, config.eval.cache_embeddings = 0, 0.05, False
    scorer = MixScorer(task=lambda w: 0.8 - (w - peak) ** 2, general=lambda w: 0.8 - 0.01 * w)
    events = []
    with progress.reporting_to(events.append):
        record = select_model(None, config, OneWeight(1.0), history_of(1.0), state(0.0), None, scorer)
    assert scorer.scored == [1.0, *scored_mixes]
    assert record["unscored"] == [f"last@{a:g}" for a in [0.85, 0.7, 0.5] if a not in scored_mixes]
    # the terminal's last line counts what was scored, and says what was not
    end = next(e for e in events if e.task == "model selection" and e.kind == "end")
    assert (end.done, end.total) == (1 + len(scored_mixes),) * 2
    unscored = len(record["unscored"])
    skipped = f"; {unscored} lower mix{'es' if unscored > 1 else ''} not scored" if unscored else ""
    assert end.detail == f"chose {record['chosen']}{skipped}"
    # the family-wise level still counts the three planned mixes: skipping one makes no win cheaper
    assert [c["gain_confidence"] for c in record["candidates"][1:]] == pytest.approx([1 - 0.05 / 3] * len(scored_mixes))
    best = max(record["candidates"], key=lambda c: c["validation"])
    assert best["alpha"] == min([1.0, *scored_mixes], key=lambda a: abs(a - peak))
    # Notebook 03's table names the mixes left unscored, and why.
    from sttune_helpers.stages.training import selection_table

    table = selection_table({"selection": record})
    assert list(table["candidate"]) == ["last", *(f"last@{a:g}" for a in [0.85, 0.7, 0.5])]
    assert list(table["validation m"] == "not scored: the mix above it scored lower") == [False] * (
        1 + len(scored_mixes)) + [True] * len(record["unscored"])


def test_every_mix_is_scored_where_the_fine_tuned_model_breaks_the_budget_or_the_rule_weighs_all(monkeypatch):
    from sttune_helpers.training import selection

    monkeypatch.setattr(selection, "read_report", lambda run: {"shape": "pair_score"})
    config = load_preset("smoke")
    config.eval.soup_size, config.eval.max_forgetting, config.eval.cache_embeddings = 0, 0.05, False
    # The fine-tuned model loses 0.1 on the reference, the mixes alpha x 0.1: only 0.5 keeps to 0.05.
    scorer = MixScorer(task=lambda w: 0.7 + 0.1 * w, general=lambda w: 0.8 - 0.1 * w)
    model = OneWeight(1.0)
    record = select_model(None, config, model, history_of(1.0), state(0.0), None, scorer)
    assert scorer.scored == [1.0, 0.85, 0.7, 0.5] and record["unscored"] == []
    assert record["chosen"] == "last@0.5" and float(model.w[0, 0]) == pytest.approx(0.5)
    for rule, plot_all in (("best_validation", False), ("most_general", False), ("fine_tuned_unless_beaten", True)):
        config.eval.selection_rule, config.eval.selection_plot_all, config.eval.max_forgetting = rule, plot_all, None
        scorer = MixScorer(task=lambda w: 0.8 - (w - 1.0) ** 2, general=lambda w: 0.8 - 0.01 * w)
        record = select_model(None, config, OneWeight(1.0), history_of(1.0), state(0.0), None, scorer)
        assert scorer.scored == [1.0, 0.85, 0.7, 0.5] and record["unscored"] == []
