"""Vector search in NumPy: an exact scan for small matrices, and for large knowledge bases an
inverted-file index (the vectors grouped around k-means centroids; a query scans only the groups
whose centroids are closest to it, exactly).

Why not an HNSW library: usearch and the SIMD kernels it pulls in weighed 58 MB of the knowledge
extra's install, more than NumPy itself, for a search that NumPy does in about a millisecond at 100k
chunks this way (bench/knowledge_search.py reports its latency and its recall against an exact scan).
The index keeps only centroids and each row's group; the vectors themselves stay in the store.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

SMALL_MATRIX = 20_000  # rows up to which a scan runs on one BLAS thread (waking more costs more than it saves)
ROWS_PER_GROUP = 300  # about sqrt(100k) groups at 100k chunks: a query's scan and its centroid scan stay small
SCANNED_SHARE = 0.06  # share of the groups a query scans (recall@10 against an exact scan about 0.99)
MIN_PROBES = 8
TRAINING_ROWS_PER_GROUP = 64  # k-means learns from a sample: 64 rows per centroid is plenty
ITERATIONS = 8

_blas = None
_blas_lock = threading.Lock()


def _one_blas_thread():
    """A context in which BLAS runs on one thread (threadpoolctl's controller is built once: it
    looks through every loaded library)."""
    global _blas
    with _blas_lock:
        if _blas is None:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def exact_top_k(matrix: np.ndarray, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, cosine similarities) of the k rows of a matrix of unit vectors closest to a unit
    vector, best first, computed exactly. Small matrices are scanned on one BLAS thread: a BLAS that
    wakes its threads for a small product waits on them for milliseconds when other work shares the
    CPUs."""
    if matrix.ndim != 2 or matrix.shape[1] != vector.shape[0]:
        raise ValueError(f"the query vector has {vector.shape[0]} dimensions, the stored ones "
                         f"{matrix.shape[1] if matrix.ndim == 2 else 0}")
    k = min(k, len(matrix))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if len(matrix) <= SMALL_MATRIX:
        with _one_blas_thread():
            scores = matrix @ vector
    else:
        scores = matrix @ vector
    return _best(scores, k)


def _best(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return top, scores[top]


def _kmeans(sample: np.ndarray, groups: int, seed: int) -> np.ndarray:
    """Centroids (unit vectors) of a sample of unit vectors, by spherical k-means."""
    rng = np.random.default_rng(seed)
    centroids = sample[rng.choice(len(sample), groups, replace=False)].copy()
    for _ in range(ITERATIONS):
        labels = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        empty = np.bincount(labels, minlength=groups) == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]  # restart empty groups
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


def assign(centroids: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Each row's nearest centroid, in slices (a 100k x 300 score matrix at once would take 120 MB)."""
    labels = np.empty(len(matrix), dtype=np.int32)
    for start in range(0, len(matrix), 16_384):
        labels[start : start + 16_384] = np.argmax(matrix[start : start + 16_384] @ centroids.T, axis=1)
    return labels


class ClusterIndex:
    """Rows (store row ids and their vectors) laid out group by group, for `search`."""

    def __init__(self, centroids: np.ndarray, rowids: np.ndarray, labels: np.ndarray, matrix: np.ndarray,
                 trained_rows: int):
        self.centroids = centroids
        self.trained_rows = trained_rows  # how many rows there were when the centroids were learned
        order = np.argsort(labels, kind="stable")
        self.rowids, self.labels = rowids[order], labels[order]
        self.matrix = np.ascontiguousarray(matrix[order])
        self.offsets = np.searchsorted(self.labels, np.arange(len(centroids) + 1))

    @classmethod
    def train(cls, rowids: np.ndarray, matrix: np.ndarray, seed: int = 0) -> ClusterIndex:
        groups = max(1, min(len(matrix) // ROWS_PER_GROUP, 4096))
        rng = np.random.default_rng(seed)
        size = min(len(matrix), groups * TRAINING_ROWS_PER_GROUP)
        sample = matrix[np.sort(rng.choice(len(matrix), size, replace=False))]
        centroids = _kmeans(sample, groups, seed)
        return cls(centroids, rowids, assign(centroids, matrix), matrix, len(matrix))

    def __len__(self) -> int:
        return len(self.rowids)

    def search(self, vector: np.ndarray, k: int, probes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(store row ids, cosine similarities) of about the k nearest rows, best first."""
        groups = len(self.centroids)
        probes = min(groups, probes or max(MIN_PROBES, round(groups * SCANNED_SHARE)))
        with _one_blas_thread():  # small products: one thread does them fastest (see exact_top_k)
            nearest = _best(self.centroids @ vector, probes)[0]
            parts = [(self.offsets[g], self.offsets[g + 1]) for g in nearest if self.offsets[g + 1] > self.offsets[g]]
            scores = [self.matrix[a:b] @ vector for a, b in parts]
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        positions = np.concatenate([np.arange(a, b) for a, b in parts])
        top, best = _best(np.concatenate(scores), k)
        return self.rowids[positions[top]], best

    def updated(self, rowids: np.ndarray, matrix: np.ndarray) -> ClusterIndex:
        """The index over these rows (the store's, now): known rows keep their group, new ones join
        their nearest centroid, and the centroids are learned again when the rows have doubled."""
        if len(rowids) > 2 * self.trained_rows or len(rowids) < self.trained_rows // 2:
            return ClusterIndex.train(rowids, matrix)
        labels = np.full(len(rowids), -1, dtype=np.int32)
        if len(self.rowids):
            sorter = np.argsort(self.rowids)
            at = sorter[np.minimum(np.searchsorted(self.rowids, rowids, sorter=sorter), len(sorter) - 1)]
            known = self.rowids[at] == rowids
            labels[known] = self.labels[at[known]]
        new = labels < 0
        if new.any():
            labels[new] = assign(self.centroids, matrix[new])
        return ClusterIndex(self.centroids, rowids, labels, matrix, self.trained_rows)

    # ---- on disk: the centroids and each row's group; the vectors are the store's ----------------

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez(temporary, centroids=self.centroids, rowids=self.rowids, labels=self.labels,
                 trained_rows=np.array(self.trained_rows))
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path, rowids: np.ndarray, matrix: np.ndarray) -> ClusterIndex | None:
        """The saved index brought up to these rows, or None when there is none or it cannot be read."""
        try:
            with np.load(path) as saved:
                stored: dict[str, Any] = {name: saved[name] for name in saved.files}
            index = cls.__new__(cls)
            index.centroids, index.rowids, index.labels = stored["centroids"], stored["rowids"], stored["labels"]
            index.trained_rows = int(stored["trained_rows"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        if index.centroids.ndim != 2 or index.centroids.shape[1] != matrix.shape[1]:
            return None
        return index.updated(rowids, matrix)
