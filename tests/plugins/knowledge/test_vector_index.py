"""Vector search in NumPy (plugins/knowledge/vector_index.py): the exact scan, and the cluster index
that large knowledge bases use: it finds what an exact scan finds, keeps known rows in their groups
as rows come and go, survives a save and reload, and refuses a saved index of another dimension."""

import numpy as np
import pytest

from plugdeck.plugins.knowledge.vector_index import ClusterIndex, exact_top_k


def clustered(rows: int, dimension: int = 48, topics: int = 40, seed: int = 3) -> np.ndarray:
    """Unit vectors around a number of topics, as chunks of a knowledge base lie."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dimension))
    matrix = centres[rng.integers(0, topics, rows)] + rng.normal(0, 0.6, (rows, dimension))
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def test_exact_top_k_is_the_best_rows_in_order():
    matrix = clustered(500)
    query = matrix[7]
    top, scores = exact_top_k(matrix, query, 5)
    assert top[0] == 7 and np.isclose(scores[0], 1.0, atol=1e-5)
    assert list(scores) == sorted(scores, reverse=True)
    assert set(top) == set(np.argsort(-(matrix @ query))[:5])
    assert len(exact_top_k(matrix, query, 900)[0]) == 500
    with pytest.raises(ValueError, match="dimensions"):
        exact_top_k(matrix, np.ones(3, dtype=np.float32), 5)


def test_the_cluster_index_finds_what_an_exact_scan_finds():
    matrix = clustered(12_000)
    rowids = np.arange(1000, 13_000, dtype=np.int64)
    index = ClusterIndex.train(rowids, matrix)
    queries = clustered(100, seed=9)
    recall = []
    for query in queries:
        found, scores = index.search(query, 10)
        exact = rowids[exact_top_k(matrix, query, 10)[0]]
        recall.append(len(set(found) & set(exact)) / 10)
        assert list(scores) == sorted(scores, reverse=True)
        assert np.allclose(scores, matrix[found - 1000] @ query, atol=1e-5)  # the scores are exact
    assert np.mean(recall) >= 0.95
    assert index.search(queries[0], 10, probes=len(index.centroids))[0].tolist() == \
        rowids[exact_top_k(matrix, queries[0], 10)[0]].tolist()  # scanning every group is exact


def test_rows_come_and_go_and_the_index_is_saved(tmp_path):
    matrix = clustered(6_000)
    rowids = np.arange(6_000, dtype=np.int64)
    index = ClusterIndex.train(rowids, matrix)
    # 500 rows removed, 300 new ones added (row ids are never reused)
    keep = np.ones(6_000, dtype=bool)
    keep[:500] = False
    new = clustered(300, seed=5)
    rowids2 = np.concatenate([rowids[keep], np.arange(10_000, 10_300)])
    matrix2 = np.concatenate([matrix[keep], new])
    updated = index.updated(rowids2, matrix2)
    assert len(updated) == 5_800 and np.array_equal(updated.centroids, index.centroids)
    found, _ = updated.search(new[0], 3)
    assert found[0] == 10_000 and not set(found) & set(range(500))
    path = tmp_path / "vectors.clusters.npz"
    updated.save(path)
    reloaded = ClusterIndex.load(path, rowids2, matrix2)
    assert np.array_equal(reloaded.rowids, updated.rowids) and np.array_equal(reloaded.labels, updated.labels)
    assert ClusterIndex.load(path, rowids2, matrix2[:, :10]) is None  # another dimension: learned again
    path.write_bytes(b"not an index")
    assert ClusterIndex.load(path, rowids2, matrix2) is None
    doubled = updated.updated(np.arange(20_000), clustered(20_000, seed=6))
    assert doubled.trained_rows == 20_000  # many more rows: the centroids are learned again
