"""Streaming video decoding with PyAV: one frame at a time, never the whole video in memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av


class VideoDecodeError(ValueError):
    """The file is not a video PyAV can decode, or it is corrupt or truncated."""


#: FFmpeg demuxers that read single still images (besides every ``*_pipe`` one: png_pipe, jpeg_pipe, ...).
IMAGE_DEMUXERS = frozenset({"image2", "image2pipe"})
#: Codecs of still images; a stream of one of these is a video only with more than one frame
#: (an animated GIF or APNG, or motion JPEG).
IMAGE_CODECS = frozenset({
    "png", "apng", "gif", "mjpeg", "jpeg2000", "jpegls", "bmp", "webp", "tiff", "qoi", "jpegxl", "pam", "pbm",
    "pgm", "ppm", "pcx", "sgi", "targa", "dpx", "exr", "hdr", "psd", "xbm", "xwd", "sunrast", "photocd",
})  # fmt: skip


def _image_format(container: Any) -> str | None:
    """The demuxer name when ``container`` was opened by a still-image demuxer, else ``None``."""
    names = str(container.format.name).split(",")
    for name in names:
        if name in IMAGE_DEMUXERS or name.endswith("_pipe"):
            return name
    return None


def _has_second_frame(container: Any, stream: Any) -> bool:
    """Whether ``stream`` has at least two packets (demuxed, not decoded; consumes the container)."""
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += 1 if packet.size else 0
            if packets >= 2:
                return True
    except av.FFmpegError:
        pass
    return False


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    Attributes:
        codec: Codec name (for example ``h264``).
        fps: Average frame rate.
        width: Frame width in pixels.
        height: Frame height in pixels.
        duration: Duration in seconds (0 when the container does not say).
        frame_count: Frame count from the container, 0 when unknown.
    """

    codec: str
    fps: float
    width: int
    height: int
    duration: float
    frame_count: int


@dataclass
class DecodedFrame:
    """A decoded frame, still in PyAV's form so callers convert only what they keep.

    Attributes:
        index: Position among all decoded frames (presentation order), from 0.
        timestamp: Presentation time in seconds from the first frame.
        frame: The ``av.VideoFrame``.
    """

    index: int
    timestamp: float
    frame: Any


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _open(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: the file is empty")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoDecodeError(f"{path}: not a readable video container ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{path}: the container has no video stream")
    image = _image_format(container)
    if image is not None:
        container.close()
        raise VideoDecodeError(f"{path}: this is an image ({image}), not a video")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Read stream metadata without decoding.

    Raises:
        VideoDecodeError: If the file is missing, empty, not a container, has no video stream, or is a
            still image (an image format, or a single frame of an image codec such as a one-frame GIF).
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec in IMAGE_CODECS and int(stream.frames or 0) < 2 and not _has_second_frame(container, stream):
            raise VideoDecodeError(f"{path}: this is an image (one {codec} frame), not a video")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(
            codec=codec,
            fps=float(rate),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            duration=duration,
            frame_count=int(stream.frames or 0),
        )
    finally:
        container.close()


def iter_frames(path: str | Path) -> Iterator[DecodedFrame]:
    """Decode the first video stream frame by frame.

    Timestamps come from presentation timestamps relative to the first frame; frames without one get
    the previous timestamp plus one frame period.

    Raises:
        VideoDecodeError: If the container cannot be opened or decoding fails part way.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg; releases the GIL
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        time_base = stream.time_base
        first_pts: int | None = None
        last_ts = -1.0 / rate
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and time_base is not None:
                    if first_pts is None:
                        first_pts = frame.pts
                    timestamp = float((frame.pts - first_pts) * time_base)
                else:
                    timestamp = last_ts + 1.0 / rate
                last_ts = timestamp
                yield DecodedFrame(index=index, timestamp=timestamp, frame=frame)
                index += 1
        except av.FFmpegError as exc:
            raise VideoDecodeError(f"{path}: decoding failed after {index} frames ({exc})") from exc
    finally:
        container.close()


def iter_frames_from(
    path: str | Path, first: int, start_pts: int, stop_pts: int | None, first_pts: int
) -> Iterator[DecodedFrame]:
    """Decode one part of the first video stream: from the keyframe at ``start_pts`` (the file's
    frame ``first``) up to and including the frame at ``stop_pts`` (the next part's first frame,
    ``None`` for the end of the file).

    Indices count on from ``first``; timestamps are relative to ``first_pts`` (the file's first
    frame), so they equal :func:`iter_frames`' for the same frames. Frames before ``start_pts`` that
    the decoder returns after the seek (leading pictures of an open GOP) belong to the part before
    and are skipped.

    Raises:
        VideoDecodeError: If the container cannot be opened, a frame has no timestamp, or decoding
            fails part way.
    """
    container = _open(path)
    index = first
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        try:
            container.seek(start_pts, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None or time_base is None:
                    raise VideoDecodeError(f"{path}: a frame after frame {index} has no timestamp")
                if frame.pts < start_pts:
                    continue
                yield DecodedFrame(index=index, timestamp=float((frame.pts - first_pts) * time_base), frame=frame)
                if stop_pts is not None and frame.pts >= stop_pts:
                    return
                index += 1
        except av.FFmpegError as exc:
            raise VideoDecodeError(f"{path}: decoding failed after frame {index} ({exc})") from exc
    finally:
        container.close()
