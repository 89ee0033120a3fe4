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


def test_store_search_batched_and_neighbours_of() -> None:
    x = unit(400, 16, seed=2)
    ids = np.arange(400, dtype=np.int64) * 3 + 1
    index = FaissIndex.build(ids, x)
    assert index.is_exact and index.nlist is None
    sims, found = index.search_batched(x, 5, batch_size=7)
    ref_sims, ref_found = index.knn(x, 5)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_allclose(sims, ref_sims)
    sims, found = index.neighbours_of(ids[:50], 4)
    assert found.shape == (50, 4) and not (found == ids[:50, None]).any()
    np.testing.assert_array_equal(found, ref_found[:50, 1:])
    # more neighbours than there are: padded with -1 / -inf
    sims, found = FaissIndex.build(ids[:3], x[:3]).neighbours_of(ids[:3], 4)
    assert (found[:, 2:] == -1).all() and np.isneginf(sims[:, 2:]).all()
    # exact duplicates: k others are returned even when the id itself is not among the hits
    dup = FaissIndex.build(np.arange(6), np.repeat(x[:1], 6, axis=0))
    _, found = dup.neighbours_of(np.arange(6), 3)
    assert all(i not in row for i, row in enumerate(found.tolist()))
    ivf = FaissIndex.build(np.arange(3000), unit(3000, 16), ivf_threshold=2000)
    assert ivf.is_ivf and ivf.nlist == 54  # sqrt(3000)


def test_ivf_recall_at_20k() -> None:
    from benchmarks.index_recall import run_index_recall

    report = run_index_recall(n=20_000, dim=384, queries=200, k=10, seed=0, sweep=(), single=5)
    assert report["nlist"] == 141 and report["nprobe"] == 16
    assert report["recall_at_k"] >= 0.95, report


def _embedded_project(workspace, n: int, videos: int = 2) -> tuple[int, list[int], np.ndarray]:  # type: ignore[no-untyped-def]
    from curator.index.project import sync_project_index
    from curator.store import repo
    from tests.api_fixtures import seed_frames

    project_id, frame_ids = seed_frames(workspace, "knn", n, videos=videos)
    x = unit(n, 12, seed=4)
    with workspace.db.session() as session:
        repo.put_embeddings(session, np.asarray(frame_ids, np.int64), x, "classic")
    sync_project_index(workspace, project_id, "classic")
    return project_id, frame_ids, x


def test_similar_frames_and_errors(workspace) -> None:  # type: ignore[no-untyped-def]
    from curator.index import FrameNotEmbeddedError, UnknownFrameError, similar_frames
    from tests.api_fixtures import seed_frames

    project_id, frame_ids, x = _embedded_project(workspace, 40)
    got = similar_frames(workspace, project_id, frame_ids[7], 5)
    order = np.argsort(-(x @ x[7]))[1:6]
    assert [f for f, _ in got] == [frame_ids[i] for i in order]
    np.testing.assert_allclose([s for _, s in got], (x @ x[7])[order], atol=1e-5)
    assert len(similar_frames(workspace, project_id, frame_ids[7], 500)) == 39
    with pytest.raises(UnknownFrameError, match="no frame with id"):
        similar_frames(workspace, project_id, 10**9, 3)
    other, other_frames = seed_frames(workspace, "other", 2)
    with pytest.raises(UnknownFrameError):  # a frame of another project
        similar_frames(workspace, project_id, other_frames[0], 3)
    with pytest.raises(FrameNotEmbeddedError, match="no embedding"):
        similar_frames(workspace, other, other_frames[0], 3)
    with pytest.raises(FrameNotEmbeddedError, match="dinov2"):
        similar_frames(workspace, project_id, frame_ids[0], 3, backbone="dinov2_vits14")
    assert issubclass(UnknownFrameError, LookupError) and issubclass(FrameNotEmbeddedError, LookupError)


def test_near_duplicates(workspace) -> None:  # type: ignore[no-untyped-def]
    from curator.index import near_duplicates
    from curator.index.project import sync_project_index
    from curator.store import repo
    from tests.api_fixtures import seed_frames

    project_id, frame_ids, x = _embedded_project(workspace, 30)
    clean = near_duplicates(workspace, project_id, frame_ids[:10])
    assert (clean.checked, clean.count, clean.examples) == (10, 0, ())
    # a second video with copies of frames 2 and 5 (nearly) and one unrelated frame
    _, new_ids = seed_frames(workspace, "dups", 3)
    with workspace.db.session() as session:
        from curator.store.models import Frame, Video

        video = session.get(Video, session.get(Frame, new_ids[0]).video_id)  # type: ignore[union-attr]
        assert video is not None
        video.project_id = project_id
        noise = 0.001 * np.random.default_rng(0).normal(size=(2, 12))
        vectors = np.concatenate([x[[2, 5]] + noise, unit(1, 12, seed=99)]).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        repo.put_embeddings(session, np.asarray(new_ids, np.int64), vectors, "classic")
    sync_project_index(workspace, project_id, "classic")
    report = near_duplicates(workspace, project_id, [*new_ids, 10**9], threshold=0.98)
    assert report.checked == 3 and report.count == 2 and report.backbone == "classic"
    assert {(a, b) for a, b, _ in report.examples} == {(new_ids[0], frame_ids[2]), (new_ids[1], frame_ids[5])}
    assert all(s >= 0.98 for _, _, s in report.examples)
    sims = [s for _, _, s in report.examples]
    assert sims == sorted(sims, reverse=True)
    assert near_duplicates(workspace, project_id, new_ids, threshold=0.98, max_examples=1).examples[0] == report.examples[0]
    empty_project, empty_frames = seed_frames(workspace, "bare", 2)
    assert near_duplicates(workspace, empty_project, empty_frames).checked == 0


def test_pool_knn_maps_index_ids_to_pool_rows(workspace) -> None:  # type: ignore[no-untyped-def]
    from curator.index import pool_knn

    project_id, frame_ids, x = _embedded_project(workspace, 60, videos=3)
    ids = np.asarray(frame_ids, np.int64)
    perm = np.random.default_rng(1).permutation(len(ids))  # pool rows in another order than the index
    knn = pool_knn(workspace, project_id, "classic", ids[perm])
    sims, rows = knn(6)
    xp = x[perm]
    brute = xp @ xp.T
    np.fill_diagonal(brute, -np.inf)
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(sims, np.take_along_axis(brute, expected, axis=1), atol=1e-5)
    _, r2 = knn(3)  # a smaller k is a slice of the kept answer
    np.testing.assert_array_equal(r2, rows[:, :3])
    _, wide = knn(100)  # more than the pool holds: -1 padding
    assert wide.shape == (60, 100) and (wide[:, 59:] == -1).all() and (wide[:, :59] >= 0).all()

    # a pool that is part of the project: neighbours come from the pool only
    part = ids[perm[:20]]
    sims, rows = pool_knn(workspace, project_id, "classic", part)(4)
    sub = x[perm[:20]] @ x[perm[:20]].T
    np.fill_diagonal(sub, -np.inf)
    np.testing.assert_array_equal(rows, np.argsort(-sub, axis=1, kind="stable")[:, :4])
    part = ids[perm[:55]]  # few frames outside the pool: searched past them
    _, rows = pool_knn(workspace, project_id, "classic", part)(4)
    sub = x[perm[:55]] @ x[perm[:55]].T
    np.fill_diagonal(sub, -np.inf)
    np.testing.assert_array_equal(rows, np.argsort(-sub, axis=1, kind="stable")[:, :4])


def test_selectors_with_pool_knn_from_the_project_index(workspace) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from curator.index import pool_knn
    from curator.selection import build_pool
    from curator_selectors import create_selector

    project_id, _, _ = _embedded_project(workspace, 120, videos=3)
    pool = build_pool(workspace, project_id, "classic")
    with_knn = replace(pool, knn=pool_knn(workspace, project_id, "classic", pool.frame_ids))
    for strategy in ("typicality", "probcover"):
        a = create_selector(strategy).select(pool, 6, np.random.default_rng(0))
        b = create_selector(strategy).select(with_knn, 6, np.random.default_rng(0))
        assert a.indices.tolist() == b.indices.tolist()
