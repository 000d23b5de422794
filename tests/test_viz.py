import numpy as np

from sttune_helpers.viz import embedding_maps, score_buckets, subsample, umap_project


def two_clusters(n_per_cluster=60, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim))
    points = np.concatenate([centres[k] + 0.15 * rng.normal(size=(n_per_cluster, dim)) for k in (0, 1)])
    return points.astype(np.float32), np.repeat([0, 1], n_per_cluster)


def test_umap_keeps_clusters_apart_and_is_seeded():
    points, cluster = two_clusters()
    projected = umap_project(points, n_neighbors=10, min_dist=0.1, seed=7, n_epochs=100)
    assert projected.shape == (len(points), 2) and np.isfinite(projected).all()
    centre = [projected[cluster == k].mean(axis=0) for k in (0, 1)]
    spread = max(np.linalg.norm(projected[cluster == k] - centre[k], axis=1).max() for k in (0, 1))
    assert np.linalg.norm(centre[0] - centre[1]) > 2 * spread
    np.testing.assert_array_equal(projected, umap_project(points, n_neighbors=10, min_dist=0.1, seed=7, n_epochs=100))


def test_subsample_is_seeded_sorted_and_capped():
    chosen = subsample(1000, 50, seed=3)
    assert len(chosen) == 50 and len(set(chosen)) == 50 and (np.diff(chosen) > 0).all()
    np.testing.assert_array_equal(chosen, subsample(1000, 50, seed=3))
    np.testing.assert_array_equal(subsample(20, 50, seed=3), np.arange(20))


def test_score_buckets_are_labelled_on_the_original_scale():
    bucket, labels = score_buckets(np.array([0.0, 0.19, 0.2, 0.5, 0.99, 1.0]), (0.0, 5.0))
    assert labels == ["0-1", "1-2", "2-3", "3-4", "4-5"]
    assert bucket.tolist() == [0, 0, 1, 2, 4, 4]


def test_embedding_maps_draw_both_models_from_the_same_points(tmp_path):
    points, cluster = two_clusters(n_per_cluster=40)
    stored = {"sentences": np.array([f"s{i}" for i in range(len(points))]), "scores": cluster * 0.9,
              "embeddings_base": points, "embeddings_fine_tuned": points[:, ::-1].copy()}
    path = tmp_path / "map.png"
    result = embedding_maps(stored, (0.0, 5.0), max_points=50, n_neighbors=10, min_dist=0.1, seed=1, path=path,
                            n_epochs=100)
    assert result["n_points"] == 50 and result["n_available"] == 80
    assert set(result["projections"]) == {"base", "fine_tuned"}
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
