"""Running a selector over a project: build the pool from the database, store the picks.

Selectors live in a plugin package (``curator_selectors`` by default, ``selector_package`` in the
settings) that registers them when imported. The engine loads it by its dotted name on first use,
so it never imports the package statically and a team can swap in its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from curator.index.neighbours import pool_knn
from curator.pool import Pool, Selection
from curator.store import repo
from curator.store.models import Frame, SelectionItem, SelectionRun
from curator.train.store import latest_scores
from curator.workspace import Workspace

PREFERRED_BACKBONES = ("dinov2_vits14", "dinov2_vitb14", "classic")
DEFAULT_SELECTOR_PACKAGE = "curator_selectors"


class SelectorLike(Protocol):
    """The part of ``curator_selectors.Selector`` the engine relies on."""

    name: ClassVar[str]

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection: ...


def selector_package(package: str = DEFAULT_SELECTOR_PACKAGE) -> Any:
    """Import the selector plugin package named ``package`` (it registers its selectors).

    Raises:
        LookupError: If the package cannot be imported or has no ``create_selector``/``list_selectors``.
    """
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise LookupError(f"the selector package {package!r} cannot be imported: {exc}") from None
    if not (hasattr(module, "create_selector") and hasattr(module, "list_selectors")):
        raise LookupError(f"{package!r} is not a selector package (no create_selector/list_selectors)")
    return module


def list_selectors(package: str = DEFAULT_SELECTOR_PACKAGE) -> list[str]:
    """Names of the selectors registered by ``package``."""
    return list(selector_package(package).list_selectors())


def create_selector(name: str, params: dict[str, Any] | None = None, package: str = DEFAULT_SELECTOR_PACKAGE) -> Any:
    """Build the selector ``name`` with constructor ``params``.

    Raises:
        UnknownNameError: For an unknown name (the message lists the valid ones).
        ValueError: For constructor parameters the selector does not take or accept.
    """
    try:
        return selector_package(package).create_selector(name, **(params or {}))
    except TypeError as exc:
        raise ValueError(f"selector {name!r}: {exc}") from None


def choose_backbone(workspace: Workspace, project_id: int, requested: str | None = None) -> str:
    """The backbone whose embeddings a selection should use.

    Args:
        requested: An explicit name; ``None`` or ``auto`` picks the best one the project has.

    Raises:
        LookupError: If the project has no embeddings (under ``requested``, when given).
    """
    with workspace.db.session() as session:
        available = repo.project_backbones(session, project_id)
    if not available:
        raise LookupError(
            "the project has no embedded frames yet; run `curator ingest` (or `curator embed`) first"
        )
    if requested and requested != "auto":
        if requested not in available:
            raise LookupError(f"no embeddings under backbone {requested!r}; the project has {available}")
        return requested
    for name in PREFERRED_BACKBONES:
        if name in available:
            return name
    return available[0]


def build_pool(workspace: Workspace, project_id: int, backbone: str) -> Pool:
    """The project's embedded frames as a :class:`Pool` (labelled = has a human annotation).

    Neighbours (``Pool.knn``) come from the project's FAISS index, read only if a selector asks.

    ``scores`` holds every stored per-frame score name (see :func:`curator.train.store.latest_scores`).
    """
    with workspace.db.session() as session:
        ids, vectors = repo.get_embeddings(session, project_id, backbone)
        if len(ids) == 0:
            raise LookupError(f"project {project_id} has no embeddings under {backbone!r}")
        rows = repo.pool_rows(session, ids)
        # named per-frame scores from the retrain rounds and external predictions (newest per name)
        scores = latest_scores(session, project_id, rows.frame_ids)
    return Pool(
        embeddings=vectors,
        frame_ids=rows.frame_ids,
        video_ids=rows.video_ids,
        timestamps=rows.timestamps,
        shot_ids=rows.shot_ids,
        labeled=rows.labeled,
        scores=scores,
        knn=pool_knn(workspace, project_id, backbone, rows.frame_ids),
    )


@dataclass(frozen=True)
class Pick:
    """A stored pick: frame, rank, utility and reason, plus where the frame is."""

    frame_id: int
    rank: int
    utility: float
    reason: str
    video_id: int
    frame_index: int
    timestamp: float
    shot_id: int | None
    blob_path: str


def run_selection(
    workspace: Workspace,
    project_id: int,
    selector: SelectorLike,
    budget: int,
    *,
    seed: int = 0,
    backbone: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[int, list[Pick]]:
    """Select ``budget`` frames of a project and store the selection.

    Returns:
        The selection id and its picks in pick order.
    """
    backbone = choose_backbone(workspace, project_id, backbone)
    pool = build_pool(workspace, project_id, backbone)
    result = selector.select(pool, budget, np.random.default_rng(seed))
    with workspace.db.session() as session:
        row = SelectionRun(
            project_id=project_id,
            strategy=selector.name,
            budget=budget,
            params=params or {},
            seed=seed,
            backbone=backbone,
        )
        session.add(row)
        session.flush()
        picks: list[Pick] = []
        for rank, (index, utility) in enumerate(
            zip(result.indices.tolist(), result.utilities.tolist(), strict=True)
        ):
            frame_id = int(pool.frame_ids[index])
            reason = result.reason(rank)
            session.add(
                SelectionItem(
                    selection_id=row.id, frame_id=frame_id, rank=rank, utility=float(utility), reason=reason
                )
            )
            frame = session.get(Frame, frame_id)
            assert frame is not None
            picks.append(
                Pick(
                    frame_id,
                    rank,
                    float(utility),
                    reason,
                    frame.video_id,
                    frame.frame_index,
                    frame.timestamp,
                    frame.shot_id,
                    frame.blob_path,
                )
            )
        return row.id, picks
