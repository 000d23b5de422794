import re
import warnings

import numpy as np
import pytest

from sttune_helpers import viz
from sttune_helpers.shapes.pair_score import score_buckets
from sttune_helpers.viz import (
    colour_groups,
    embedding_maps,
    export_projector,
    interactive_html,
    separation_auc,
    silhouette_by_group,
    similarity_distributions,
    subsample,
    umap_project,
)

PNG = b"\x89PNG\r\n\x1a\n"


def clusters(n_per_cluster=40, dim=32, k=2, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    points = np.concatenate([centres[c] + 0.15 * rng.normal(size=(n_per_cluster, dim)) for c in range(k)])
    return points.astype(np.float32), np.repeat(np.arange(k), n_per_cluster)


def stored_arrays(points, groups, group_kind):
    return {"sentences": np.array([f"sentence {i}" for i in range(len(points))], dtype=object),
            "groups": np.array(groups, dtype=object), "group_kind": np.array(group_kind),
            "embeddings_base": points, "embeddings_fine_tuned": points[:, ::-1].copy()}


def test_umap_keeps_clusters_apart_and_is_seeded():
    points, cluster = clusters()
    projected = umap_project(points, n_neighbors=10, min_dist=0.1, seed=7, n_epochs=100)
    assert projected.shape == (len(points), 2) and np.isfinite(projected).all()
    centre = [projected[cluster == k].mean(axis=0) for k in (0, 1)]
    spread = max(np.linalg.norm(projected[cluster == k] - centre[k], axis=1).max() for k in (0, 1))
    assert np.linalg.norm(centre[0] - centre[1]) > 2 * spread
    np.testing.assert_array_equal(projected, umap_project(points, n_neighbors=10, min_dist=0.1, seed=7, n_epochs=100))


def test_umap_projection_warns_nothing():
    # UMAP's warnings (precomputed metric, n_jobs overridden by the seed) were red boxes in notebook 05.
    import umap  # noqa: F401  (its import's ImportWarning about Tensorflow is hidden by Python's default filters)

    points, _ = clusters(n_per_cluster=15)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        umap_project(points, n_neighbors=5, min_dist=0.1, seed=7, n_epochs=20)
    assert [str(w.message) for w in caught] == []


def test_subsample_is_seeded_sorted_and_capped():
    chosen = subsample(1000, 50, seed=3)
    assert len(chosen) == 50 and len(set(chosen)) == 50 and (np.diff(chosen) > 0).all()
    np.testing.assert_array_equal(chosen, subsample(1000, 50, seed=3))
    np.testing.assert_array_equal(subsample(20, 50, seed=3), np.arange(20))


def test_score_buckets_are_labelled_on_the_original_scale():
    bucket, labels = score_buckets(np.array([0.0, 0.19, 0.2, 0.5, 0.99, 1.0]), (0.0, 5.0))
    assert labels == ["0-1", "1-2", "2-3", "3-4", "4-5"]
    assert bucket.tolist() == [0, 0, 1, 2, 4, 4]


def test_unlabeled_maps_are_coloured_by_kmeans_clusters_of_the_same_points(tmp_path):
    points, cluster = clusters(n_per_cluster=25, k=3)  # 75 sentences, 50 drawn
    stored = stored_arrays(points, [""] * len(points), "")
    path = tmp_path / "map.png"
    result = embedding_maps(stored, max_points=50, n_neighbors=10, min_dist=0.1, seed=1, path=path, n_epochs=100,
                            n_clusters=3)
    assert result["n_points"] == 50 and result["n_available"] == 75
    np.testing.assert_array_equal(result["chosen"], subsample(75, 50, seed=1))
    assert set(result["projections"]) == {"base", "fine_tuned"}
    assert all(p.shape == (50, 2) for p in result["projections"].values())
    assert result["clustered"] and "KMeans" in result["legend_title"] and "no labels" in result["legend_title"]
    # Three well-separated blobs: the clusters are exactly the blobs, named "cluster 0".."cluster 2".
    assert set(result["groups"]) == {"cluster 0", "cluster 1", "cluster 2"}
    true = cluster[result["chosen"]]
    assert all(len(set(result["groups"][true == c])) == 1 for c in range(3))
    assert path.read_bytes()[:8] == PNG


def test_stored_groups_colour_the_maps(monkeypatch):
    points, cluster = clusters(n_per_cluster=30)
    names = np.array(["dogs", "cats"], dtype=object)[cluster]
    stored = stored_arrays(points, names, "label")
    stored["embeddings_interpolated"] = points.copy()
    seen = []
    # UMAP itself is tested above; here only which rows reach it and how they are coloured.
    monkeypatch.setattr(viz.maps, "umap_project", lambda x, *args, **kwargs: seen.append(x) or x[:, :2])
    result = embedding_maps(stored, max_points=40, n_neighbors=10, min_dist=0.1, seed=2)
    chosen = subsample(60, 40, seed=2)
    assert list(result["projections"]) == ["base", "fine_tuned", "interpolated"]
    np.testing.assert_array_equal(seen[0], points[chosen])
    np.testing.assert_array_equal(seen[1], points[chosen][:, ::-1])
    assert result["legend_title"] == "label" and not result["clustered"]
    assert result["groups"].tolist() == names[chosen].tolist()
    assert list(result["colours"]) == ["cats", "dogs"]
    assert result["sentences"].tolist() == [f"sentence {i}" for i in chosen]
    groups, title = colour_groups(stored, chosen, n_clusters=5, seed=0)
    assert title == "label" and groups.tolist() == names[chosen].tolist()


def test_group_order_is_natural():
    assert viz.group_order(["10-20", "2-3", "0-1"]) == ["0-1", "2-3", "10-20"]
    assert viz.group_order(["cluster 10", "cluster 2", "cluster 0"]) == ["cluster 0", "cluster 2", "cluster 10"]


def test_similarity_plot_reports_sklearns_auc(tmp_path):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    positive = np.array([1] * 60 + [0] * 60, dtype=np.int8)
    overlapping = np.where(positive == 1, 0.6, 0.4) + 0.2 * rng.normal(size=120)
    separated = np.where(positive == 1, 0.8, 0.2) + 0.05 * rng.normal(size=120)
    similarities = {"bucket": np.where(positive == 1, "positive", "negative").astype(object), "positive": positive,
                    "similarity_base": overlapping, "similarity_fine_tuned": separated}
    path = tmp_path / "similarity.png"
    result = similarity_distributions(similarities, path=path)
    expected = roc_auc_score(positive, overlapping)
    assert 0.6 < expected < 1.0
    assert result["binary"] and result["auc"]["base"] == pytest.approx(expected)
    assert result["auc"]["fine_tuned"] == 1.0
    titles = [ax.get_title() for ax in result["figure"].axes]
    assert titles == [f"base: ROC AUC {expected:.3f}", "fine_tuned: ROC AUC 1.000"]
    assert result["table"].loc["fine_tuned", "ROC AUC"] == 1.0
    assert result["table"].loc["base", "mean similarity, positive"] == pytest.approx(overlapping[:60].mean())
    assert path.read_bytes()[:8] == PNG


def test_similarity_by_bucket_has_no_auc():
    bucket = np.array(["0-1", "4-5", "2-3"] * 10, dtype=object)
    similarities = {"bucket": bucket, "positive": np.full(30, -1, dtype=np.int8),
                    "similarity_base": np.linspace(0, 1, 30), "similarity_fine_tuned": np.linspace(1, 0, 30)}
    result = similarity_distributions(similarities)
    assert not result["binary"] and result["auc"] == {"base": None, "fine_tuned": None}
    assert [ax.get_title() for ax in result["figure"].axes] == ["base", "fine_tuned"]
    assert [c for c in result["table"].columns if c.startswith("mean")] == [
        "mean similarity, 0-1", "mean similarity, 2-3", "mean similarity, 4-5"]
    assert separation_auc(np.array([0.1, 0.9]), np.array([-1, -1])) is None
    # The table says n/a and why, rather than None.
    assert result["table"]["ROC AUC"].tolist() == ["n/a: no positive/negative pair labels"] * 2


def test_similarity_of_one_kind_of_pair_says_why_there_is_no_auc():
    similarities = {"bucket": np.array(["positive"] * 20, dtype=object), "positive": np.ones(20, dtype=np.int8),
                    "similarity_base": np.linspace(0, 1, 20), "similarity_fine_tuned": np.linspace(0.5, 1, 20)}
    result = similarity_distributions(similarities)
    assert result["auc"] == {"base": None, "fine_tuned": None}
    assert result["table"].loc["base", "ROC AUC"] == "n/a: every test pair is positive"


def test_silhouette_is_higher_for_separated_clusters_than_for_shuffled_labels():
    from sklearn.metrics import silhouette_score

    points, cluster = clusters(n_per_cluster=30, k=3)
    groups = np.array(["a", "b", "c"], dtype=object)[cluster]
    shuffled = np.random.default_rng(1).permutation(groups)
    result = silhouette_by_group({"base": points}, groups)
    assert result["overall"]["base"] == pytest.approx(silhouette_score(points, groups, metric="cosine"))
    assert result["overall"]["base"] > 0.5
    assert result["overall"]["base"] > silhouette_by_group({"base": points}, shuffled)["overall"]["base"] + 0.5
    assert result["table"].index.tolist() == ["a", "b", "c"] and result["table"]["points"].tolist() == [30] * 3
    assert silhouette_by_group({"base": points}, ["x"] * len(points)) is None


def test_projector_export_writes_each_models_tensors_and_metadata(tmp_path):
    points, cluster = clusters(n_per_cluster=5, dim=6)
    embeddings = {"base": points, "fine_tuned": 2 * points}
    sentences = [f"sentence {i}" for i in range(9)] + ["a\ttab"]
    groups = [f"g{c}" for c in cluster]
    directory = export_projector(embeddings, sentences, groups, tmp_path / "projector")
    config = (directory / "projector_config.pbtxt").read_text()
    paths = {}
    for block in config.split("embeddings {")[1:]:
        name = re.search(r'tensor_name: "([^":]+)', block).group(1)
        paths[name] = (re.search(r'tensor_path: "([^"]+)"', block).group(1),
                       re.search(r'metadata_path: "([^"]+)"', block).group(1))
    assert set(paths) == {"base", "fine_tuned"}
    for name, (tensor_path, metadata_path) in paths.items():
        tensors = np.loadtxt(directory / tensor_path, delimiter="\t")
        assert tensors.shape == (10, 6)
        np.testing.assert_allclose(tensors, embeddings[name], rtol=1e-6)
        rows = [line.split("\t") for line in (directory / metadata_path).read_text().splitlines()]
        assert rows[0] == ["sentence", "group"]
        assert [r[0] for r in rows[1:]] == sentences[:9] + ["a tab"]
        assert [r[1] for r in rows[1:]] == groups


def test_interactive_html_has_a_circle_per_point_per_model_and_escapes_text(tmp_path):
    projections = {"base": np.random.default_rng(0).normal(size=(7, 2)), "fine_tuned": np.zeros((7, 2))}
    sentences = [f"plain {i}" for i in range(6)] + ["1 < 2 & <b>bold</b>"]
    groups = ["low"] * 4 + ["high"] * 3
    path = tmp_path / "umap.html"
    page = interactive_html(projections, sentences, groups, legend_title="label", path=path)
    assert page.count("<circle") == 14 and page.count("<svg") == 2
    assert "1 &lt; 2 &amp; &lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
    assert "label: high" in page
    saved = path.read_text(encoding="utf-8")
    assert saved.startswith("<!DOCTYPE html>") and page in saved
    # Coordinates stay inside the panel, even for a model whose points all coincide.
    coords = [float(v) for v in re.findall(r'c[xy]="([-\d.]+)"', page)]
    assert min(coords) >= 0 and max(coords) <= 420
