"""Settings: defaults in code, an optional YAML file, then ``CURATOR_*`` environment overrides.

No settings object is built at import time; callers create one with :func:`load_settings` and pass
it down (the CLI and ``api.create_app`` do this).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration of curator.

    Every field can be overridden by an environment variable ``CURATOR_<FIELD>`` (for example
    ``CURATOR_HOME=/data/curator`` or ``CURATOR_SAMPLE_FPS=5``).

    Attributes:
        home: Root folder for the SQLite database and blob files (frames, masks, indexes).
        database_url: Any SQLAlchemy URL; empty means SQLite at ``<home>/curator.db`` in WAL mode.
            PostgreSQL is ``postgresql+psycopg://USER@HOST:PORT/DB`` (several servers may share it).
        backbone: Embedding backbone name (see ``curator.embed.list_backbones()``) or ``auto``.
        backbone_checkpoint: Local weights file for the backbone; empty means the model hub.
        device: ``auto``, ``cpu`` or ``cuda``.
        embed_batch_size: Frames per inference batch.
        sample_fps: Target sampling rate of candidate frames; 0 keeps every ``sample_stride``-th frame.
        sample_stride: Keep every n-th decoded frame (applied before ``sample_fps``).
        max_side: Stored frames are resized so that their longer side is at most this; 0 keeps size.
        jpeg_quality: Quality of stored JPEG frames.
        shot_threshold: PySceneDetect ContentDetector threshold (lower finds more cuts).
        shot_min_len: Minimum shot length in decoded frames.
        ivf_threshold: Vector count from which the FAISS index switches from exact to IVF.
        seed: Default random seed for selectors.
        api_host: Address ``curator serve`` binds to.
        api_port: Port ``curator serve`` listens on.
        upload_max_bytes: Largest accepted video upload; bigger uploads get 413 and store nothing.
        upload_chunk_bytes: Uploads are streamed to disk in chunks of this many bytes.
        json_max_bytes: Largest request body (JSON) accepted from a caller with a key; bigger bodies
            get 413 before they are read. Callers without a key may send 64 KiB; video uploads have
            ``upload_max_bytes``.
        path_roots: Server-side folders under which video paths may be registered (none = no paths).
        lease_seconds: How long a claimed labelling task stays leased to its annotator.
        claim_max: Most tasks one claim may lease.
        job_workers: Threads of the local job runner.
        max_queued_jobs: Most jobs one project may have queued; more get 429 ``too_many_jobs``
            (an identical queued job is returned instead of queuing another and is not refused).
        runner_heartbeat_seconds: How often the job runner refreshes the heartbeat of its running
            jobs and of its server lease.
        runner_timeout_seconds: A job runner (and the server holding the database) whose heartbeat
            is older than this is gone: its running jobs are marked ``interrupted`` at the next start.
        job_poll_seconds: How often a job runner looks in the database for queued jobs another
            process queued (an API replica, ``curator worker``) and for jobs whose runner is gone;
            0 turns the polling off.
        job_max_attempts: Runs a job gets: a job whose runner died (a kill -9, a lost machine) is
            queued again for any runner while it has run fewer times, else marked ``interrupted``.
        serve_jobs: Whether ``curator serve`` runs jobs itself; off, it only queues them for
            ``curator worker`` processes.
        selector: Selector used when none is named (``curator select``, ``POST /selections``, rounds).
        selector_package: Dotted name of the package that registers the selectors.
        propagator: Propagator used when none is named; ``auto`` is ``flow+feature`` when the DINOv2
            weights resolve and ``flow`` otherwise (see ``curator.annotate.list_propagators()``).
        segmenter: Click-to-segment backend used when none is named; ``auto`` is ``sam2`` when a SAM 2
            checkpoint is configured (``CURATOR_SAM2_CHECKPOINT``), else ``feature`` when the DINOv2
            weights resolve, else ``grabcut`` (see ``curator.segment.list_segmenters()``).
        preannotate: Pre-annotate queued tasks: the service queues a ``preannotate`` job after each
            selection and round that queues tasks, and ``Project.select``/``Project.round`` run it
            in-process (propagated masks from the video's human keyframes, or a round's masks).
        derived_cache_gb: Most gigabytes of derived per-frame data (optical flow, patch features) the
            round job keeps under ``<blobs>/derived-cache`` for later rounds; the least recently used
            entries are removed after each round beyond it.
        segment_warm: Prepare click-to-segment ahead of the first click: the server builds the
            segmenter when it starts, and the ``preannotate`` job runs its encoder on the queued
            frames and keeps the result under ``blobs/segment-cache/``.
        auto_migrate: Upgrade the database's schema when it is opened (``curator db upgrade`` does it
            by hand). Turn off where replicas of different versions share one PostgreSQL database.
        thumb_side: Longer side of frame thumbnails served by the API.
        image_cache_seconds: ``Cache-Control: max-age`` of frame images (their content never changes).
        session_hours: How long a browser stays signed in to the labelling page after ``POST /session``.
        key_cache_seconds: How long the server trusts a bearer key it has looked up before looking it
            up again. A key revoked by another process (``curator keys revoke``) keeps working in a
            running server for at most this long; 0 looks the key up on every request.
    """

    model_config = SettingsConfigDict(env_prefix="CURATOR_", extra="ignore")

    home: Path = Field(default=Path("./curator-data"))
    database_url: str = ""
    backbone: str = "auto"
    backbone_checkpoint: str = ""
    device: str = "auto"
    embed_batch_size: int = 16
    sample_fps: float = 0.0
    sample_stride: int = 1
    max_side: int = 1280
    jpeg_quality: int = 90
    shot_threshold: float = 27.0
    shot_min_len: int = 15
    ivf_threshold: int = 200_000
    seed: int = 0
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    upload_max_bytes: int = 2 * 1024**3
    upload_chunk_bytes: int = 1024**2
    json_max_bytes: int = 32 * 1024**2
    path_roots: list[Path] = Field(default_factory=list)
    lease_seconds: float = 900.0
    claim_max: int = 100
    job_workers: int = 1
    max_queued_jobs: int = 20
    runner_heartbeat_seconds: float = 5.0
    runner_timeout_seconds: float = 30.0
    job_poll_seconds: float = 2.0
    job_max_attempts: int = 1
    serve_jobs: bool = True
    selector: str = "curator"
    selector_package: str = "curator_selectors"
    propagator: str = "auto"
    segmenter: str = "auto"
    preannotate: bool = True
    segment_warm: bool = True
    derived_cache_gb: float = 20.0
    auto_migrate: bool = True
    thumb_side: int = 256
    image_cache_seconds: int = 86400
    session_hours: float = 12.0
    key_cache_seconds: float = 5.0

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in use (SQLite under ``home`` unless ``database_url`` is set)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'curator.db').resolve()}"

    @property
    def blob_root(self) -> Path:
        """Folder holding frame JPEGs, masks and index files."""
        return self.home / "blobs"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional YAML file, the environment and explicit overrides.

    Precedence, lowest first: field defaults, YAML file (``config_file`` or ``$CURATOR_CONFIG``),
    ``CURATOR_*`` environment variables, keyword ``overrides`` whose value is not ``None``.

    Args:
        config_file: Path to a YAML mapping of setting names to values.
        **overrides: Explicit values, typically from CLI options.

    Returns:
        The merged settings.

    Raises:
        ValueError: If the YAML file is not a mapping or names unknown settings.
    """
    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get("CURATOR_CONFIG")
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping, got {type(loaded).__name__}")
        unknown = set(loaded) - set(Settings.model_fields)
        if unknown:
            raise ValueError(f"config file {path} has unknown settings {sorted(unknown)}")
        file_values = loaded
    env_settings = Settings()
    explicit_env = {name for name in Settings.model_fields if f"CURATOR_{name.upper()}" in os.environ}
    merged: dict[str, Any] = {**file_values}
    for name in explicit_env:
        merged[name] = getattr(env_settings, name)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate({**env_settings.model_dump(), **merged})
