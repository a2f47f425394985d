"""ffmpeg (branding) and PyAV (probing) for the branded_videos asset and its integrity check.

The binary is `ffmpeg_path` when configured, else the FFMPEG_PATH setting, else the one
imageio-ffmpeg ships (a static build with libx264, drawtext and fontconfig; it has no ffprobe,
so files are probed with PyAV instead). The command itself is built, purely, by
resources/ffmpeg_command.py.

`brand` writes to a temp file beside the output and renames it into place, so a reader never
sees half a file; on failure the temp file is removed and BrandingError carries the last lines
of ffmpeg's stderr. `probe` never raises for a bad file: it decodes every packet and returns
`ProbeResult(decodable=False, error=...)` for a corrupt, truncated or unreadable one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import struct
import subprocess
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import dagster as dg
import imageio_ffmpeg
from pydantic import Field

from resources.ffmpeg_command import (
    DEFAULT_SPEC,
    VIDEO_DEMUXERS,
    BrandingError,
    EncodeSpec,
    Overlay,
    ProbeResult,
    build_brand_command,
    find_font_file,
    local_input,
    resolve_image,
)
from waifugen_assets.core.config import get_settings

STDERR_TAIL_LINES = 8
_CHUNK = 1 << 20


# --- MP4 boxes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    type: str
    offset: int
    size: int  # declared size (to the end of the file for size 0)


# Boxes an MP4/MOV file can start with.
_FIRST_BOXES = ("ftyp", "styp", "moov", "free", "skip", "wide", "mdat")


def top_level_boxes(f: BinaryIO, file_size: int,
                    limit: int = 64) -> tuple[list[Box] | None, str | None]:
    """The top-level ISO-BMFF boxes of an MP4/MOV file in order (None: not one), and an error.

    The error is set when a box declares more bytes than the file holds (a cut-short download
    or copy); the boxes before it are still returned.
    """
    boxes, error = _scan_boxes(f, file_size, limit)
    if not boxes or boxes[0].type not in _FIRST_BOXES:
        return None, None
    return boxes, error


def _scan_boxes(f: BinaryIO, file_size: int, limit: int) -> tuple[list[Box], str | None]:
    boxes: list[Box] = []
    offset = 0
    while offset < file_size and len(boxes) < limit:
        f.seek(offset)
        header = f.read(8)
        if len(header) < 8:
            return boxes, f"truncated: box header cut short at byte {offset}"
        size, raw_type = struct.unpack(">I4s", header)
        if not all(32 <= b < 127 for b in raw_type):
            break  # not MP4, or trailing garbage after the last box
        box_type = raw_type.decode("ascii")
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                return boxes, f"truncated: box '{box_type}' header cut short at byte {offset}"
            size = struct.unpack(">Q", large)[0]
        elif size == 0:
            size = file_size - offset
        if size < 8:
            break
        if offset + size > file_size:
            return [*boxes, Box(box_type, offset, size)], (
                f"truncated: box '{box_type}' at byte {offset} declares {size} bytes but the "
                f"file ends {offset + size - file_size} bytes early"
            )
        boxes.append(Box(box_type, offset, size))
        offset += size
    return boxes, None


def moov_before_mdat(boxes: list[Box] | None) -> bool | None:
    if not boxes:
        return None
    types = [b.type for b in boxes]
    if "moov" not in types or "mdat" not in types:
        return None if "moov" not in types and "mdat" not in types else "mdat" not in types
    return types.index("moov") < types.index("mdat")


# --- probing ---------------------------------------------------------------------------------


def _sha256_and_boxes(path: Path, size: int) -> tuple[str, list[Box] | None, str | None]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        boxes, box_error = top_level_boxes(f, size)
        f.seek(0)
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), boxes, box_error


def _open(path: Path) -> av.container.InputContainer:
    # The same input restrictions as the branding pass: local files, media demuxers only.
    return av.open(str(path), mode="r", options={
        "protocol_whitelist": "file", "format_whitelist": VIDEO_DEMUXERS,
    })


def _rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def _sar(stream: Any) -> str | None:
    sar = stream.sample_aspect_ratio
    if sar is None:
        return None
    sar = Fraction(sar)
    return f"{sar.numerator}:{sar.denominator}"


def probe_file(path: str | os.PathLike[str], *, full_decode: bool = True) -> ProbeResult:
    """Describe `path`; with `full_decode` (default) every packet is decoded.

    Never raises for a bad file: problems come back as decodable=False with `error`.
    """
    fields: dict[str, Any] = {"path": os.fspath(path)}
    try:
        p = local_input(path, "file")
        size = p.stat().st_size
    except (OSError, BrandingError) as exc:
        return ProbeResult(**fields, decodable=False, error=f"cannot read file: {exc}")
    fields["path"] = str(p)
    fields["bytes"] = size
    if size == 0:
        return ProbeResult(**fields, decodable=False, error="empty file")
    try:
        sha, boxes, box_error = _sha256_and_boxes(p, size)
    except OSError as exc:
        return ProbeResult(**fields, decodable=False, error=f"cannot read file: {exc}")
    fields["sha256"] = sha
    if boxes:
        fields["top_level_boxes"] = tuple(b.type for b in boxes)
        fields["has_moov_at_front"] = moov_before_mdat(boxes)

    error: str | None = None
    try:
        container = _open(p)
    except (av.FFmpegError, OSError, ValueError) as exc:
        return ProbeResult(**fields, decodable=False, error=(
            f"cannot open as a video ({VIDEO_DEMUXERS}): {type(exc).__name__}: {exc}"))
    try:
        with container:
            fields["format_name"] = container.format.name
            if container.duration is not None:
                fields["duration_s"] = container.duration / av.time_base
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is not None:
                ctx = video.codec_context
                fields.update(
                    video_codec=ctx.name, video_profile=ctx.profile, width=ctx.width or None,
                    height=ctx.height or None, pix_fmt=ctx.pix_fmt, fps=_rate(video),
                    sample_aspect_ratio=_sar(video),
                )
            if audio is not None:
                ctx = audio.codec_context
                fields.update(audio_codec=ctx.name, audio_sample_rate=ctx.sample_rate or None,
                              audio_channels=ctx.channels or None)
            if box_error:
                error = box_error
            elif full_decode:
                error = _decode_all(container, video, audio, fields)
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
        error = f"decoding failed: {type(exc).__name__}: {exc}"
    return ProbeResult(**fields, decodable=error is None, error=error)


def _decode_all(container: Any, video: Any, audio: Any, fields: dict[str, Any]) -> str | None:
    """Decode every packet of the first video and audio streams; an error message or None."""
    streams = [s for s in (video, audio) if s is not None]
    if not streams:
        return "no video or audio stream"
    for s in streams:
        s.thread_type = "AUTO"
    packets = {s.index: 0 for s in streams}
    frames = {s.index: 0 for s in streams}
    for packet in container.demux(*streams):
        if packet.size:
            packets[packet.stream.index] += 1
        for _frame in packet.decode():
            frames[packet.stream.index] += 1
    fields["fully_decoded"] = True
    if video is not None:
        fields["video_frames"] = frames[video.index]
    if audio is not None:
        fields["audio_frames"] = frames[audio.index]
    for s in streams:
        listed = s.frames  # from the container's index (0 when unknown)
        if listed and packets[s.index] < listed:
            return (f"truncated: {s.type} stream has {packets[s.index]} of the {listed} "
                    "packets its index lists")
    if video is not None and frames[video.index] == 0:
        return "no video frame could be decoded"
    return None


# --- the resource ----------------------------------------------------------------------------


@functools.cache
def _has_fontconfig(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-hide_banner", "-buildconf"], capture_output=True,
                             timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return b"--enable-fontconfig" in out.stdout + out.stderr


def _fc_match() -> str | None:
    exe = shutil.which("fc-match")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--format=%{file}", "sans:bold"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = out.stdout.strip()
    return found if found and os.path.isfile(found) else None


def stderr_tail(stderr: bytes | str, lines: int = STDERR_TAIL_LINES) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])[-2000:]


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class FfmpegResource(dg.ConfigurableResource):
    """Runs the branding pass and probes files."""

    ffmpeg_path: str | None = Field(
        default=None, description="ffmpeg binary; default FFMPEG_PATH, else imageio-ffmpeg's.")
    font_file: str | None = Field(
        default=None, description="Font for text watermarks; default: DejaVu Sans Bold or "
        "another sans font found on the machine, else fontconfig's Sans.")
    watermark_dir: str | None = Field(
        default=None, description="Where relative watermark images are; default: the "
        "roster file's directory.")
    timeout_seconds: float = Field(default=900.0, description="Limit for one ffmpeg run.")

    def executable(self) -> str:
        configured = self.ffmpeg_path or get_settings().get("FFMPEG_PATH")
        return configured or imageio_ffmpeg.get_ffmpeg_exe()

    def font(self, exe: str) -> str | None:
        """Font file for drawtext; None means fontconfig's default (checked to be usable)."""
        if self.font_file:
            if not os.path.isfile(self.font_file):
                raise BrandingError(f"font file {self.font_file} does not exist")
            return self.font_file
        # A known sans font, else fontconfig's pick, else any TrueType font installed.
        font = find_font_file(font_dirs=()) or _fc_match() or find_font_file(candidates=())
        if font:
            return font
        if _has_fontconfig(exe):
            return None
        raise BrandingError(
            "no font for the text watermark: no font file was found (install fonts-dejavu or "
            "set font_file) and this ffmpeg has no fontconfig"
        )

    def probe(self, path: str | os.PathLike[str], *, full_decode: bool = True) -> ProbeResult:
        return probe_file(path, full_decode=full_decode)

    def brand(
        self,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        watermark: Overlay | None = None,
        spec: EncodeSpec = DEFAULT_SPEC,
        *,
        verify: bool = True,
    ) -> ProbeResult:
        """Brand `input_path` into `output_path` (replaced atomically); the output's probe.

        `verify` decodes the whole output (a header-only probe otherwise). Raises
        BrandingError (UnsafeInputError for URLs) with a clear reason; no output file is
        left behind on failure.
        """
        src = local_input(input_path, "input")
        dst = local_input(output_path, "output")
        if not src.is_file():
            raise BrandingError(f"input {src} does not exist or is not a file")
        source = probe_file(src, full_decode=False)
        if not source.decodable:
            raise BrandingError(f"input {src.name} is not a readable video: {source.error}")
        if not source.has_video:
            raise BrandingError(f"input {src.name} has no video stream")

        exe = self.executable()
        font = self.font(exe) if watermark is not None and watermark.text else None
        base_dir = self.watermark_dir or get_settings().roster_path.parent
        if watermark is not None and watermark.image:
            logo = resolve_image(watermark.image, base_dir)
            if not logo.is_file():
                raise BrandingError(f"watermark image {logo} does not exist")

        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.stem}.{uuid.uuid4().hex[:12]}.partial.mp4")
        command = build_brand_command(
            src, tmp, watermark, spec, exe, has_audio=source.has_audio,
            source_fps=source.fps, font_file=font, base_dir=base_dir,
        )
        try:
            try:
                done = subprocess.run(command, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      timeout=self.timeout_seconds, check=False)
            except subprocess.TimeoutExpired as exc:
                raise BrandingError(
                    f"ffmpeg did not finish within {self.timeout_seconds:g} s",
                    stderr_tail=stderr_tail(exc.stderr or b""),
                ) from None
            except OSError as exc:
                raise BrandingError(f"cannot run ffmpeg {exe}: {exc}") from None
            if done.returncode != 0:
                tail = stderr_tail(done.stderr)
                raise BrandingError(
                    f"ffmpeg failed (exit {done.returncode}) on {src.name}: "
                    f"{tail or 'no error output'}",
                    returncode=done.returncode, stderr_tail=tail,
                )
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise BrandingError(f"ffmpeg wrote no output for {src.name}")
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        except BaseException:
            _remove(tmp)
            raise
        return probe_file(dst, full_decode=verify)
