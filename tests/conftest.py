"""Shared fixtures and the ``slow`` / ``gpu`` markers (skipped unless ``--runslow`` / a GPU)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Threads each CPU library (torch, OpenMP, BLAS, OpenCV) may use in the tests; 0 keeps their defaults.
#: One by default: the machines running the suite are small and shared, and a 2-thread torch or BLAS
#: that finds the other core busy spin-waits (SAM 2 steps measured 3.5x slower in wall time than with
#: one thread). The environment variables also reach the subprocesses tests start (a server, a kernel).
TEST_THREADS = int(os.environ.get("CURATOR_TEST_THREADS", "1"))
if TEST_THREADS > 0:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(TEST_THREADS))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
VIDEOS = SHARED / "videos"
DAVIS = SHARED / "data" / "davis2016"
DINOV2_CHECKPOINT = SHARED / "weights" / "dinov2_vits14.safetensors"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption(
        "--db", choices=("sqlite", "postgresql"), default="sqlite",
        help="the store every test's settings use: SQLite files, or a fresh database per test on a "
        "throwaway PostgreSQL server (tests/pg.py)",
    )


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[object]:
    """A throwaway PostgreSQL server on loopback (:class:`tests.pg.PostgresServer`), for this process.
    Without PostgreSQL's binaries the test is skipped, loudly; under CI it fails."""
    from tests.pg import PostgresServer, require_postgres

    server = PostgresServer(require_postgres()).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _database_per_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--db postgresql``: a new PostgreSQL database for this test, named by
    ``CURATOR_DATABASE_URL`` (every settings object and every server the test starts reads it)."""
    if request.config.getoption("--db") != "postgresql" or "sqlite_only" in request.keywords:
        return
    server = request.getfixturevalue("pg_server")
    monkeypatch.setenv("CURATOR_DATABASE_URL", server.create_database())


def pytest_configure(config: pytest.Config) -> None:
    """Apply :data:`TEST_THREADS` to the libraries already loaded (the variables above cover the rest)."""
    if TEST_THREADS <= 0:
        return
    import cv2
    import torch

    torch.set_num_threads(TEST_THREADS)
    cv2.setNumThreads(TEST_THREADS)
    try:  # BLAS and OpenMP pools numpy and friends loaded before this file
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return
    threadpool_limits(TEST_THREADS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    has_gpu = False
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        pass
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


def require(path: Path) -> Path:
    """Skip the test with a clear reason when shared test data is missing."""
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return path


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings with a fresh home under ``tmp_path`` and the classic backbone."""
    from curator.config import load_settings

    return load_settings(None, home=tmp_path / "home", backbone="classic")


@pytest.fixture
def workspace(settings):  # type: ignore[no-untyped-def]
    """A workspace (database + blobs) in a fresh home."""
    from curator.workspace import Workspace

    ws = Workspace(settings)
    yield ws
    ws.close()


@pytest.fixture
def project_id(workspace) -> int:  # type: ignore[no-untyped-def]
    """Id of a fresh project called ``test``."""
    from curator.store import repo

    with workspace.db.session() as session:
        return repo.get_or_create_project(session, "test").id


@pytest.fixture(scope="session")
def dinov2_backbone() -> Iterator[object]:
    """DINOv2 ViT-S/14 loaded from the shared checkpoint through the normal checkpoint option."""
    from curator.embed import create_backbone

    require(DINOV2_CHECKPOINT)
    yield create_backbone("dinov2_vits14", checkpoint=str(DINOV2_CHECKPOINT), device="cpu").backbone


#: SAM 2 as the tests build it: random weights (no checkpoint can be had here) at a 128 px input on the
#: CPU, with a small memory (2 mask memories, 2 object pointers) so a few frames already exercise the
#: pruning of outputs the memory can no longer read.
SAM2_TEST_SETTINGS: dict[str, object] = {
    "random_weights": True,
    "image_size": 128,
    "device": "cpu",
    "hydra_overrides": ("++model.num_maskmem=2", "++model.max_obj_ptrs_in_encoder=2"),
}


@pytest.fixture(scope="session")
def sam2_predictor() -> object:
    """One SAM 2 video predictor with :data:`SAM2_TEST_SETTINGS`, built once (a build costs seconds).

    Share it by assigning it to a propagator's ``_predictor``; it holds no per-video state.
    """
    pytest.importorskip("sam2")
    from curator.annotate import create_propagator

    return create_propagator("sam2", **SAM2_TEST_SETTINGS).predictor  # type: ignore[attr-defined]
