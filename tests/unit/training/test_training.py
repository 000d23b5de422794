"""The training stage on a tiny model: early stopping, resume, the NaN and collapse guards, and
training on shapes other than pair_score."""

import json
import math

import numpy as np
import pytest
from conftest import REPO
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.config import load_preset
from sttune_helpers.core import progress
from sttune_helpers.training import (
    CollapseGuard,
    EmbeddingCollapseError,
    NonFiniteLossGuard,
    TrainingDivergedError,
    mean_pairwise_cosine,
    plan_training,
    train_model,
)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def test_early_stopping_stops_when_validation_stops_improving(tmp_path, tiny_folder):
    # A learning rate of 1e-30 (0 is out of range) changes no float32 weight: no evaluation after the
    # first improves the validation metric.
    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.learning_rate=1e-30", "train.warmup_ratio=0",
                                                       "train.max_steps=30", "train.evaluations_per_epoch=6",
                                                       "train.early_stopping_patience=2"])
    summary = train_model(run, config)
    assert summary["eval_steps"] == 1
    assert summary["global_step"] == 3 and summary["stopped_early"]
    assert summary["best_checkpoint"].endswith("checkpoint-1")

    # The notebook's curves come from the TensorBoard event files, which hold what the trainer logged.
    from sttune_helpers.training import plot_tensorboard, tensorboard_scalars

    series = tensorboard_scalars(run.tensorboard_dir)
    assert [step for step, _ in series["train/loss"]] == [1, 2, 3]
    assert "train/learning_rate" in series and "eval/validation_spearman_cosine" in series
    logged = {e["step"]: e["loss"] for e in summary["log_history"] if "loss" in e}
    assert [v for _, v in series["train/loss"]] == pytest.approx([logged[s] for s in (1, 2, 3)], rel=1e-5)
    plot_tensorboard(run.tensorboard_dir, summary, path=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_resume_continues_from_the_last_checkpoint(tmp_path, tiny_folder):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.max_steps=4", "train.evaluations_per_epoch=2",
                                                       "train.early_stopping_patience=null"])
    events = []  # the terminal's progress (core/progress.py)
    with progress.reporting_to(events.append), pytest.raises(KeyboardInterrupt):
        train_model(run, config, callbacks=[Interrupt()])
    assert sorted(p.name for p in run.checkpoints_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    # Step 3 was interrupted by the callback before the progress one: no line for it, nor an end.
    assert [(e.done, e.kind, e.since, e.total) for e in events] == [(1, "step", 0, 4), (2, "step", 0, 4),
                                                                    (2, "milestone", 0, 4)]
    events.clear()
    with progress.reporting_to(events.append):
        summary = train_model(run, config, resume=True)
    assert summary["resumed_from_step"] == 2 and summary["global_step"] == 4
    # Steps 1-2 come from the checkpoint's history, 3-4 from the resumed run: nothing trained twice.
    assert [e["step"] for e in summary["log_history"] if "loss" in e] == [1, 2, 3, 4]
    # The resumed run's rate counts from step 2; the validation at step 4 is the one the trainer logged.
    assert [(e.done, e.kind, e.since) for e in events] == [(3, "step", 2), (4, "step", 2), (4, "milestone", 2),
                                                           (4, "end", 2)]
    logged = next(e["eval_validation_spearman_cosine"] for e in summary["log_history"]
                  if e["step"] == 4 and "eval_validation_spearman_cosine" in e)
    assert events[2].detail == events[3].detail == f"validation spearman_cosine {logged:.4f}"


@pytest.mark.parametrize("enabled", [True, False])
def test_gradient_checkpointing_reaches_the_transformer_layers(tmp_path, tiny_folder, enabled):
    # sentence-transformers 6.2 takes it as gradient_checkpointing, 6.3+ as activation_checkpointing:
    # either way the encoder's layers must recompute their activations in the backward pass.
    from transformers import TrainerCallback

    seen = []

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append(any(getattr(module, "gradient_checkpointing", False) is True for module in model.modules()))

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.max_steps=2", "train.early_stopping_patience=null",
                                                       f"train.gradient_checkpointing={str(enabled).lower()}"])
    summary = train_model(run, config, callbacks=[Probe()])
    assert summary["global_step"] == 2 and seen == [enabled, enabled]


def test_nan_guard_fires_on_a_real_nan_loss(tmp_path, tiny_folder):
    # An infinite scale makes CoSENT's logits inf - inf: NaN at the first step.
    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["loss.name=CoSENTLoss", "loss.params={scale: .inf}",
                                                          "train.max_steps=3"])
    with pytest.raises(TrainingDivergedError, match=r"training stopped at step \d: the training loss is nan.*learning "
                                                      r"rate"):
        train_model(run, config)


def test_nan_guard_message_names_fp16():
    guard = NonFiniteLossGuard(2e-5, "fp16")

    class State:
        global_step = 7
    with pytest.raises(TrainingDivergedError, match="step 7: the training loss is inf.*fp16 overflow"):
        guard.on_log(None, State(), None, logs={"loss": math.inf})
    guard.on_log(None, State(), None, logs={"loss": 0.5, "learning_rate": 1e-5})


def test_collapse_guard_fires_on_a_collapsed_model(tiny_folder):
    import torch
    from sentence_transformers import SentenceTransformer

    texts = [f"probe sentence number {i} about topic {i % 5}" for i in range(12)]
    model = SentenceTransformer(tiny_folder, device="cpu")
    guard = CollapseGuard(model, texts, threshold=0.98)
    assert guard.base_value < 0.98 and guard.check(step=1) == pytest.approx(guard.base_value)
    with torch.no_grad():  # every token embedded at the same point: a collapsed model
        for parameter in model[0].auto_model.parameters():
            parameter.zero_()
        for module in model[0].auto_model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.bias.fill_(1.0)
    assert mean_pairwise_cosine(model, texts) > 0.999

    class State:
        global_step = 5
    with pytest.raises(EmbeddingCollapseError, match=r"step 5: the embeddings have collapsed.*learning rate"):
        guard.on_evaluate(None, State(), None)


def test_in_batch_negative_losses_get_the_no_duplicates_sampler():
    config = load_preset("smoke")
    assert plan_training(config, 100, "cpu", "retrieval", "MultipleNegativesRankingLoss").batch_sampler == \
        "no_duplicates"
    assert plan_training(config, 100, "cpu", "pair_binary", "ContrastiveLoss").batch_sampler == "batch_sampler"
    setup = plan_training(config, 100, "cpu", "pair_class", "SoftmaxLoss")
    assert (setup.metric_for_best_model, setup.greater_is_better) == ("eval_loss", False)


@pytest.mark.parametrize("source,extra,metric", [
    ("mrpc-train-sample.tsv", [], "eval_validation_cosine_ap"),
    ("snli-sample.tsv", ["data.group_by=premise_id", "data.labels=[entailment, neutral, contradiction]"], "eval_loss"),
    ("scifact-mini", ["data.max_train_rows=null", "data.max_validation_rows=null", "data.max_test_rows=null"],
     "eval_validation_cosine_ndcg@10"),
])
def test_training_on_other_shapes_follows_their_validation_metric(tmp_path, tiny_folder, source, extra, metric):
    run, config = prepare_tiny_run(tmp_path, tiny_folder, [f"data.source={REPO / 'tests' / 'data' / source}",
                                                       "data.shape=auto", "train.max_steps=2",
                                                       "train.evaluations_per_epoch=1", *extra])
    summary = train_model(run, config)
    assert summary["metric_for_best_model"] == metric and summary["global_step"] == 2
    evaluated = [e for e in summary["log_history"] if metric in e]
    assert evaluated and all(np.isfinite(e[metric]) for e in evaluated)
    assert json.loads(run.training_summary_path.read_text())["global_step"] == 2
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(run.model_dir), device="cpu").encode(["a saved model"]).shape == (1, 32)


def test_bake_off_trains_each_loss_and_writes_the_winner(tmp_path, tiny_folder):
    from sttune_helpers.training import bake_off, plot_bake_off

    source = REPO / "tests" / "data" / "mrpc-train-sample.tsv"
    run, config = prepare_tiny_run(tmp_path, tiny_folder, [f"data.source={source}", "data.shape=auto"])
    table = bake_off(run, config, candidates=["OnlineContrastiveLoss", "MultipleNegativesRankingLoss"], max_steps=2,
                     train_rows=32)
    assert set(table["loss"]) == {"OnlineContrastiveLoss", "MultipleNegativesRankingLoss"}
    scores = table["validation_cosine_ap"].tolist()
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert (table["steps"] == 2).all()
    plan = json.loads(run.plan_path.read_text())
    assert plan["loss"]["name"] == table["loss"][0] and plan["loss"]["chosen_by"].startswith("bake-off")
    assert [r["loss"] for r in plan["bake_off"]] == list(table["loss"])
    assert not any((run.root / "bake-off").rglob("checkpoint-*"))
    plot_bake_off(table, path=tmp_path / "bake-off.png")
    assert (tmp_path / "bake-off.png").stat().st_size > 5_000


def test_training_warns_of_texts_longer_than_max_seq_length_and_records_them(tmp_path, tiny_folder, capsys):
    # Long texts (a 1-MB one among them) are cut to max_seq_length tokens when encoded: training says
    # how many, and records it, rather than crashing or truncating silently.
    long_texts = ["word " * 200_000] + [" ".join(f"token{i}x{j}" for j in range(300)) for i in range(9)]
    rows = [f"a short sentence number {i},another short one {i},{i % 6}" for i in range(40)]
    rows += [f"{text.strip()},a brief reply {i},3" for i, text in enumerate(long_texts)]
    source = tmp_path / "pairs.csv"
    source.write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")
    run, config = prepare_tiny_run(tmp_path, tiny_folder, [f"data.source={source}", "train.max_steps=2",
                                                       "train.evaluations_per_epoch=1",
                                                       "train.early_stopping_patience=null"])
    assert "warning: 1 text(s) longer than 10,000 characters" in capsys.readouterr().out  # the data stage's warning
    train_rows = [json.loads(line) for line in (run.data_dir / "train.jsonl").read_text().splitlines()]
    in_train = sum(row["sentence1"] in {t.strip() for t in long_texts} for row in train_rows)
    assert in_train > 0  # 10 of 50 rows are long: the split keeps some in train
    summary = train_model(run, config)
    expected_texts = 2 * len(train_rows)
    assert summary["truncated_texts"]["truncated"] == in_train
    assert summary["truncated_texts"]["texts"] == expected_texts
    assert summary["truncated_texts"]["max_seq_length"] == 64
    assert (f"warning: {in_train:,} of {expected_texts:,} training texts are longer than max_seq_length=64 tokens "
            "and are truncated") in capsys.readouterr().out
    assert json.loads((run.root / "training.json").read_text())["truncated_texts"] == summary["truncated_texts"]
    # Texts that fit are not reported.
    from sttune_helpers.modeling import load_model, truncated_texts

    assert truncated_texts(load_model(tiny_folder, device="cpu", max_seq_length=64), ["short", "texts"]) is None


def test_the_last_model_is_kept_unless_the_best_checkpoint_is_better_beyond_the_noise(tmp_path, tiny_folder):
    # A learning rate of 1e-30 changes no float32 weight: every checkpoint holds the same weights, so
    # the best (step 1) cannot beat the last (step 3) and the last is kept.
    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.learning_rate=1e-30", "train.warmup_ratio=0",
                                                       "train.max_steps=30", "train.evaluations_per_epoch=6",
                                                       "train.early_stopping_patience=2"])
    summary = train_model(run, config)
    choice = summary["checkpoint_choice"]
    assert (choice["rule"], choice["best_step"], choice["last_step"]) == ("if_significant", 1, 3)
    assert choice["metric"] == "spearman_cosine" and choice["n_validation"] == 24
    assert choice["evaluations"] == 3 and choice["confidence"] == pytest.approx(0.975)  # steps 1, 2 and 3
    assert "family-wise over the 2 earlier validation points" in choice["reason"]
    assert choice["difference"] == pytest.approx(0, abs=1e-9) and choice["kept"] == "last"
    assert choice["best_value"] == pytest.approx(summary["best_metric"], abs=1e-4)  # the trainer's own figure
    assert summary["kept_checkpoint"].endswith("checkpoint-3") and "not better beyond the noise" in choice["reason"]
    from sttune_helpers.training import plot_curves

    (metric_axis,) = [ax for ax in plot_curves(summary).axes if ax.get_ylabel() == "validation spearman_cosine"]
    lines = {line.get_label(): line.get_xdata()[0] for line in metric_axis.lines if line.get_linestyle() in (":", "--")}
    assert lines == {"best checkpoint (step 1)": 1, "kept: last model (step 3)": 3}


def test_a_best_checkpoint_better_beyond_the_noise_is_restored(tmp_path, tiny_folder):
    import torch

    from sttune_helpers.modeling import packaged_model_path
    from sttune_helpers.training import compare_checkpoints
    from sttune_helpers.training.candidate_scoring import CandidateScorer
    from sttune_helpers.training.weights import snapshot

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["data.max_validation_rows=300"])
    config.model.name = str(packaged_model_path())
    scorer = CandidateScorer(run, config, device="cpu")
    # The packaged model as "best" against its weights drowned in noise as "last": on 300 STS-B pairs,
    # clearly better.
    strong, generator = snapshot(scorer.model), torch.Generator().manual_seed(0)
    weak = {key: value + torch.randn(value.shape, generator=generator) * value.std()
            if value.is_floating_point() and value.numel() > 1 else value for key, value in strong.items()}
    choice = compare_checkpoints(run, config, scorer, strong, weak, "eval_validation_spearman_cosine", 4, 8, 6)
    assert choice["kept"] == "best" and choice["ci95"][0] > 0 and choice["ci_family"][0] > 0
    assert choice["confidence"] == pytest.approx(0.99) and choice["evaluations"] == 6  # the best of 6 points
    assert choice["n_validation"] == 300 and choice["best_value"] > choice["last_value"] + 0.2
    assert "better beyond the noise and is restored" in choice["reason"] and "99.0% interval" in choice["reason"]
    # Model selection reads these scores back: equal weights are not encoded again.
    assert scorer.validation_scores(dict(strong)) is scorer.validation_scores(strong)
    # The other rules decide without scoring; a metric without per-item values restores the best.
    for rule, kept in (("always", "best"), ("never", "last")):
        config.train.restore_best = rule
        assert compare_checkpoints(run, config, scorer, strong, weak, "eval_validation_spearman_cosine", 4,
                                   8)["kept"] == kept
    config.train.restore_best = "if_significant"
    loss_choice = compare_checkpoints(run, config, scorer, strong, weak, "eval_loss", 4, 8)
    assert loss_choice["kept"] == "best" and loss_choice["difference"] is None


def test_a_best_checkpoint_among_many_must_beat_the_last_at_the_family_wise_level(tmp_path, tiny_folder):
    from types import SimpleNamespace

    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.training import compare_checkpoints

    run, config = prepare_tiny_run(tmp_path, tiny_folder, [])
    # best - last = +0.0022 with an sd of 0.001: above 0 at 95%, not at 99%. The main job (seed 42)
    # restored step 534 of 6 validation points on such a call, 0.007 below the last model on test.
    draws = {"best": 0.0022 + 0.001 * np.random.default_rng(0).standard_normal(4000), "last": np.zeros(4000)}

    class Scorer:
        boot, validation, precision = Bootstrap(np.zeros((4000, 1), dtype=int), 0.95), SimpleNamespace(n=300), "fp32"

        def validation_scores(self, state):
            return SimpleNamespace(metrics={"spearman_cosine": {"value": 0.8 + float(draws[state["name"]].mean())}},
                                   resampled={"spearman_cosine": draws[state["name"]]})

    def choice(evaluations):
        return compare_checkpoints(run, config, Scorer(), {"name": "best"}, {"name": "last"},
                                   "eval_validation_spearman_cosine", 534, 1068, evaluations)

    of_two = choice(2)  # best of two points: one comparison, at 95%
    assert of_two["kept"] == "best" and "over the 1 earlier validation point)" in of_two["reason"]
    among_six = choice(6)
    assert among_six["ci95"][0] > 0 and among_six["ci_family"][0] < 0 and among_six["kept"] == "last"
    assert "99.0% interval" in among_six["reason"] and "over the 5 earlier validation points" in among_six["reason"]


@pytest.mark.parametrize("rule, kept_step", [("always", 1), ("never", 3)])
def test_the_model_folder_holds_the_weights_of_the_kept_checkpoint(tmp_path, tiny_folder, rule, kept_step):
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    class FirstEvaluationBest(TrainerCallback):  # the trainer picks its best from these metrics
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            metrics["eval_validation_spearman_cosine"] = 1.0 / state.global_step

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.learning_rate=1e-3", "train.max_steps=3",
                                                       "train.evaluations_per_epoch=6",
                                                       "train.early_stopping_patience=null",
                                                       f"train.restore_best={rule}"])
    summary = train_model(run, config, callbacks=[FirstEvaluationBest()])
    assert summary["best_checkpoint"].endswith("checkpoint-1")
    assert summary["kept_checkpoint"].endswith(f"checkpoint-{kept_step}")
    assert summary["checkpoint_choice"]["kept"] == ("best" if rule == "always" else "last")

    def weights(folder):
        return load_file(next(folder.rglob("model.safetensors")))

    saved = weights(run.model_dir)
    for step in (1, 3):
        checkpoint = weights(run.checkpoints_dir / f"checkpoint-{step}")
        same = all(torch.equal(saved[k], checkpoint[k]) for k in checkpoint)
        assert same == (step == kept_step), f"model/ vs checkpoint-{step}"


def test_how_often_a_run_validates_does_not_change_what_it_trains(tmp_path, tiny_folder):
    # The validation budget spaces validations by the machine's speed: the same seed must train the same model.
    losses = {}
    for per_epoch in (1, 3):
        run, config = prepare_tiny_run(tmp_path, tiny_folder, [
            "train.max_steps=6", f"train.evaluations_per_epoch={per_epoch}", "train.max_validation_share=null",
            "train.early_stopping_patience=null"], name=f"validations-{per_epoch}")
        summary = train_model(run, config)
        losses[per_epoch] = [(e["step"], e["loss"]) for e in summary["log_history"] if "loss" in e]
    assert len(losses[1]) == 6 and losses[1] == losses[3]
