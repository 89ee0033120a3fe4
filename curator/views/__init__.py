"""Read models of the project view: what the project pages (``GET /project``) and scripts show.

Each function reads one view of a stored project as JSON-ready values (lists, numbers, strings and
datetimes) through :mod:`curator.store.repo`; :class:`curator.Project` exposes them as
:meth:`~curator.Project.overview`, :meth:`~curator.Project.video_timeline`,
:meth:`~curator.Project.embedding_map` and :meth:`~curator.Project.round_history`.

* :func:`project_overview`: videos with their shots, picks (reason, utility, task state) and
  labelled frames on a timeline; selections; queue counts by state and per annotator.
* :func:`video_timeline`: one video frame by frame (columns): the best mask source on each frame,
  its lowest object confidence, its task, the keyframes (human masks) and the picks.
* :func:`embedding_map`: a 2-D PCA projection of the frame embeddings, cached as a blob keyed by
  the state of the embeddings, with per-frame video, shot, labelled, picked and queued columns.
* :func:`round_history`: every round's picks and proxy metrics, and why a round has none.
"""

from curator.views.embedding_map import embedding_map, pca_2d
from curator.views.overview import project_overview
from curator.views.rounds import round_history
from curator.views.timeline import video_timeline

__all__ = ["embedding_map", "pca_2d", "project_overview", "round_history", "video_timeline"]
