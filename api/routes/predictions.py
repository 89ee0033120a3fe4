"""External predictions: per-frame scores or probability maps from the user's own model."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter

from api.deps import PrincipalDep, SessionDep
from api.errors import ApiError
from api.routes.common import Id, errors, project_for
from api.schemas_train import PredictionsCreate, PredictionsPublic
from curator.store import repo
from curator.train.scores import SCORE_DIRECTIONS, frame_scores
from curator.train.store import put_scores

router = APIRouter(tags=["rounds"])


@router.post(
    "/projects/{project_id}/predictions", status_code=201, response_model=PredictionsPublic,
    responses=errors(400, 401, 403, 404, 422, 507),
)
def post_predictions(
    project_id: Id, body: PredictionsCreate, session: SessionDep, principal: PrincipalDep
) -> PredictionsPublic:
    """Store per-frame scores (names as the uncertainty selectors read them: ``entropy``, ``margin``,
    ``confidence``, ...) or ``C x h x w`` class probabilities (reduced to those scores) from your own
    model. They are the newest scores, so the next selection or round's selection uses them."""
    project_for(session, principal, project_id, "admin")
    ids = sorted({f.frame_id for f in body.frames})
    missing = repo.frames_not_in_project(session, project_id, ids)
    if missing:
        raise ApiError(422, "unknown_frames", f"frames {missing[:10]} are not frames of project {project_id}")
    scores: dict[int, dict[str, float]] = {}
    for item in body.frames:
        named = dict(item.scores)
        bad = [n for n in named if n not in SCORE_DIRECTIONS]
        if bad:
            raise ApiError(422, "unknown_score", f"unknown score names {bad}; known: {', '.join(SCORE_DIRECTIONS)}")
        if any(not np.isfinite(v) for v in named.values()):
            raise ApiError(422, "invalid_score", f"frame {item.frame_id}: scores must be finite numbers")
        if item.probabilities is not None:
            try:
                probs = np.asarray(item.probabilities, dtype=np.float32)
            except ValueError:
                raise ApiError(422, "invalid_probabilities", f"frame {item.frame_id}: probabilities must be C x h x w") from None
            if probs.ndim != 3 or probs.shape[0] < 2 or probs.shape[1] < 1 or probs.shape[2] < 1:
                raise ApiError(
                    422, "invalid_probabilities", f"frame {item.frame_id}: probabilities must be C>=2 x h x w, got {probs.shape}"
                )
            if not np.isfinite(probs).all() or probs.min() < 0 or np.abs(probs.sum(axis=0) - 1).max() > 1e-2:
                raise ApiError(
                    422, "invalid_probabilities", f"frame {item.frame_id}: probabilities must be >= 0 and sum to 1 per pixel"
                )
            named = {**frame_scores(probs, body.top_fraction), **named}
        if not named:
            raise ApiError(422, "empty_prediction", f"frame {item.frame_id}: give scores or probabilities")
        scores.setdefault(item.frame_id, {}).update(named)
    written = put_scores(session, project_id, scores, source="external")
    session.commit()
    return PredictionsPublic(
        frames=len(scores), scores=written, names=sorted({n for s in scores.values() for n in s})
    )
