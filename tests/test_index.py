"""The FAISS store: add/remove/get/knn by id, persistence, IVF switch, project sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import VIDEOS, require
from curator.index import FaissIndex


def unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_round_trip_persist_reload_same_neighbours(tmp_path: Path) -> None:
    x = unit(500, 32)
    ids = np.arange(500, dtype=np.int64) * 7 + 3
    index = FaissIndex(32)
    index.add(ids, x)
    sims, found = index.knn(x[:20], 5)
    assert found[:, 0].tolist() == ids[:20].tolist()  # each vector is its own nearest neighbour
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    path = tmp_path / "idx" / "p.faiss"
    index.save(path)
    reloaded = FaissIndex.load(path)
    sims2, found2 = reloaded.knn(x[:20], 5)
    np.testing.assert_array_equal(found, found2)
    np.testing.assert_allclose(sims, sims2)
    np.testing.assert_allclose(reloaded.get(ids[[4, 400]]), x[[4, 400]])
    assert sorted(reloaded.ids().tolist()) == sorted(ids.tolist())


def test_remove_and_replace(tmp_path: Path) -> None:
    x = unit(100, 8)
    ids = np.arange(100, dtype=np.int64)
    index = FaissIndex(8)
    index.add(ids, x)
    assert index.remove(ids[:10]) == 10 and index.ntotal == 90
    assert not index.contains(ids[:10]).any()
    _, found = index.knn(x[:10], 3)
    assert not np.isin(found, ids[:10]).any()
    with pytest.raises(KeyError):
        index.get(ids[:1])
    index.add(ids[50:51], x[:1])  # re-adding an id replaces its vector
    assert index.ntotal == 90
    np.testing.assert_allclose(index.get(ids[50:51]), x[:1])


def test_ivf_switch_keeps_ids_and_recall(tmp_path: Path) -> None:
    x = unit(3000, 16, seed=1)
    ids = np.arange(3000, dtype=np.int64) + 10_000
    index = FaissIndex(16, ivf_threshold=2000, nprobe=64)
    index.add(ids[:1500], x[:1500])
    assert index.is_exact
    index.add(ids[1500:], x[1500:])
    assert index.is_ivf and index.ntotal == 3000
    _, found = index.knn(x[:200], 1)
    assert (found[:, 0] == ids[:200]).mean() > 0.95
    assert index.remove(ids[:5]) == 5
    path = tmp_path / "ivf.faiss"
    index.save(path)
    reloaded = FaissIndex.load(path, nprobe=64)
    assert reloaded.is_ivf and reloaded.ntotal == 2995
    np.testing.assert_allclose(reloaded.get(ids[[100]]), x[[100]])


def test_shape_errors() -> None:
    index = FaissIndex(8)
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        index.add(np.arange(2), unit(2, 4))
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([1, 1]), unit(2, 8))
    with pytest.raises(ValueError, match="8 columns"):
        index.knn(unit(1, 4), 1)
    with pytest.raises(FileNotFoundError):
        FaissIndex.load("/nonexistent/x.faiss")


def test_project_index_rebuilds_from_database(workspace, project_id) -> None:  # type: ignore[no-untyped-def]
    from curator.embed import create_backbone
    from curator.index.project import sync_project_index
    from curator.ingest import ingest_video

    ingest_video(
        workspace, project_id, require(VIDEOS / "bikes.mp4"), backbone=create_backbone("classic").backbone
    )
    path = workspace.index_path(project_id, "classic")
    first = FaissIndex.load(path)
    path.unlink()  # the file is a cache of the database: losing it loses nothing
    rebuilt = sync_project_index(workspace, project_id, "classic")
    assert sorted(rebuilt.ids().tolist()) == sorted(first.ids().tolist())
    q = first.get(first.ids()[:5])
    np.testing.assert_array_equal(first.knn(q, 4)[1], rebuilt.knn(q, 4)[1])
