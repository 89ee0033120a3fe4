"""The façade: one API for the whole job, used by the CLI, the REST routes, job handlers and notebooks.

>>> import curator
>>> with curator.open("./curator-data") as home:
...     street = home.project("street")
...     street.ingest(["clip.mp4"], fps=2)
...     street.select(8)                       # the default selector; picks are queued as tasks
...     task = street.claim()[0]
...     street.submit(task.id, {1: mask})      # bool (H, W) arrays, a label image, or COCO RLE
...     street.propagate()                     # every video with human masks, whole video
...     street.export("coco", dest="out/")  # a zip: annotations/ and images/

Every verb runs in the calling process; the REST service runs the same verbs as jobs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curator.config import Settings, load_settings
from curator.selection import Pick
from curator.workspace import Workspace

#: Masks as a caller may give them: ``{object_id: bool (H, W) array}``, a label image
#: (0 background, ``k`` object ``k``), ``(object_id, COCO RLE)`` pairs, or a path to an indexed PNG.
MaskInput = Mapping[int, np.ndarray] | np.ndarray | Sequence[tuple[int, Mapping[str, Any]]] | str | Path

#: Receives one-line notices (for example that ``auto`` fell back to a weight-free model).
NoticeFn = Callable[[str], None]

#: Staged progress: ``(stage, done, total)``.
StagedProgress = Callable[[str, int, int | None], None]

LOCAL_OWNER = 0  # lease owner of claims made through the library or the CLI (API keys start at 1)


def stderr_notice(message: str) -> None:
    """Print a notice on stderr (the default :data:`NoticeFn`)."""
    print(f"Notice: {message}", file=sys.stderr)


def open(
    home: str | Path | None = None,
    *,
    config: str | Path | None = None,
    notice: NoticeFn = stderr_notice,
    **settings: Any,
) -> Curator:
    """Open a curator home (database and blob folder), creating it if needed.

    Args:
        home: Data folder; default ``$CURATOR_HOME`` or ``./curator-data``.
        config: YAML settings file (see ``configs/default.yaml``).
        notice: Receives notices such as a fallback from DINOv2 to the ``classic`` embedder.
        **settings: Any other setting (``backbone="classic"``, ``sample_fps=2``, ...).
    """
    return Curator(load_settings(config, home=home, **settings), notice=notice)


@dataclass(frozen=True)
class ProjectInfo:
    """A project with its counts."""

    id: int
    name: str
    videos: int
    frames: int


@dataclass(frozen=True)
class QueuedPick(Pick):
    """A stored pick (:class:`curator.selection.Pick`) and its task in the queue (``None``: not queued)."""

    task_id: int | None = None


@dataclass(frozen=True)
class SelectionResult:
    """A stored selection: its id, the selector, and the picks in order."""

    selection_id: int
    strategy: str
    picks: list[QueuedPick]
    #: What pre-annotating the queued picks did (:meth:`Project.preannotate`); ``None`` if it did not run.
    preannotation: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {"selection_id": self.selection_id, "strategy": self.strategy, "picks": [asdict(p) for p in self.picks]}
        if self.preannotation is not None:
            out["preannotation"] = self.preannotation
        return out


@dataclass(frozen=True)
class IngestReport:
    """What :meth:`Project.ingest` did: one result per ingested file, and the files it rejected."""

    results: list[Any] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    #: Per ingested video id: how many of its frames nearly duplicate a frame of another video.
    near_duplicates: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportReport:
    """What :meth:`Project.import_masks` stored: frames and masks, and the frames it did not find."""

    frames: int
    masks: int
    unmatched: list[str]


class Curator:
    """An open curator home: settings, database and blobs, and its projects.

    Args:
        settings: Settings naming the home and every default.
        notice: Receives one-line notices (fallbacks).
        workspace: An already-open workspace of ``settings`` to use (the service's, a job's).
    """

    def __init__(self, settings: Settings, notice: NoticeFn = stderr_notice, *, workspace: Workspace | None = None) -> None:
        self.settings = settings
        self.workspace = workspace or Workspace(settings)
        self.notice = notice
        self._backbones: dict[str, Any] = {}
        #: Why ``auto`` fell back to ``classic``, per backbone name asked for (absent: no fallback).
        self.fallbacks: dict[str, str] = {}

    def project(self, name: str, *, create: bool = True) -> Project:
        """The project called ``name``; created when missing unless ``create`` is False.

        Raises:
            NotFoundError: If it does not exist and ``create`` is False (the message lists projects).
        """
        from curator.store import repo

        with self.workspace.db.session() as session:
            row = repo.get_or_create_project(session, name) if create else repo.get_project(session, name)
            return Project(self, row.id, row.name)

    def project_by_id(self, project_id: int) -> Project:
        """The project with id ``project_id``.

        Raises:
            NotFoundError: If there is none.
        """
        from curator.store import repo
        from curator.store.models import Project as ProjectRow

        with self.workspace.db.session() as session:
            row = session.get(ProjectRow, project_id)
            if row is None:
                raise repo.NotFoundError(f"no project with id {project_id}")
            return Project(self, row.id, row.name)

    def segmenter(self, backend: str | None = None) -> Any:
        """The process's click-to-segment backend for this workspace (built once; the first call may
        load weights), with its encodings kept on disk under the workspace's blobs
        (:mod:`curator.segment.cache`), so a frame warmed by :meth:`Project.warm_segments` is not
        encoded again.

        Args:
            backend: ``grabcut``, ``feature``, ``sam2`` or ``auto`` (default the ``segmenter`` setting).

        Returns:
            :class:`curator.segment.SegmenterChoice` (``segmenter``, ``name``, ``fell_back``).
        """
        from curator.segment import shared_segmenter
        from curator.segment.cache import CACHE_DIR, attach_store

        settings = self.settings
        choice = shared_segmenter(
            backend or settings.segmenter,
            notice=self.notice,
            checkpoint=settings.backbone_checkpoint or None,
            device=settings.device,
        )
        attach_store(choice.segmenter, self.workspace.blobs.path(CACHE_DIR))
        return choice

    def projects(self) -> list[ProjectInfo]:
        """Every project with its video and frame counts, by id."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            return [ProjectInfo(p.id, p.name, v, f) for p, v, f in repo.project_counts(session)]

    def backbone(self, name: str | None = None, checkpoint: str | None = None) -> Any:
        """The embedding backbone ``name`` (default the settings'), built once per home.

        ``auto`` is DINOv2 when its weights resolve and ``classic`` otherwise, with a notice.

        Raises:
            BackboneWeightsError: If a DINOv2 backbone is named and its weights cannot be had.
            UnknownNameError: For an unknown name.
        """
        from curator.embed import create_backbone

        name = name or self.settings.backbone
        key = f"{name}:{checkpoint or ''}"
        if key not in self._backbones:
            choice = create_backbone(
                name, checkpoint or self.settings.backbone_checkpoint or None, self.settings.device
            )
            if choice.fell_back:
                self.fallbacks[name] = choice.fell_back
                self.notice(
                    "DINOv2 weights could not be resolved; using the weight-free 'classic' embedder.\n"
                    f"  Why: {choice.fell_back}"
                )
            self._backbones[key] = choice.backbone
        return self._backbones[key]

    def propagator(self, name: str | None = None) -> tuple[Any, str]:
        """A propagator and its name (default the settings'; ``auto``: ``flow+feature`` when DINOv2
        weights resolve, else ``flow`` with a notice)."""
        from curator.annotate.choose import FEATURE_PROPAGATORS, choose_propagator
        from curator.embed import BackboneWeightsError

        name = name or self.settings.propagator
        backbone = None
        if name in ("auto", *FEATURE_PROPAGATORS):
            try:
                backbone = self.backbone("dinov2_vits14")
            except BackboneWeightsError as exc:
                if name != "auto":
                    raise
                self.notice(
                    f"DINOv2 weights could not be resolved; propagating with 'flow' instead of 'flow+feature'.\n  Why: {exc}"
                )
                name = "flow"
        choice = choose_propagator(name, backbone=backbone, device=self.settings.device)
        return choice.propagator, choice.name

    def close(self) -> None:
        """Release database connections."""
        self.workspace.close()

    def __enter__(self) -> Curator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Project:
    """One project of a home, with every verb of the job.

    Get one with ``curator.open(home).project(name)`` (or :meth:`by_id` inside the service).
    """

    def __init__(self, home: Curator, project_id: int, name: str) -> None:
        self.home = home
        self.id = project_id
        self.name = name

    @classmethod
    def by_id(cls, workspace: Workspace, project_id: int, notice: NoticeFn = stderr_notice) -> Project:
        """The project ``project_id`` of an already-open workspace (job handlers use this)."""
        return Curator(workspace.settings, notice, workspace=workspace).project_by_id(project_id)

    @property
    def workspace(self) -> Workspace:
        """The workspace (database and blobs) this project lives in."""
        return self.home.workspace

    def __repr__(self) -> str:
        return f"Project(id={self.id}, name={self.name!r})"

    # --- footage ----------------------------------------------------------------------------------

    def ingest(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        fps: float | None = None,
        stride: int | None = None,
        backbone: str | None = None,
        embed: bool = True,
        skip_bad: bool = False,
        progress: StagedProgress | None = None,
    ) -> IngestReport:
        """Decode, split into shots, sample, store and (with ``embed``) embed and index videos.

        Args:
            paths: One video file or several.
            fps: Candidate frames per second for these files, in place of the ``sample_fps`` setting
                (0 keeps every ``stride``-th frame; at most 1000).
            stride: Keep every n-th decoded frame, in place of the ``sample_stride`` setting (1..100000).
            backbone: Embedding backbone (default the settings'; ``auto`` falls back to ``classic``).
            embed: Embed frames on the way (into the project's FAISS index).
            skip_bad: Record files that are not decodable videos in ``rejected`` and go on, instead
                of raising at the first one.
            progress: Staged progress callback.

        Raises:
            ValueError: For an ``fps`` or ``stride`` out of range (before anything is read).
            VideoDecodeError: For a file that is not a decodable video (unless ``skip_bad``); nothing
                of it is stored.
        """
        from curator.ingest import VideoDecodeError, ingest_video
        from curator.ingest.sample import sampling_settings
        from curator.progress import no_progress

        items = [paths] if isinstance(paths, str | Path) else list(paths)
        settings = sampling_settings(self.home.settings, fps, stride)
        model = self.home.backbone(backbone) if embed else None
        report = IngestReport()
        for path in items:
            try:
                result = ingest_video(
                    self.workspace, self.id, path, backbone=model, settings=settings, progress=progress or no_progress
                )
            except VideoDecodeError as exc:
                if not skip_bad:
                    raise
                report.rejected[str(path)] = str(exc)
                continue
            report.results.append(result)
            if result.created and result.embedded:
                report.near_duplicates[result.video_id] = self.near_duplicates(result.video_id)
        return report

    def near_duplicates(self, video: int, threshold: float = 0.98) -> Any:
        """How many frames of ``video`` nearly duplicate (cosine >= ``threshold``) a frame of another
        video of the project, from the FAISS index (:class:`curator.index.NearDuplicates`)."""
        from curator.index import near_duplicates
        from curator.store import repo

        with self.workspace.db.session() as session:
            ids = [f.id for f in repo.project_frames(session, self.id) if f.video_id == video]
        return near_duplicates(self.workspace, self.id, ids, threshold, other_videos=True)

    def embed(self, backbone: str | None = None, *, progress: StagedProgress | None = None) -> int:
        """Embed the frames lacking an embedding under ``backbone`` and sync the FAISS index.

        Returns:
            Frames embedded.
        """
        from curator.embed.project import embed_project
        from curator.index.project import sync_project_index
        from curator.progress import no_progress

        model = self.home.backbone(backbone)
        done = embed_project(self.workspace, self.id, model, progress=progress or no_progress)
        sync_project_index(self.workspace, self.id, model.name)
        return done

    def videos(self) -> list[dict[str, Any]]:
        """The project's videos: id, file name, frame count, duration."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            return [
                {"id": v.id, "filename": v.filename, "frames": n, "fps": v.fps, "duration": v.duration}
                for v, n in repo.project_videos(session, self.id)
            ]

    def frames(self, video: int | None = None) -> list[dict[str, Any]]:
        """Stored frames (of one video, or all) in time order: id, video, index, time, shot, size."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            return [
                {"id": f.id, "video_id": f.video_id, "frame_index": f.frame_index, "timestamp": f.timestamp,
                 "shot_id": f.shot_id, "width": f.width, "height": f.height}
                for f in repo.project_frames(session, self.id)
                if video is None or f.video_id == video
            ]

    def masks(self, frame_id: int, sources: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The masks stored on a frame, by object: ``object_id``, ``source`` (``human``, ``propagated``,
        ``predicted``, ``rejected``), ``confidence`` and ``mask`` (bool ``(H, W)``), optionally only
        from ``sources``."""
        from curator.annotate.masks import decode_rle
        from curator.store import repo

        with self.workspace.db.session() as session:
            found = repo.frame_project(session, frame_id)
            if found is None or found[1] != self.id:
                raise repo.NotFoundError(f"no frame {frame_id} in project {self.name!r}")
            return [
                {"object_id": a.object_id, "source": a.source, "confidence": a.confidence, "mask": decode_rle(a.rle)}
                for a in repo.frame_annotations(session, frame_id, sources)
            ]

    def image_path(self, frame_id: int) -> Path:
        """Where the stored JPEG of a frame is."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            found = repo.frame_project(session, frame_id)
            if found is None or found[1] != self.id:
                raise repo.NotFoundError(f"no frame {frame_id} in project {self.name!r}")
            return self.workspace.blobs.path(found[0].blob_path)

    def image(self, frame_id: int) -> np.ndarray:
        """The stored image of a frame as ``(H, W, 3)`` uint8 RGB."""
        from curator.store.blobs import read_rgb

        return read_rgb(self.image_path(frame_id))

    def segment(
        self,
        frame_id: int,
        points: Sequence[Sequence[Any]],
        box: Sequence[float] | None = None,
        mask: np.ndarray | Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> Any:
        """One object's mask on a frame from clicks (click-to-segment); nothing is stored.

        The segmenter is built once per process and caches per-frame encoder output, so clicks after
        the first on a frame cost no encoder pass.

        Args:
            frame_id: A frame of this project.
            points: Every click on the object so far, ``(x, y, positive)`` in pixels, oldest first.
            box: Optional ``(x0, y0, x1, y1)`` around the object.
            mask: The object's current mask (bool ``(H, W)`` or COCO RLE), refined rather than replaced.
            backend: ``grabcut``, ``feature``, ``sam2`` or ``auto`` (default the ``segmenter`` setting).

        Returns:
            :class:`curator.segment.SegmentResult`: ``mask`` (bool ``(H, W)``), ``score``, ``backend``.

        Raises:
            NotFoundError: For a frame of another project or none.
            InvalidPromptError: For clicks or a box outside the frame, or neither.
            InvalidMaskError: For a mask of another size or a malformed RLE.
            UnknownNameError: For an unknown backend.
            BackboneWeightsError, SAM2WeightsError: If the named backend's weights cannot be had.
        """
        from curator.annotate.masks import decode_rle
        from curator.labels.masks import InvalidMaskError, check_rle
        from curator.segment.cache import frame_key
        from curator.segment.types import check_prompt
        from curator.store import repo
        from curator.store.blobs import read_rgb

        with self.workspace.db.session() as session:
            found = repo.frame_project(session, frame_id)
            if found is None or found[1] != self.id:
                raise repo.NotFoundError(f"no frame {frame_id} in project {self.name!r}")
            path = self.workspace.blobs.path(found[0].blob_path)
            key = frame_key(found[0].content_hash, path)
        image = read_rgb(path)
        height, width = image.shape[:2]
        if isinstance(mask, Mapping):
            mask = decode_rle(check_rle(1, mask, height, width))
        elif mask is not None and np.shape(mask) != (height, width):
            raise InvalidMaskError(f"the mask has shape {np.shape(mask)}, the frame is ({height}, {width})")
        check_prompt(image, points, box, mask)  # bad input fails before any model loads
        return self.segmenter(backend).segmenter.segment(image, points, box, mask, key=key)

    def segmenter(self, backend: str | None = None) -> Any:
        """The process's click-to-segment backend for this workspace (:meth:`Curator.segmenter`)."""
        return self.home.segmenter(backend)

    def warm_segments(
        self,
        task_ids: Sequence[int] | None = None,
        backend: str | None = None,
        *,
        progress: Callable[[str, int, int | None], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Run click-to-segment's encoder on queued tasks' frames ahead of the first click, and keep
        the result on disk, so the annotator's first click costs a decoder pass only.

        Args:
            task_ids: Tasks to warm (default every open or leased task of the project).
            backend: The segmenter (default the ``segmenter`` setting).
            progress: Called with ``("warm", frames done, frames)``.
            cancel: Stops early when it returns True.

        Returns:
            ``segmenter`` (its name), ``frames`` (considered), ``encoded`` (encoder passes run now),
            ``cached`` (already cached) and ``seconds``; a segmenter without an encoder (``grabcut``)
            gives ``frames`` with nothing encoded.
        """
        from curator.labels.preannotate import warm_frames

        choice = self.segmenter(backend)
        return {"segmenter": choice.name, **warm_frames(
            self.workspace, self.id, task_ids, choice.segmenter, progress=progress, cancel=cancel
        )}  # fmt: skip

    # --- selection and the queue ------------------------------------------------------------------

    def select(
        self,
        budget: int,
        strategy: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        seed: int | None = None,
        backbone: str | None = None,
        queue: bool = True,
        preannotate: bool | None = None,
    ) -> SelectionResult:
        """Pick ``budget`` frames worth labelling with a selector and store the selection.

        Args:
            budget: Frames to pick.
            strategy: Selector name (default the settings', ``curator``).
            params: Selector constructor settings.
            seed: Random seed (default the settings').
            backbone: Use the embeddings of this backbone (default: the best the project has).
            queue: Queue every pick as a labelling task.
            preannotate: Pre-annotate the queued tasks here and now (:meth:`preannotate`; default the
                ``preannotate`` setting). The service passes False and runs a ``preannotate`` job instead.

        Raises:
            UnknownNameError: For an unknown selector.
            ValueError: For bad parameters.
            LookupError: If the project has no embeddings.
        """
        from curator.selection import create_selector, run_selection
        from curator.store import repo

        settings = self.home.settings
        name = strategy or settings.selector
        selector = create_selector(name, params, settings.selector_package)
        seed = settings.seed if seed is None else int(seed)
        selection_id, picks = run_selection(
            self.workspace, self.id, selector, int(budget), seed=seed, backbone=backbone, params=params or {}
        )
        tasks: dict[int, int] = {}
        if queue:
            with self.workspace.db.session() as session:
                tasks = repo.create_tasks(session, self.id, selection_id, [(p.frame_id, p.reason) for p in picks])
        wanted = settings.preannotate if preannotate is None else preannotate
        done = self.preannotate(sorted(set(tasks.values()))) if wanted and tasks else None
        return SelectionResult(
            selection_id,
            name,
            [QueuedPick(**asdict(p), task_id=tasks.get(p.frame_id)) for p in picks],
            done,
        )

    def queue_frames(self, frame_ids: Iterable[int], reason: str = "manual") -> dict[str, Any]:
        """Queue frames for labelling by id (picked by a person rather than a selector): one ``open``
        task per frame without a task; a frame that has one keeps it, whatever its state.

        Args:
            frame_ids: Frames of this project.
            reason: Why they are queued (1 to 100 characters; the task's ``reason``).

        Returns:
            ``tasks`` (frame id to task id, for every frame given), ``created`` (ids of the new tasks)
            and ``existing`` (frame id to the state of the task it had already).

        Raises:
            ValueError: For an empty or too long ``reason``.
            NotFoundError: For ids that are not frames of this project (nothing is queued).
        """
        from curator.store import repo

        ids = list(dict.fromkeys(int(f) for f in frame_ids))
        reason = reason.strip()
        if not 1 <= len(reason) <= 100:
            raise ValueError("a reason has 1 to 100 characters")
        with self.workspace.db.session() as session:
            unknown = [f for lo in range(0, len(ids), 5000)
                       for f in repo.frames_not_in_project(session, self.id, ids[lo : lo + 5000])]
            if unknown:
                raise repo.NotFoundError(
                    f"{len(unknown)} frame(s) are not frames of project {self.name!r}: {unknown[:10]}"
                )
            before = repo.existing_tasks(session, self.id, ids)
            tasks: dict[int, int] = {}
            for lo in range(0, len(ids), 5000):
                tasks.update(repo.create_tasks(session, self.id, None, [(f, reason) for f in ids[lo : lo + 5000]]))
        return {
            "tasks": tasks,
            "created": sorted(t for f, t in tasks.items() if f not in before),
            "existing": {f: state for f, (_, state) in before.items()},
        }

    def tasks(self) -> dict[str, int]:
        """Task counts by state: ``open``, ``leased``, ``expired``, ``done``, ``total``."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            return repo.queue_counts(session, self.id)

    def claim(self, limit: int = 1, *, owner: int = LOCAL_OWNER, lease_seconds: float | None = None) -> list[Any]:
        """Lease up to ``limit`` open tasks (oldest first); never one task to two owners.

        Returns:
            :class:`curator.store.repo.Lease` rows (``id``, ``frame_id``, ``video_id``, ``frame_index``, ...).
        """
        from curator.store import repo

        seconds = self.home.settings.lease_seconds if lease_seconds is None else lease_seconds
        with self.workspace.db.session() as session:
            return repo.claim_tasks(session, self.id, owner, int(limit), seconds)

    def submit(
        self, task_id: int, masks: MaskInput, *, owner: int = LOCAL_OWNER, now: float | None = None
    ) -> int:
        """Store the human masks of a leased task and mark it done.

        Args:
            task_id: A task this ``owner`` holds an unexpired lease on.
            masks: See :data:`MaskInput`; validated against the frame's size.
            owner: Lease owner (API key id; the library and CLI use 0).

        Returns:
            Masks stored.

        Raises:
            InvalidMaskError: For masks that do not fit the frame.
            LookupError: For an unknown task, or one this owner holds no lease on.
        """
        import time

        from curator.store import repo

        with self.workspace.db.session() as session:
            found = repo.task_with_frame(session, task_id)
            if found is None or found[0].project_id != self.id:
                raise repo.NotFoundError(f"no task {task_id} in project {self.name!r}")
            frame = found[1]
            checked = frame_masks(masks, frame.height, frame.width)
            if not repo.finish_task(session, task_id, owner, time.time() if now is None else now):
                raise LookupError(f"task {task_id} is not leased to you (state {found[0].state}); claim it first")
            repo.store_human_masks(session, frame.id, checked)
        return len(checked)

    def release(self, task_id: int, *, owner: int | None = LOCAL_OWNER) -> bool:
        """Give a leased task back to the pool (``owner=None`` releases anyone's lease)."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            return repo.release_task(session, task_id, owner)

    def _task(self, session: Any, task_id: int) -> Any:
        from curator.store import repo

        found = repo.task_with_frame(session, task_id)
        if found is None or found[0].project_id != self.id:
            raise repo.NotFoundError(f"no task {task_id} in project {self.name!r}")
        return found[0]

    def reopen(self, task_id: int) -> bool:
        """Put a done task back in the queue (``open``). Its human masks stay: still the frame's label
        and the task's pre-annotation until a new submission replaces them.

        Returns:
            False if the task is not done.

        Raises:
            NotFoundError: For a task not of this project.
        """
        from curator.store import repo

        with self.workspace.db.session() as session:
            self._task(session, task_id)
            return repo.reopen_task(session, task_id)

    def reject(self, task_id: int, note: str) -> bool:
        """Send a done task's submission back to the queue with a reviewer's ``note``.

        The task becomes ``open`` with ``review_note``; the frame's human masks become ``rejected``:
        no longer a label (not exported, propagated or trained on), shown as the task's pre-annotation
        until a new submission replaces them.

        Returns:
            False if the task is not done.

        Raises:
            NotFoundError: For a task not of this project.
        """
        from curator.store import repo

        with self.workspace.db.session() as session:
            self._task(session, task_id)
            return repo.reject_task(session, task_id, note)

    def task(self, task_id: int) -> dict[str, Any]:
        """One task: ``id``, ``frame_id``, ``state`` (an expired lease reads ``open``), ``reason``,
        ``review_note`` and ``pre_annotation`` (masks as ``object_id``, ``source``, ``confidence``,
        ``rle``; see :func:`curator.store.repo.pre_annotation`)."""
        import time

        from curator.store import repo

        with self.workspace.db.session() as session:
            task = self._task(session, task_id)
            state = task.state
            if state == "leased" and (task.lease_expires_at or 0) < time.time():
                state = "open"
            return {
                "id": task.id, "frame_id": task.frame_id, "state": state, "reason": task.reason,
                "review_note": task.review_note,
                "pre_annotation": [
                    {"object_id": a.object_id, "source": a.source, "confidence": a.confidence, "rle": a.rle}
                    for a in repo.pre_annotation(session, task.frame_id)
                ],
            }

    def preannotate(
        self,
        task_ids: Sequence[int] | None = None,
        *,
        propagator: str | None = None,
        progress: StagedProgress | None = None,
    ) -> dict[str, Any]:
        """Give open and leased tasks a pre-annotation where one can be had without a human on their
        frame: the frame's propagated or predicted masks when it has some, else masks propagated from
        its video's human keyframes (over the stretch of video those frames need only), else SAM 2's
        automatic masks when a SAM 2 checkpoint is configured (:mod:`curator.labels.automask`).

        Args:
            task_ids: Tasks (default every open or leased task of the project).
            propagator: Propagator name (default the settings'); built only if something is to propagate.
            progress: Staged progress callback.

        Returns:
            ``tasks``, ``pre_annotated``, ``already``, ``filled``, ``videos``, ``propagator``,
            ``automasked`` and ``reason`` (why some have none: ``no human masks yet`` on a project
            without labels); see :func:`curator.labels.preannotate.preannotate_tasks`.
        """
        from curator.labels.automask import configured_automasker
        from curator.labels.preannotate import preannotate_tasks

        return preannotate_tasks(
            self.workspace, self.id, task_ids, lambda: self.home.propagator(propagator),
            automask=lambda: configured_automasker(self.home.settings.device), progress=progress,
        )

    def label(self, frame_id: int, masks: MaskInput) -> int:
        """Store human masks on a frame directly (no task needed); its open task, if any, is done.

        Returns:
            Masks stored.
        """
        from curator.store import repo

        with self.workspace.db.session() as session:
            found = repo.frame_project(session, frame_id)
            if found is None or found[1] != self.id:
                raise repo.NotFoundError(f"no frame {frame_id} in project {self.name!r}")
            frame = found[0]
            checked = frame_masks(masks, frame.height, frame.width)
            repo.store_human_masks(session, frame_id, checked)
            repo.complete_frame_tasks(session, self.id, [frame_id], LOCAL_OWNER)
        return len(checked)

    def import_masks(self, source: str | Path, *, video: int | str | None = None) -> ImportReport:
        """Store masks from a DAVIS PNG folder, a COCO file or a Label Studio JSON export as human masks.

        Frames are matched by video and frame index (see :mod:`curator.labels.importers`); ``video``
        names the video (id or file name) for a flat folder when the project has several. Every
        mask is validated before anything is stored, so a bad file stores nothing.

        Raises:
            InvalidMaskError: For masks that do not fit their frame, or an unreadable source.
        """
        from curator.labels.importers import find_masks
        from curator.store import repo

        found = list(find_masks(source))
        with self.workspace.db.session() as session:
            lookup = repo.frame_lookup(session, self.id)
            staged: list[tuple[int, list[tuple[int, dict[str, Any]]]]] = []
            unmatched: list[str] = []
            for item in found:
                frame = lookup.find(item.video if item.video is not None else video, item.frame_index)
                if frame is None:
                    unmatched.append(item.origin)
                    continue
                given: MaskInput = item.labels if item.labels is not None else (item.masks or [])
                staged.append((frame.id, frame_masks(given, frame.height, frame.width)))
            for frame_id, masks in staged:
                repo.store_human_masks(session, frame_id, masks)
            repo.complete_frame_tasks(session, self.id, [f for f, _ in staged], LOCAL_OWNER)
        return ImportReport(len(staged), sum(len(m) for _, m in staged), unmatched)

    # --- propagation, rounds, search, export ------------------------------------------------------

    def propagate(
        self,
        video: int | None = None,
        *,
        scope: str = "video",
        propagator: str | None = None,
        progress: StagedProgress | None = None,
    ) -> list[dict[str, Any]]:
        """Spread human masks to the other frames of a video (or of every video with human masks).

        Results are stored as ``propagated`` masks with a confidence; human masks are never touched.

        Args:
            video: A video id; ``None`` takes every video that has human masks.
            scope: ``video`` (every frame) or ``between`` (first to last keyframe only).
            propagator: Name (default the settings', ``auto``).

        Returns:
            One result per video: ``video_id``, ``keyframes``, ``frames``, ``masks``, ``propagator``.
        """
        from curator.labels.propagation import propagate_video
        from curator.store import repo

        with self.workspace.db.session() as session:
            videos = [video] if video is not None else repo.videos_with_human_masks(session, self.id)
            for vid in videos:
                row = repo.video_of_project(session, self.id, vid)
                if row is None:
                    raise repo.NotFoundError(f"no video {vid} in project {self.name!r}")
        model, name = self.home.propagator(propagator)
        out = []
        for vid in videos:
            result = propagate_video(self.workspace, int(vid), model, scope=scope, progress=progress)
            out.append({"video_id": int(vid), **result, "propagator": name})
        return out

    def round(
        self,
        budget: int = 10,
        strategy: str | None = None,
        *,
        progress: StagedProgress | None = None,
        preannotate: bool | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """One retrain-and-reselect round: propagate, train the proxy, score, queue the next ``budget``.

        Args:
            budget: Frames to queue next.
            strategy: Selector (default the settings').
            progress: Staged progress callback.
            preannotate: Pre-annotate the queued tasks afterwards (default the ``preannotate``
                setting); the summary then has ``preannotation``.
            **params: ``steps``, ``propagator``, ``seed``, ``selector_params``, ... (see
                :func:`curator.train.job.run_project_round`); ``None`` values mean the defaults.

        Raises:
            JobFailed: Without human masks (``no_labels``) or DINOv2 weights (``no_backbone``).
        """
        from curator.train.job import run_project_round

        values = {**params, "budget": budget, "strategy": strategy}
        result = run_project_round(
            self.workspace, self.id, {k: v for k, v in values.items() if v is not None}, progress=progress
        )
        wanted = self.home.settings.preannotate if preannotate is None else preannotate
        task_ids = sorted({int(p["task_id"]) for p in result.get("picks", []) if p.get("task_id") is not None})
        if wanted and task_ids:
            result["preannotation"] = self.preannotate(task_ids, propagator=params.get("propagator"))
        return result

    # --- label schema: categories and objects ---------------------------------------------------

    def categories(self) -> list[dict[str, Any]]:
        """The project's categories by id: ``id``, ``name``, ``color`` (``#rrggbb``) and ``objects``
        (the object ids that have it). Without any, exports use one category ``object``."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            objects = repo.object_categories(session, self.id)
            return [
                {"id": c.id, "name": c.name, "color": c.color,
                 "objects": sorted(o for o, cat in objects.items() if cat == c.id)}
                for c in repo.project_categories(session, self.id)
            ]

    def add_category(self, name: str, color: str) -> dict[str, Any]:
        """Add a category (``color`` as ``#rrggbb``); returns it as :meth:`categories` lists it.

        Raises:
            ValueError: For an empty or too long name or a bad colour.
            DuplicateNameError: If the project has a category of that name (a ``ValueError``).
        """
        from curator.store import repo

        with self.workspace.db.session() as session:
            row = repo.add_category(session, self.id, name, color)
            return {"id": row.id, "name": row.name, "color": row.color, "objects": []}

    def set_object_category(self, object_id: int, category_id: int | None) -> dict[str, Any]:
        """Give object ``object_id`` (1..255, the same object on every frame of a video) a category of
        this project; ``None`` removes it (the object then exports as ``object``).

        Returns:
            ``{"object_id", "category_id"}``.

        Raises:
            ValueError: For an object id outside 1..255.
            NotFoundError: For a category not of this project.
        """
        from curator.store import repo

        if not 1 <= int(object_id) <= 255:
            raise ValueError(f"object ids are 1..255, got {object_id}")
        with self.workspace.db.session() as session:
            if category_id is not None and repo.category_of_project(session, self.id, int(category_id)) is None:
                raise repo.NotFoundError(f"no category {category_id} in project {self.name!r}")
            repo.set_object_category(session, self.id, int(object_id), None if category_id is None else int(category_id))
        return {"object_id": int(object_id), "category_id": category_id}

    def objects(self) -> dict[int, int]:
        """Object id to category id, for the objects that have a category."""
        from curator.store import repo

        with self.workspace.db.session() as session:
            return repo.object_categories(session, self.id)

    def similar(self, frame_id: int, k: int = 10, *, backbone: str | None = None) -> list[tuple[int, float]]:
        """Frames most like ``frame_id`` by the project's FAISS index: ``(frame_id, cosine)``, best first."""
        from curator.index import similar_frames

        return similar_frames(self.workspace, self.id, frame_id, k, backbone=backbone)

    def export(
        self, format: str = "coco", *, include: str = "human", dest: str | Path = ".", images: bool | None = None
    ) -> Path:
        """Write the labelled frames as ``coco``, ``davis`` (zip), ``ytvis``, ``datumaro`` (zip, tracks,
        for CVAT) or ``labelstudio`` (tasks with brush masks, the queue included); returns the file.

        Args:
            format: A name of :data:`curator.export.EXPORTERS` (see :mod:`curator.export`).
            include: ``human`` masks only, or ``all`` (best source per frame).
            dest: A file, or a folder that gets ``<project>-<format>-<include>.<ext>``.
            images: With the images, as a zip in the tool's layout; ``None`` is the format's default
                (a zip with the images, but Label Studio's tasks JSON for ``labelstudio``); False gives
                ``coco``, ``ytvis`` and ``labelstudio`` as JSON alone.
        """
        from curator.export import write_export

        return write_export(self.workspace, self.id, format, include, Path(dest), images)

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The project's newest jobs: id, kind, state, progress, error."""
        from curator.jobs.store import project_jobs

        with self.workspace.db.session() as session:
            return [
                {"id": j.id, "kind": j.kind, "state": j.state, "stage": j.stage, "done": j.progress_done,
                 "total": j.progress_total, "error": j.error_code}
                for j in project_jobs(session, self.id, limit)
            ]

    # --- the project view: read models of the project pages ---------------------------------------

    def overview(self) -> dict[str, Any]:
        """Videos with their shots, picks (reason, utility, task state) and labelled frames; selections;
        queue counts by state and per annotator (:func:`curator.views.project_overview`)."""
        from curator.views import project_overview

        return project_overview(self.workspace, self.id)

    def video_timeline(self, video: int) -> dict[str, Any]:
        """One video frame by frame: best mask source, lowest object confidence, task, keyframes and
        picks (:func:`curator.views.video_timeline`).

        Raises:
            NotFoundError: For a video not of this project.
        """
        from curator.views import video_timeline

        return video_timeline(self.workspace, self.id, int(video))

    def embedding_map(self, backbone: str | None = None) -> dict[str, Any]:
        """A 2-D PCA projection of the frame embeddings (cached per state of the embeddings) with
        per-frame video, shot, labelled, picked and queued columns (:func:`curator.views.embedding_map`).

        Raises:
            LookupError: For an explicit ``backbone`` without embeddings in the project.
        """
        from curator.views import embedding_map

        return embedding_map(self.workspace, self.id, backbone)

    def round_history(self) -> dict[str, Any]:
        """Every round's picks and proxy metrics, why a round has none, and the metrics as series
        (:func:`curator.views.round_history`)."""
        from curator.views import round_history

        return round_history(self.workspace, self.id)



def frame_masks(masks: MaskInput, height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """Validate masks in any :data:`MaskInput` form against a frame; returns ``(object_id, rle)`` pairs.

    Raises:
        InvalidMaskError: If they do not fit the frame.
    """
    from curator.labels.masks import (
        InvalidMaskError,
        array_masks,
        check_masks,
        label_masks,
        png_bytes_masks,
    )

    if isinstance(masks, str | Path):
        try:
            return png_bytes_masks(Path(masks).read_bytes(), height, width)
        except OSError as exc:
            raise InvalidMaskError(f"cannot read {masks}: {exc}") from None
    if isinstance(masks, np.ndarray):
        if masks.dtype == bool or not np.issubdtype(masks.dtype, np.integer):
            raise InvalidMaskError("a label image must hold integer object ids (0 background)")
        if masks.min(initial=0) < 0 or masks.max(initial=0) > 255:
            raise InvalidMaskError("a label image's object ids must be 0..255")
        return label_masks(masks, height, width)
    if isinstance(masks, Mapping):
        return array_masks(masks, height, width)
    return check_masks(list(masks), height, width)
