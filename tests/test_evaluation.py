import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from sttune_helpers.evaluation import Bootstrap, pair_score_metrics, paired_comparison, pearson, spearman


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
