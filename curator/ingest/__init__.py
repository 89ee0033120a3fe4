"""Ingest: streaming decode (PyAV), frame sampling, shot detection (PySceneDetect), storage."""

from curator.ingest.decode import VideoDecodeError, VideoInfo, iter_frames, probe
from curator.ingest.pipeline import IngestResult, ingest_video
from curator.ingest.sample import FrameSampler

__all__ = [
    "FrameSampler",
    "IngestResult",
    "VideoDecodeError",
    "VideoInfo",
    "ingest_video",
    "iter_frames",
    "probe",
]
