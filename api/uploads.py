"""Streaming multipart uploads straight to disk, with a size limit, and a decode check of the result.

The body is parsed as it arrives (python-multipart's push parser); the ``file`` part is written in
chunks to a file whose name the server chooses, so neither the whole upload nor the client's file
name ever reaches memory or the filesystem. Going over the limit stops reading at once.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiError, insufficient_storage
from curator.store.storage import out_of_space

MAX_FIELD_BYTES = 64 * 1024  # other form fields are ignored, but never buffered past this
_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def display_name(client_name: str | None) -> str:
    """A harmless name to record for an upload: the last path component, odd characters removed."""
    name = PurePosixPath((client_name or "").replace("\\", "/")).name
    name = _SAFE.sub("_", name).strip(" .")[:200]
    return name or "upload"


class _Sink:
    """Callbacks of the multipart parser: route the ``file`` part to ``dest``, count and limit bytes."""

    def __init__(self, dest: Path, limit: int) -> None:
        self.dest = dest
        self.limit = limit
        self.size = 0
        self.filename: str | None = None
        self.found = False
        self._handle: BinaryIO | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field_bytes = 0

    def on_part_begin(self) -> None:
        self._headers = {}
        self._field_bytes = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("latin-1")
        if name == "file" and not self.found:
            self.found = True
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None
            self._handle = self.dest.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is not None:
            self.size += end - start
            if self.size > self.limit:
                raise ApiError(413, "upload_too_large", f"the upload is larger than the limit of {self.limit} bytes")
            self._handle.write(data[start:end])
        else:
            self._field_bytes += end - start
            if self._field_bytes > MAX_FIELD_BYTES:
                raise ApiError(400, "field_too_large", "form fields other than 'file' must be small")

    def on_part_end(self) -> None:
        self.close()

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }


def _discard(sink: _Sink, dest: Path) -> None:
    """Close and remove a partial upload (closing may fail again on a full disk)."""
    with contextlib.suppress(OSError):
        sink.close()
    dest.unlink(missing_ok=True)


async def receive_upload(request: Request, dest: Path, limit: int) -> tuple[str, int]:
    """Stream the ``file`` part of a multipart request body into ``dest``.

    Returns:
        ``(display name, size in bytes)``.

    Raises:
        ApiError: 415 for a body that is not multipart, 413 over ``limit``, 400 for a malformed
            body or an empty file, 422 with no ``file`` part, 507 when the disk is full.
            ``dest`` is removed on any error.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(415, "unsupported_media_type", "send the video as multipart/form-data with a 'file' part")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + MAX_FIELD_BYTES:
        raise ApiError(413, "upload_too_large", f"the upload is larger than the limit of {limit} bytes")
    sink = _Sink(dest, limit)
    parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ApiError:
        _discard(sink, dest)
        raise
    except OSError as exc:  # writing the file failed: not the client's fault
        _discard(sink, dest)
        if out_of_space(exc):
            raise insufficient_storage() from None
        raise
    except Exception as exc:  # the parser raises its own errors for malformed bodies
        _discard(sink, dest)
        raise ApiError(400, "malformed_upload", f"the multipart body could not be parsed ({exc})") from None
    except BaseException:  # the client went away (cancelled): no partial file stays behind
        _discard(sink, dest)
        raise
    try:
        sink.close()  # flushing the last buffered bytes may be what finds the disk full
    except OSError as exc:
        _discard(sink, dest)
        if out_of_space(exc):
            raise insufficient_storage() from None
        raise
    if not sink.found:
        dest.unlink(missing_ok=True)
        raise ApiError(422, "missing_file", "the multipart body has no 'file' part")
    if sink.size == 0:
        dest.unlink(missing_ok=True)
        raise ApiError(400, "empty_upload", "the uploaded file is empty")
    return display_name(sink.filename), sink.size


def _check_tail(path: Path) -> None:
    """Demux (without decoding) from the last tenth of the stream: a truncated file ends early."""
    import av

    from curator.ingest import VideoDecodeError

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if not stream.duration:
                return  # no declared length to compare with; the ingest job checks frame counts
            start = stream.start_time or 0
            container.seek(start + int(stream.duration * 0.9), stream=stream, backward=True)
            last = None
            for packet in container.demux(stream):
                if packet.pts is not None:
                    last = packet.pts if last is None else max(last, packet.pts)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoDecodeError(f"the end of the stream cannot be read ({exc})") from None
    if last is None or last - start < stream.duration * 0.9:
        raise VideoDecodeError("the file is truncated: the stream ends before its declared duration")


def check_video(path: Path, name: str) -> None:
    """Make sure ``path`` is a video: open the container, decode its first frame, and read the
    packets of its last tenth (cheap: no decoding), which catches truncated files.

    Corruption inside the stream that only decoding every frame reveals is caught by the ingest job,
    which then fails with ``video_decode_error`` and stores nothing.

    Raises:
        ApiError: 415 ``not_a_video`` otherwise (the file name plays no part in this).
    """
    from curator.ingest import VideoDecodeError, iter_frames, probe

    try:
        info = probe(path)
        if info.width <= 0 or info.height <= 0:
            raise VideoDecodeError("the video stream has no frame size")
        for _ in iter_frames(path):
            break
        else:
            raise VideoDecodeError("no frame could be decoded")
        _check_tail(path)
    except VideoDecodeError as exc:
        reason = str(exc).replace(str(path), name)
        raise ApiError(415, "not_a_video", f"{name} is not a decodable video: {reason}") from None
