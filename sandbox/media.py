"""Real media files for the sandbox's generation APIs (A2E, RunPod), and serving them.

Videos are genuine MP4s made by the ffmpeg binary that imageio-ffmpeg ships: H.264 (yuv420p)
+ AAC, 9:16, small and short (360x640, 15 fps, 3-4 s, ~30 KB) so tests stay fast. The picture
depends only on the anchor: a background colour, a row of eight squares spelling bits of the
anchor's hash (a visual "name tag", no font needed) and a square moving across, over a sine
tone whose pitch is the anchor's too. So different characters get visibly different videos,
and the same one always the same bytes.

Each distinct spec is rendered once and cached under `<state_dir>/media/` (atomic rename;
concurrent requests for one spec render it once), so a test suite pays ffmpeg once per spec.

`file_response` serves bytes like a CDN would: `Accept-Ranges`, single `Range` requests (206 /
416), HEAD, a strong ETag; `truncate=True` sends the full Content-Length then half the body and
closes the connection (a truncated download). `corrupt` makes bytes that are not a valid MP4.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.connection import cut_connection

WIDTH, HEIGHT, FPS = 360, 640, 15
MIN_SECONDS, MAX_SECONDS = 3.0, 4.0
MP4 = "video/mp4"
MP3 = "audio/mpeg"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def anchor_colour(anchor: str) -> str:
    """A mid-bright background colour, 0xRRGGBB, from the anchor id."""
    d = _digest(f"colour:{anchor}")
    return "0x" + "".join(f"{40 + b % 160:02x}" for b in d[:3])


def anchor_tone(anchor: str) -> int:
    """A sine frequency (Hz) from the anchor id."""
    return 220 + int.from_bytes(_digest(f"tone:{anchor}")[:2], "big") % 660


def clamp_seconds(seconds: float) -> float:
    """The rendered length: the speech length clamped to 3-4 s, in half seconds."""
    return round(min(max(seconds, MIN_SECONDS), MAX_SECONDS) * 2) / 2


@dataclass(frozen=True)
class VideoSpec:
    anchor: str
    seconds: float

    @property
    def key(self) -> str:
        raw = f"v1|{self.anchor}|{self.seconds:.1f}|{WIDTH}x{HEIGHT}@{FPS}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def ffmpeg_args(self, out: Path) -> list[str]:
        bits = _digest(f"tag:{self.anchor}")[0]
        boxes = [f"drawbox=x={24 + i * 40}:y=40:w=32:h=32:color=white@0.9:t=fill"
                 for i in range(8) if bits >> i & 1]
        boxes.append("drawbox=x=24:y=40:w=312:h=32:color=black@0.6:t=2")
        moving = (f"drawbox=x='mod(t*{WIDTH // 2},{WIDTH - 80})':y={HEIGHT // 2 - 40}:"
                  "w=80:h=80:color=white@0.8:t=fill")
        seconds = f"{self.seconds:.2f}"
        return [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i",
            f"color=c={anchor_colour(self.anchor)}:s={WIDTH}x{HEIGHT}:r={FPS}:d={seconds}",
            "-f", "lavfi", "-i",
            f"sine=frequency={anchor_tone(self.anchor)}:sample_rate=44100:duration={seconds}",
            "-vf", ",".join([*boxes, moving]),
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", "-pix_fmt", "yuv420p",
            "-g", str(FPS), "-c:a", "aac", "-b:a", "48k", "-ac", "1",
            "-movflags", "+faststart", "-shortest", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-f", "mp4", str(out),
        ]


@dataclass(frozen=True)
class AudioSpec:
    voice: str
    seconds: float

    @property
    def key(self) -> str:
        raw = f"a1|{self.voice}|{self.seconds:.1f}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def ffmpeg_args(self, out: Path) -> list[str]:
        return [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i",
            f"sine=frequency={anchor_tone(self.voice)}:sample_rate=22050:"
            f"duration={self.seconds:.2f}",
            "-c:a", "libmp3lame", "-b:a", "32k", "-ac", "1", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-f", "mp3", str(out),
        ]


class MediaCache:
    """Rendered files under `root`, made once per spec (thread-safe, atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def path(self, spec: VideoSpec | AudioSpec) -> Path:
        """The file for `spec`, rendering it first if needed (blocking: use a thread)."""
        suffix = ".mp4" if isinstance(spec, VideoSpec) else ".mp3"
        target = self.root / f"{spec.key}{suffix}"
        if target.exists():
            return target
        with self._lock(spec.key):
            if target.exists():
                return target
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".render-", suffix=suffix)
            tmp = Path(tmp_name)
            try:
                os.close(fd)
                result = subprocess.run(spec.ffmpeg_args(tmp), capture_output=True,
                                        timeout=60, check=False)
                if result.returncode != 0 or tmp.stat().st_size == 0:
                    raise RuntimeError(f"ffmpeg failed for {spec}: "
                                       f"{result.stderr.decode(errors='replace')[-500:]}")
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
        return target

    def read(self, spec: VideoSpec | AudioSpec) -> bytes:
        return self.path(spec).read_bytes()


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """Same length, a plausible `ftyp` start, then noise: no demuxer will accept it."""
    head = data[:16]
    return head + bytes(rng.getrandbits(8) for _ in range(len(data) - len(head)))


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive), None for the whole file, or "unsatisfiable"."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # multiple ranges or another unit: RFC 9110 lets us send it all
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


class _TruncatedResponse(Response):
    """Headers promise `declared` bytes; half of `body` is sent, then the connection closes."""

    def __init__(self, body: bytes, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(content=b"", status_code=status_code, headers=headers)
        self.full = body
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.raw_headers.append((b"content-length", str(len(body)).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        if scope["method"] != "HEAD":
            await send({"type": "http.response.body", "body": self.full[: len(self.full) // 2],
                        "more_body": True})
        await cut_connection(scope, receive, flush=True)


def file_response(request: Request, data: bytes, media_type: str, *,
                  truncate: bool = False) -> Response:
    """Serve `data` with Range support (and optionally cut short); see the module doc."""
    size = len(data)
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "public, max-age=3600"}
    wanted = _parse_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        wanted = None  # the client's partial copy is of another version: send it all
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, body = 200, data
    if isinstance(wanted, tuple):
        start, end = wanted
        status, body = 206, data[start:end + 1]
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Type"] = media_type
    if truncate:
        return _TruncatedResponse(body, status, headers)
    response = Response(content=b"" if request.method == "HEAD" else body,
                        status_code=status, headers=headers)
    response.headers["Content-Length"] = str(len(body))
    return response
