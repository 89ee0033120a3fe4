"""Every retrain-and-reselect round of a project: its picks, its proxy metrics on held-out human frames,
and in words why a round has none (too few human frames, still running, failed)."""

from __future__ import annotations

from typing import Any

from curator.store import repo
from curator.train.holdout import DEFAULT_HOLDOUT_FRACTION, missing_holdout_note
from curator.train.store import project_rounds
from curator.views.overview import pick_dict
from curator.workspace import Workspace

#: Metrics of a round the history lists (the rest stay in ``GET /projects/{id}/rounds``).
METRICS = ("proxy_J", "proxy_F", "proxy_JF", "holdout_frames", "train_frames", "train_human", "train_propagated")


def round_note(state: str, metrics: dict[str, Any], params: dict[str, Any]) -> str | None:
    """Why a round has no proxy metrics, in words (``None`` when it has them).

    Args:
        state: The round's state (``running``, ``succeeded``, ``failed``).
        metrics: Its stored metrics.
        params: Its parameters (``holdout_fraction`` when it was given).
    """
    if state == "running":
        return "running: the metrics come when the round ends"
    if state != "succeeded":
        return f"the round {state}: it has no metrics"
    if metrics.get("proxy_JF") is not None:
        return None
    human = int(metrics.get("train_human") or 0) + int(metrics.get("holdout_frames") or 0)
    fraction = params.get("holdout_fraction")
    return missing_holdout_note(human, DEFAULT_HOLDOUT_FRACTION if fraction is None else float(fraction))


def round_history(workspace: Workspace, project_id: int) -> dict[str, Any]:
    """The rounds of a project, oldest first, and their metrics as series for a plot.

    Args:
        workspace: Where the project lives.
        project_id: The project.

    Returns:
        ``rounds``: each with ``id``, ``number``, ``state``, ``job_id``, ``created_at``,
        ``finished_at``, ``strategy``, ``budget``, ``selection_id``, ``human_frames`` (trained on
        plus held out), ``metrics`` (:data:`METRICS`), ``note`` (why there are no proxy metrics,
        else ``None``; see :func:`round_note`) and ``picks`` (the next batch it queued, in rank
        order); ``series``: ``number``, ``proxy_JF``, ``proxy_J``, ``proxy_F``, ``human_frames``
        aligned by round (``None`` where a round has no value).
    """
    with workspace.db.session() as session:
        rounds = list(project_rounds(session, project_id))
        picks = {
            r.selection_id: repo.project_picks(session, project_id, selection_id=r.selection_id)
            for r in rounds
            if r.selection_id is not None
        }
        rows = [
            (r.id, r.number, r.state, r.job_id, r.created_at, r.finished_at, dict(r.params or {}),
             dict(r.metrics or {}), r.selection_id)
            for r in rounds
        ]
    out: list[dict[str, Any]] = []
    for rid, number, state, job_id, created, finished, params, metrics, selection_id in rows:
        human = None
        if "train_human" in metrics:
            human = int(metrics.get("train_human") or 0) + int(metrics.get("holdout_frames") or 0)
        out.append({
            "id": rid, "number": number, "state": state, "job_id": job_id, "created_at": created,
            "finished_at": finished, "strategy": params.get("strategy"), "budget": params.get("budget"),
            "selection_id": selection_id, "human_frames": human,
            "metrics": {k: metrics.get(k) for k in METRICS},
            "note": round_note(state, metrics, params),
            "picks": [pick_dict(p) for p in picks.get(selection_id, [])] if selection_id is not None else [],
        })
    return {
        "rounds": out,
        "series": {
            "number": [r["number"] for r in out],
            "proxy_JF": [r["metrics"]["proxy_JF"] for r in out],
            "proxy_J": [r["metrics"]["proxy_J"] for r in out],
            "proxy_F": [r["metrics"]["proxy_F"] for r in out],
            "human_frames": [r["human_frames"] for r in out],
        },
    }
