import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from sttune_helpers.core.statistics import Bootstrap, paired_comparison, pearson, spearman
from sttune_helpers.shapes.pair_score import pair_score_metrics


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=200), rng.normal(size=200)
    y[:50] = x[:50]  # some ties and correlation
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y).statistic)


def test_interval_contains_estimate_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 1600):
        gold = rng.uniform(size=n)
        predicted = gold + rng.normal(scale=0.3, size=n)
        boot = Bootstrap.draw(n, 500, 0.95, seed=0)
        metrics, _ = pair_score_metrics(predicted, gold, boot)
        low, high = metrics["spearman_cosine"]["ci95"]
        assert low < metrics["spearman_cosine"]["value"] < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_paired_comparison_detects_a_real_gain_and_not_a_null_one():
    rng = np.random.default_rng(2)
    n = 500
    gold = rng.uniform(size=n)
    good = gold + rng.normal(scale=0.2, size=n)
    bad = gold + rng.normal(scale=0.6, size=n)
    boot = Bootstrap.draw(n, 1000, 0.95, seed=0)
    values, dists = {}, {}
    for name, sims in {"fine_tuned": good, "base": bad, "same": bad.copy()}.items():
        values[name], dists[name] = pair_score_metrics(sims, gold, boot)
    gain = paired_comparison("fine_tuned", "base", "spearman_cosine", values, dists, boot)
    assert gain["difference"] > 0 and gain["ci95"][0] > 0 and gain["p_value"] < 0.01
    null = paired_comparison("same", "base", "spearman_cosine", values, dists, boot)
    assert null["difference"] == 0 and null["p_value"] == 1.0


# --- retrieval metrics on a hand-computable case -------------------------------------------------

from sttune_helpers.core.statistics import Bootstrap as _Bootstrap  # noqa: E402
from sttune_helpers.core.statistics import mean_metrics  # noqa: E402
from sttune_helpers.evaluation import (  # noqa: E402
    METRICS_SCHEMA,
    TaskSet,
    interpolate_models,
    seed_summary,
    suggest_alpha,
    validate_report,
)
from sttune_helpers.evaluation.doctor import (  # noqa: E402
    check_batch_duplicates,
    check_collapse,
    check_data_size,
    check_overfitting,
    check_score_scale,
    check_test_overlap,
)
from sttune_helpers.shapes.pair_binary import binary_thresholds, pair_binary_metrics  # noqa: E402
from sttune_helpers.shapes.retrieval import query_metrics  # noqa: E402

# Four queries over documents d1..d6; the ranking each model returned and the relevant documents.
RANKED = [["d1", "d2", "d3"], ["d2", "d1", "d3"], ["d3", "d4", "d1"], ["d5", "d6", "d1"]]
RELEVANT = [{"d1"}, {"d1"}, {"d1", "d4"}, {"d2"}]


def test_retrieval_metrics_match_hand_computation():
    metrics = query_metrics(RANKED, RELEVANT)
    # q1: hit at rank 1; q2: rank 2; q3: relevant at ranks 2 and 3 of 2 relevant; q4: no hit.
    ndcg_q3 = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    np.testing.assert_allclose(metrics["cosine_ndcg@10"], [1.0, 1 / np.log2(3), ndcg_q3, 0.0])
    np.testing.assert_allclose(metrics["cosine_mrr@10"], [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(metrics["cosine_recall@1"], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(metrics["cosine_recall@10"], [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(metrics["cosine_map@100"], [1.0, 0.5, (1 / 2 + 2 / 3) / 2, 0.0])
    assert metrics["cosine_ndcg@10"].mean() == pytest.approx((1 + 1 / np.log2(3) + ndcg_q3) / 4)


def test_retrieval_metrics_equal_the_library_evaluator():
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    queries = {f"q{i}": f"query {i}" for i in range(4)}
    corpus = {f"d{i}": f"document {i}" for i in range(1, 7)}
    evaluator = InformationRetrievalEvaluator(queries, corpus, dict(zip(queries, RELEVANT)),
                                              precision_recall_at_k=[1, 10, 100])
    results = [[{"corpus_id": doc, "score": 1.0 - rank / 10} for rank, doc in enumerate(ranking)]
               for ranking in RANKED]
    library = evaluator.compute_metrics(results)
    ours = {name: values.mean() for name, values in query_metrics(RANKED, RELEVANT).items()}
    assert ours["cosine_ndcg@10"] == pytest.approx(library["ndcg@k"][10])
    assert ours["cosine_mrr@10"] == pytest.approx(library["mrr@k"][10])
    assert ours["cosine_map@100"] == pytest.approx(library["map@k"][100])
    for k in (1, 10, 100):
        assert ours[f"cosine_recall@{k}"] == pytest.approx(library["recall@k"][k])


def test_binary_metrics_use_the_validation_threshold_not_the_test_one():
    from sklearn.metrics import average_precision_score

    validation_sims = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    validation_labels = np.array([1, 1, 1, 0, 0, 0])
    thresholds = binary_thresholds(validation_sims, validation_labels)
    assert 0.3 < thresholds["f1"] < 0.7 and 0.3 < thresholds["accuracy"] < 0.7
    # On test the positives sit lower: a threshold tuned on test would score 1.0, the honest one does not.
    sims = np.array([0.45, 0.55, 0.6, 0.35, 0.3, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 0])
    boot = _Bootstrap.draw(len(sims), 200, 0.95, seed=0)
    metrics, _ = pair_binary_metrics(sims, labels, {"f1": 0.5, "accuracy": 0.5}, boot)
    assert metrics["cosine_accuracy"]["value"] == pytest.approx(5 / 6)
    assert metrics["cosine_f1"]["value"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert metrics["cosine_ap"]["value"] == pytest.approx(average_precision_score(labels, sims)) == 1.0


def test_mean_metric_intervals_contain_the_estimate_and_narrow():
    rng = np.random.default_rng(3)
    widths = []
    for n in (100, 1600):
        correct = (rng.uniform(size=n) < 0.7).astype(float)
        metrics, resampled = mean_metrics({"cosine_accuracy": correct}, _Bootstrap.draw(n, 500, 0.95, seed=1))
        low, high = metrics["cosine_accuracy"]["ci95"]
        assert low < metrics["cosine_accuracy"]["value"] < high and resampled["cosine_accuracy"].shape == (500,)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


# --- interpolation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A tiny sentence model and a copy with every weight moved, standing in for base and fine-tuned."""
    import copy

    import torch
    from helpers.tiny_model import build_tiny_model_folder
    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model")), device="cpu")
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for parameter in tuned.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return base, tuned


def test_interpolation_ends_reproduce_base_and_fine_tuned(tiny_pair):
    base, tuned = tiny_pair
    texts = ["a cat sits on the mat", "the stock market fell", "rain is expected tomorrow"]
    encode = lambda model: model.encode(texts, convert_to_numpy=True)  # noqa: E731
    np.testing.assert_array_equal(encode(interpolate_models(base, tuned, 0.0)), encode(base))
    np.testing.assert_array_equal(encode(interpolate_models(base, tuned, 1.0)), encode(tuned))
    middle = encode(interpolate_models(base, tuned, 0.5))
    assert not np.allclose(middle, encode(base)) and not np.allclose(middle, encode(tuned))
    with pytest.raises(ValueError, match="within 0..1"):
        interpolate_models(base, tuned, 1.5)


def test_interpolation_refuses_different_architectures(tiny_pair, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    base, tuned = tiny_pair
    wider = SentenceTransformer(modules=[*tuned, Dense(32, 8)], device="cpu")
    with pytest.raises(ValueError, match="differ in their modules"):
        interpolate_models(base, wider, 0.5)


def test_suggested_alpha_keeps_general_ability_within_tolerance():
    rows = [{"alpha": 0.0, "task": 0.70, "reference": 0.82}, {"alpha": 0.5, "task": 0.798, "reference": 0.81},
            {"alpha": 1.0, "task": 0.80, "reference": 0.75}]
    assert suggest_alpha(rows) == 0.5
    assert suggest_alpha(rows, tolerance=0.0) == 1.0
    assert suggest_alpha([{"alpha": 1.0, "task": 0.8, "reference": None}]) is None


# --- doctor: each check fires on a bad case and stays silent on a good one -------------------------


def test_collapse_check():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(50, 16))
    collapsed = np.ones((50, 16)) + 0.01 * rng.normal(size=(50, 16))
    assert check_collapse(collapsed).fired and not check_collapse(spread).fired
    assert check_collapse(collapsed, base_embeddings=spread).fired
    assert not check_collapse(collapsed, base_embeddings=collapsed.copy()).fired  # it was that tight before training


def _history(losses, metric_values):
    log = [{"step": 10 * (i + 1), "loss": loss} for i, loss in enumerate(losses)]
    log += [{"step": 10 * (i + 1), "eval_validation_spearman_cosine": v} for i, v in enumerate(metric_values)]
    return {"metric_for_best_model": "eval_validation_spearman_cosine", "greater_is_better": True, "log_history": log}


def test_overfitting_check():
    overfit = _history([1.0, 0.7, 0.5, 0.3, 0.2], [0.70, 0.78, 0.76, 0.74, 0.72])
    healthy = _history([1.0, 0.7, 0.5, 0.3, 0.2], [0.70, 0.74, 0.76, 0.77, 0.78])
    found = check_overfitting(overfit)
    assert found.fired and "step 20" in found.message and found.fix.startswith("the best checkpoint was restored")
    # train.restore_best kept the last model: the advice says so.
    kept_last = {**overfit, "best_checkpoint": "ckpt/checkpoint-20", "kept_checkpoint": "ckpt/checkpoint-50"}
    assert check_overfitting(kept_last).fix.startswith("the last model was kept")
    assert not check_overfitting(healthy).fired
    assert not check_overfitting(None).fired


def _pairs(scores):
    import pandas as pd

    return TaskSet("pair_score", "test", pd.DataFrame({"sentence1": [f"a{i}" for i in range(len(scores))],
                                                       "sentence2": [f"b{i}" for i in range(len(scores))],
                                                       "score": scores}))


def test_score_scale_check():
    assert check_score_scale(_pairs([0.0, 2.5, 5.0])).fired
    assert not check_score_scale(_pairs([0.0, 0.5, 1.0]), similarity=np.array([0.1, 0.5, 0.9])).fired
    # Gold spread over 0..1 while every cosine sits at 0.95: the model's scale does not match.
    assert check_score_scale(_pairs([0.0, 0.5, 1.0]), similarity=np.array([0.95, 0.951, 0.952])).fired


def test_duplicates_in_in_batch_negative_batches_check():
    import pandas as pd

    train = pd.DataFrame({"anchor": ["q1", "q2", "q1"], "positive": ["a1", "a2", "a3"]})
    in_batch = {"in_batch_negatives": True}
    assert check_batch_duplicates(train, in_batch, "batch_sampler").fired
    assert not check_batch_duplicates(train, in_batch, "no_duplicates").fired
    assert not check_batch_duplicates(train.drop_duplicates("anchor"), in_batch, "batch_sampler").fired
    assert not check_batch_duplicates(train, {"in_batch_negatives": False}, "batch_sampler").fired


def test_data_size_check():
    assert check_data_size(100, "CoSENTLoss", 16, in_batch_negatives=False).fired
    assert not check_data_size(5000, "CoSENTLoss", 16, in_batch_negatives=False).fired
    assert check_data_size(1000, "MultipleNegativesRankingLoss", 128, in_batch_negatives=True).fired


def test_test_overlap_check():
    import pandas as pd

    train = pd.DataFrame({"sentence1": ["a b", "c d"], "sentence2": ["e f", "g h"], "score": [0.1, 0.2]})
    clean = pd.DataFrame({"sentence1": ["x y"], "sentence2": ["z w"], "score": [0.3]})
    leaked = pd.DataFrame({"sentence1": ["A b"], "sentence2": ["e f!"], "score": [0.3]})
    assert check_test_overlap({"train": train, "test": leaked}, "pair_score").fired
    assert not check_test_overlap({"train": train, "test": clean}, "pair_score").fired


# --- metrics.json --------------------------------------------------------------------------------


def _report(models=("base", "fine_tuned")):
    entry = {"path": "m", "metrics": {"spearman_cosine": {"value": 0.8, "ci95": [0.75, 0.85]}}}
    return {"task": "pair_score", "primary_metric": "spearman_cosine", "n_test": 10,
            "models": {name: entry for name in models},
            "comparisons": [{"a": "fine_tuned", "b": "base", "metric": "spearman_cosine", "difference": 0.0,
                             "ci95": [-0.01, 0.01], "p_value": 1.0}], "reference": {}}


def test_metrics_schema_accepts_a_report_and_rejects_a_broken_one():
    import jsonschema

    validate_report(_report())
    with pytest.raises(jsonschema.ValidationError):
        validate_report(_report(models=("base",)))
    broken = _report()
    del broken["comparisons"][0]["p_value"]
    with pytest.raises(jsonschema.ValidationError):
        validate_report(broken)
    assert set(METRICS_SCHEMA["required"]) == {"task", "primary_metric", "n_test", "models", "comparisons", "reference"}


def test_metrics_schema_takes_the_reference_parts_not_the_old_single_block():
    import jsonschema

    from sttune_helpers.evaluation import comparisons_table, metrics_table

    part = {key: _report()[key] for key in ("primary_metric", "n_test", "models", "comparisons")}
    report = {**_report(), "reference": {"half": "report", "parts": {"stsb": {"name": "stsb-report", "kind": "sts",
                                                                              **part}},
                                         "excluded": [{"part": "squad", "kind": "retrieval", "items": "all",
                                                       "reason": "the run's own source"}]}}
    validate_report(report)
    assert list(metrics_table(report, "reference")["part"]) == ["stsb", "stsb"]
    assert list(comparisons_table(report, "reference")["part"]) == ["stsb"]
    with pytest.raises(jsonschema.ValidationError):
        validate_report({**_report(), "reference": {"name": "stsb-test", **part}})


def test_seed_summary_gives_mean_and_sd(tmp_path):
    import json

    for seed, value in ((1, 0.80), (2, 0.82), (3, 0.84)):
        root = tmp_path / f"run-seed{seed}"
        (root / "eval").mkdir(parents=True)
        report = _report()
        report["models"]["fine_tuned"] = {"path": "m", "metrics": {"spearman_cosine": {"value": value,
                                                                                      "ci95": [0, 1]}}}
        (root / "eval" / "metrics.json").write_text(json.dumps(report))
        (root / "manifest.json").write_text(json.dumps({"seed": seed}))
    summary = seed_summary(sorted(tmp_path.iterdir()))
    row = summary[(summary["model"] == "fine_tuned")].iloc[0]
    assert row["mean"] == pytest.approx(0.82) and row["sd"] == pytest.approx(0.02) and row["seeds"] == 3


WORDS = ["cat", "dog", "market", "rain", "piano", "river", "bread", "train"]


def word_pairs():
    """Pairs on the same word (odd rows) and on different words (even rows)."""
    import pandas as pd

    return pd.DataFrame({"sentence1": [f"the {w} is here" for w in WORDS],
                         "sentence2": [f"a {w} was there" if i % 2 else f"the {WORDS[-1 - i]} left"
                                       for i, w in enumerate(WORDS)]})


def test_pair_binary_and_triplet_scores_equal_the_library_evaluators(tiny_pair):
    import pandas as pd
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator, TripletEvaluator

    from sttune_helpers.evaluation import score_model

    model = tiny_pair[0]
    pairs = word_pairs().assign(label=[i % 2 for i in range(len(WORDS))])
    task = TaskSet("pair_binary", "test", pairs, validation=pairs)
    ours = score_model(task, model, _Bootstrap.draw(len(pairs), 20, 0.95, seed=0))
    library = BinaryClassificationEvaluator(list(pairs["sentence1"]), list(pairs["sentence2"]), list(pairs["label"]),
                                            name="t", similarity_fn_names=["cosine"])(model)
    assert ours.metrics["cosine_ap"]["value"] == pytest.approx(library["t_cosine_ap"], abs=1e-6)
    # Validation = test here, so the thresholds are the library's and so are F1 and accuracy.
    assert ours.metrics["cosine_f1"]["value"] == pytest.approx(library["t_cosine_f1"], abs=1e-6)
    assert ours.metrics["cosine_accuracy"]["value"] == pytest.approx(library["t_cosine_accuracy"], abs=1e-6)

    triplets = pd.DataFrame({"anchor": list(pairs["sentence1"]), "positive": list(pairs["sentence2"]),
                             "negative": [f"nothing about {w}" for w in reversed(WORDS)]})
    ours = score_model(TaskSet("triplet", "test", triplets), model, _Bootstrap.draw(len(triplets), 20, 0.95, seed=0))
    library = TripletEvaluator(list(triplets["anchor"]), list(triplets["positive"]), list(triplets["negative"]),
                               name="t", similarity_fn_names=["cosine"])(model)
    assert ours.metrics["cosine_accuracy"]["value"] == pytest.approx(library["t_cosine_accuracy"], abs=1e-6)


def test_mean_cosine_of_pairs_equals_the_pairwise_mean():
    from sttune_helpers.evaluation import mean_cosine_of_pairs

    points = np.random.default_rng(4).normal(size=(30, 8))
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    similarity = unit @ unit.T
    expected = similarity[~np.eye(30, dtype=bool)].mean()
    assert mean_cosine_of_pairs(points) == pytest.approx(expected)
    assert mean_cosine_of_pairs(points[:1]) == 0.0


def test_bf16_evaluation_moves_the_scores_a_little_and_fp32_not_at_all(tiny_pair):
    from sttune_helpers.evaluation import score_model

    model = tiny_pair[0]
    pairs = word_pairs().assign(score=np.linspace(0, 1, len(WORDS)))
    task = TaskSet("pair_score", "test", pairs)
    boot = _Bootstrap.draw(len(pairs), 20, 0.95, seed=0)
    default = score_model(task, model, boot)
    fp32 = score_model(task, model, boot, precision="fp32")
    bf16 = score_model(task, model, boot, precision="bf16")
    np.testing.assert_array_equal(default.item_score, fp32.item_score)
    assert not np.array_equal(bf16.item_score, fp32.item_score)  # bf16 arithmetic ran
    np.testing.assert_allclose(bf16.item_score, fp32.item_score, atol=0.02)


# --- the general reference in metrics.json ---------------------------------------------------------


def test_evaluate_writes_every_reference_part_and_what_was_left_out(tmp_path):
    import json

    from helpers.tiny_model import build_tiny_model_folder, prepared_run

    from sttune_helpers.evaluation import evaluate_models, interpolation_sweep, metrics_table, reference_exclusions

    tiny = str(build_tiny_model_folder(tmp_path / "tiny"))
    run, config = prepared_run(tmp_path, tiny, ["eval.reference_max_pairs=12", "eval.bootstrap_samples=20",
                                                "eval.reference_corpus_size=150"])
    from sttune_helpers.core import progress

    events = []
    with progress.reporting_to(events.append):
        result = evaluate_models(run, config, {"base": tiny, "fine_tuned": tiny})
    reference = json.loads(run.metrics_path.read_text())["reference"]
    # A line per model and set scored, for the terminal: 2 models x (test + 2 reference parts).
    assert [(e.task, e.done, e.total) for e in events] == [("evaluation", i, 6) for i in range(1, 7)]
    base_test = result.report["models"]["base"]["metrics"]["spearman_cosine"]["value"]
    assert events[0].detail == f"base on test: spearman_cosine {base_test:.4f}"
    assert [e.detail.split(":")[0] for e in events[1:3]] == ["base on reference snli", "base on reference squad"]
    validate_report(result.report)
    # The run trains on the embedded STS-B: SNLI stands in for it, SQuAD stays.
    assert reference["half"] == "report" and set(reference["parts"]) == {"snli", "squad"}
    assert reference["parts"]["squad"]["kind"] == "retrieval" and reference["parts"]["snli"]["kind"] == "sts"
    squad = reference["parts"]["squad"]
    assert squad["primary_metric"] == "cosine_ndcg@10" and squad["n_test"] == 12 and squad["corpus_size"] == 150
    assert "corpus_size" not in reference["parts"]["snli"]
    assert set(reference["parts"]["snli"]["models"]) == {"base", "fine_tuned"}
    assert any(e["part"] == "stsb" and "own source" in e["reason"] for e in reference["excluded"])
    table = metrics_table(result.report, "reference")
    assert set(table["part"]) == {"snli", "squad"}
    assert "stsb" in set(reference_exclusions(result.report)["part"])
    # The same weights at both ends: the reference column is the mean of the parts' primary metrics.
    with progress.reporting_to(events.append):
        rows = interpolation_sweep(result, config, alphas=[0.0, 0.5])
    assert [(e.task, e.done, e.total) for e in events[6:]] == [("interpolation", 1, 2), ("interpolation", 2, 2)]
    assert events[-1].detail == (f"alpha 0.5: test spearman_cosine {rows[1]['task']:.4f}, "
                                 f"general reference {rows[1]['reference']:.4f}")
    parts = reference["parts"].values()
    mean = sum(p["models"]["base"]["metrics"][p["primary_metric"]]["value"] for p in parts) / 2
    assert rows[0]["reference"] == pytest.approx(mean) and rows[1]["reference"] == pytest.approx(mean, abs=1e-5)


def test_the_reference_is_scored_at_its_own_precision_and_the_test_split_at_eval_precision(tmp_path):
    import numpy as np
    from helpers.tiny_model import build_tiny_model_folder, prepared_run

    from sttune_helpers.evaluation import evaluate_models
    from sttune_helpers.scoring.embedding_cache import cache_directory

    tiny = str(build_tiny_model_folder(tmp_path / "tiny"))
    run, config = prepared_run(tmp_path, tiny, ["eval.reference_max_pairs=12", "eval.bootstrap_samples=20",
                                                "eval.reference_corpus_size=150", "eval.reference_precision=bf16"])
    report = evaluate_models(run, config, {"base": tiny, "fine_tuned": tiny}).report
    validate_report(report)
    assert report["precision"] == "fp32" and report["reference"]["precision"] == "bf16"
    # one set of weights, two keys: the test split's fp32 vectors and the reference's bf16 ones, apart
    keys = sorted(cache_directory(run.root.parent).iterdir())
    assert len(keys) == 2
    config.eval.reference_precision = "fp32"
    again = evaluate_models(run, config, {"base": tiny, "fine_tuned": tiny}).report
    assert again["reference"]["precision"] == "fp32"
    assert len(list(cache_directory(run.root.parent).iterdir())) == 2  # fp32 reference: the test split's key
    fp32, bf16 = ({p.name: np.load(p) for p in key.glob("*.npy")} for key in keys)
    shared = set(fp32) & set(bf16)  # the reference's texts, in both precisions
    assert shared
    for name in shared:
        assert np.allclose(fp32[name], bf16[name], atol=0.05) and not np.array_equal(fp32[name], bf16[name])


@pytest.mark.parametrize(("setting", "scored"), [
    (["eval.interpolation_alphas=[]"], False),
    (["eval.interpolation_alphas=[]", "eval.reference_before_selection=true"], True),
    (["eval.interpolation_alphas=[0.5]"], True)])
def test_the_model_before_selection_is_scored_on_the_reference_only_where_asked(tmp_path, setting, scored):
    from helpers.tiny_model import build_tiny_model_folder, prepared_run

    from sttune_helpers.core import progress
    from sttune_helpers.evaluation import evaluate_models, reference_exclusions

    tiny = str(build_tiny_model_folder(tmp_path / "tiny"))
    run, config = prepared_run(tmp_path, tiny, ["eval.reference_max_pairs=12", "eval.bootstrap_samples=20",
                                                "eval.reference_corpus_size=150", *setting])
    events = []
    with progress.reporting_to(events.append):
        result = evaluate_models(run, config, {"base": tiny, "fine_tuned": tiny, "before_selection": tiny})
    validate_report(result.report)
    reference = result.report["reference"]
    # On test always; on the two reference parts only where asked for, or where the sweep starts from it.
    assert "before_selection" in result.report["models"]
    assert all(("before_selection" in part["models"]) == scored for part in reference["parts"].values())
    assert [(e.done, e.total) for e in events] == [(i, 9 if scored else 7) for i in range(1, (9 if scored else 7) + 1)]
    # What was left out is said, beside the parts left out.
    left_out = reference_exclusions(result.report)
    assert ("before_selection" in set(left_out["items"])) == (not scored)
    assert ("not_scored" in reference) == (not scored)


def test_spreadsheet_safe_prefixes_formula_texts_and_leaves_numbers(tmp_path):
    import pandas as pd

    from sttune_helpers.core.io import atomic_write_csv, spreadsheet_safe

    frame = pd.DataFrame({"text": ["=1+2", "+x", "-y", "@SUM(A1)", "\tz", "\rw", "plain", "a=b"],
                          "score": [-0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]})
    safe = spreadsheet_safe(frame)
    assert list(safe["text"]) == ["'=1+2", "'+x", "'-y", "'@SUM(A1)", "'\tz", "'\rw", "plain", "a=b"]
    assert safe["score"].tolist()[0] == -0.5 and safe["score"].dtype == float
    assert frame["text"][0] == "=1+2"  # the caller's frame is left alone
    atomic_write_csv(tmp_path / "errors.csv", frame)
    back = pd.read_csv(tmp_path / "errors.csv")
    assert back["text"][0] == "'=1+2" and back["score"][0] == -0.5
