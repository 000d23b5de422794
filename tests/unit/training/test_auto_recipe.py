"""The automatic recipe (train.budget) on a tiny model: proxy runs with Optuna and pruning within the
search's share of the budget, the winner in plan.json and config.yaml, the training stage using it
and recording the actual seconds against the budget; and the budget arithmetic on its own."""

import json
import warnings

import pytest
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.config import RunConfig
from sttune_helpers.training.auto_recipe import _trial_estimate, batch_sizes, final_length


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


TIMING = {"step_s": 0.5, "eval_s": 4.0, "save_s": 1.0, "overhead_s": 10.0}


def test_final_length_fits_the_time_left_and_never_exceeds_the_epochs():
    config = RunConfig().with_overrides({"train.batch_size": 32, "train.epochs": 2, "train.evaluations_per_epoch": 2,
                                         "train.restore_best": "never"})
    # 3,200 rows at batch 32: 100 steps an epoch, 200 for the two epochs.
    roomy = final_length(config, 3200, "cpu", "pair_score", "CoSENTLoss", TIMING, available_s=10_000)
    assert roomy["default_steps"] == 200 and roomy["max_steps"] == 200 and roomy["fits_steps"] == 200
    tight = final_length(config, 3200, "cpu", "pair_score", "CoSENTLoss", TIMING, available_s=60)
    # 10 s start-up + steps x 0.5 s + validations every 50 steps (or steps // 2 below 100) x 5 s
    assert tight["max_steps"] == 80 and tight["evaluations"] == 2 and tight["train_s"] <= 60
    assert final_length(config, 3200, "cpu", "pair_score", "CoSENTLoss", TIMING, available_s=5)["max_steps"] == 1


def test_batch_sizes_and_trial_estimates():
    assert batch_sizes(2000, 16) == [16, 32, 64]
    assert batch_sizes(48, 16) == [16, 32]
    assert batch_sizes(10, 16) == [10]
    records = [{"batch_size": 16, "seconds": 20.0, "steps": 40}, {"batch_size": 32, "seconds": 12.0, "steps": 10}]
    assert _trial_estimate([], 16, 40) is None
    assert _trial_estimate(records, 16, 40) == pytest.approx(20.0)
    assert _trial_estimate(records, 64, 40) == pytest.approx(40 * 1.2 * 2)  # the slowest rate, scaled to the batch


def test_auto_recipe_searches_within_its_share_prunes_and_the_training_stage_uses_the_choice(tmp_path, tiny_folder):
    from sttune_helpers.stages import training as training_stage
    from sttune_helpers.training import auto_recipe, auto_trials_table

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.budget=3m", "train.epochs=2"])
    # Two trials that learn (the same, seeded: 0.342 at step 3), then one whose learning rate is ~0: at
    # the first validation point it is still the base model (0.319), behind the median, and is pruned there.
    good = {"loss": "CoSENTLoss", "batch_size": 16, "learning_rate": 1e-3}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Fixed parameter", category=UserWarning)  # outside the range
        plan = auto_recipe(run, config, proxy_steps=6, proxy_evaluations=2, max_trials=3,
                           enqueue=[good, good, {**good, "learning_rate": 1e-12}])
    auto = plan["auto"]
    trials, metric = auto["trials"], auto["metric"]
    assert metric == "validation_spearman_cosine"
    assert len(trials) == 3 and [t["state"] for t in trials] == ["complete", "complete", "pruned"]
    assert trials[2]["steps"] == 3 and trials[2]["values"] == [[3, trials[2][metric]]]  # at the first point
    assert trials[2][metric] < trials[0]["values"][0][1] - 0.01  # clearly worse there
    assert all(t["steps"] == 6 and [s for s, _ in t["values"]] == [3, 6] for t in trials[:2])
    # The search stays within its share (a trial that would overrun is not started; generous slack).
    assert auto["search_budget_s"] == pytest.approx(0.35 * 180)
    assert sum(t["seconds"] for t in trials) <= auto["search_s"] + 0.05
    assert auto["search_s"] <= auto["search_budget_s"] * 1.5 + 15
    # The winner: the best complete trial, in the plan, in config.yaml and in the config in memory.
    winner = max(trials[:2], key=lambda t: t[metric])
    choice = auto["choice"]
    assert (choice["loss"], choice["learning_rate"], choice["batch_size"]) == (
        winner["loss"], winner["learning_rate"], winner["batch_size"])
    assert plan["loss"]["name"] == choice["loss"] and plan["loss"]["chosen_by"].startswith("auto recipe")
    estimate = auto["estimate"]
    assert 1 <= choice["max_steps"] <= estimate["default_steps"] == 6  # 48 rows at batch 16 for 2 epochs
    assert auto["planned_s"] <= auto["budget_s"]
    saved = run.load_config()
    assert (saved.train.learning_rate, saved.train.batch_size, saved.train.max_steps) == (
        choice["learning_rate"], choice["batch_size"], choice["max_steps"])
    assert saved.train.budget == "3m" and saved.data.shape == "auto"  # the rest as it was
    assert config.train.max_steps == choice["max_steps"]
    assert json.loads(run.plan_path.read_text())["auto"] == auto
    assert not (run.root / "auto-search").exists()  # the proxies' folder is temporary
    assert not run.model_dir.exists() and not run.training_summary_path.exists()
    table = auto_trials_table(plan)
    assert list(table["pruned"]) == [False, False, True] and table["chosen"].sum() == 1
    assert {"loss", "learning_rate", "batch_size", "steps", metric, "seconds"} <= set(table.columns)

    # The training stage reads config.yaml: the chosen batch, learning rate and length; then the budget check.
    summary = training_stage.run(run.root)
    assert summary["per_device_batch_size"] == choice["batch_size"]
    assert summary["max_steps"] == choice["max_steps"] and summary["loss"] == choice["loss"]
    rates = [e["learning_rate"] for e in summary["log_history"] if "learning_rate" in e]
    assert rates and 0 < max(rates) <= choice["learning_rate"]
    budget = json.loads(run.training_summary_path.read_text())["budget"]
    assert budget == summary["budget"]
    assert budget["budget_s"] == 180 and budget["search_s"] == auto["search_s"]
    assert budget["train_s"] == summary["train_seconds"] <= budget["stage_s"]
    assert budget["total_s"] == pytest.approx(auto["search_s"] + budget["stage_s"], abs=0.11)
    assert budget["within"] == (budget["total_s"] <= 180)
    assert "budget 3m" in training_stage.describe(summary)


def test_without_a_budget_stage_02_runs_no_recipe_and_with_one_skips_the_bake_off():
    from sttune_helpers.stages import loss_selection

    assert loss_selection.auto_recipe(None, RunConfig()) is None  # nothing is read or written
    config = RunConfig().with_overrides({"loss.bake_off": True, "train.budget": "10m"})
    assert loss_selection.bake_off(None, config) is None
