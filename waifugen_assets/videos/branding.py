"""Branding rules: what a branded reel must be to go to every platform (the integrity check
that gates publishing). The ffmpeg pass itself (encode spec, command, probing) is
resources/ffmpeg_command.py, run by resources.ffmpeg.FfmpegResource.

Platform limits (../shared/reference/PROTOCOLS.md; conservative readings):

- Instagram Reels: H.264 closed GOP 4:2:0, AAC <= 48 kHz, 23-60 fps, moov in front, 3 s to
  15 min, 300 MB (the English spec; 1 GB in translations - we take the lower figure).
- YouTube Shorts: vertical or square, at most 3 min; files up to 256 GB.
- TikTok: no file size in PROTOCOLS.md (chunk rules only); we use 287.6 MB, the long-standing
  in-app upload limit and the lowest figure in circulation.
So the branded file must be 3-180 s and at most 287.6 MB to go everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from resources.ffmpeg_command import MIN_FPS, ProbeResult

# --- platform limits -------------------------------------------------------------------------

MB = 1_000_000
# Conservative per-platform file size limits, bytes (see the module docstring).
PLATFORM_MAX_BYTES: Mapping[str, int] = {
    "tiktok": 287_600_000,
    "instagram": 300 * MB,
    "youtube": 256 * 1000 * MB,
}
MIN_DURATION_S = 3.0  # Instagram Reels' minimum
MAX_DURATION_S = 180.0  # YouTube Shorts' maximum (since Oct 2024)
MAX_FPS = 60.0

@dataclass(frozen=True)
class IntegrityLimits:
    """What a file must be to be published. Defaults: the branded output, on every platform."""

    min_duration_s: float = MIN_DURATION_S
    max_duration_s: float = MAX_DURATION_S
    max_bytes: int = min(PLATFORM_MAX_BYTES.values())
    video_codecs: tuple[str, ...] = ("h264",)
    audio_codecs: tuple[str, ...] = ("aac",)
    pix_fmts: tuple[str, ...] = ("yuv420p",)
    exact_size: tuple[int, int] | None = (1080, 1920)  # None: any 9:16 size
    aspect: tuple[int, int] = (9, 16)
    aspect_tolerance: float = 0.01  # relative, when exact_size is None
    min_fps: float = MIN_FPS
    max_fps: float = MAX_FPS
    max_audio_rate: int = 48000
    max_audio_channels: int = 2
    require_faststart: bool = True
    require_full_decode: bool = True

    @classmethod
    def for_platforms(cls, platforms: Iterable[str], **overrides: Any) -> IntegrityLimits:
        """Limits with the smallest size cap among `platforms` (known platforms only)."""
        caps = [PLATFORM_MAX_BYTES[p] for p in platforms if p in PLATFORM_MAX_BYTES]
        limits = cls(**overrides)
        return replace(limits, max_bytes=min(caps)) if caps else limits


BRANDED_LIMITS = IntegrityLimits()


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


def check_integrity(probe: ProbeResult, limits: IntegrityLimits = BRANDED_LIMITS) -> list[str]:
    """Every reason `probe`'s file may not be published (empty: it may)."""
    problems: list[str] = []
    if not probe.decodable:
        problems.append(f"not decodable: {probe.error or 'unknown error'}")
    elif limits.require_full_decode and not probe.fully_decoded:
        problems.append("not verified: the file was not fully decoded")
    if not probe.has_video:
        problems.append("no video stream")
    if not probe.has_audio:
        problems.append("no audio stream")

    if probe.has_video:
        if probe.video_codec not in limits.video_codecs:
            problems.append(f"video codec {probe.video_codec}, expected "
                            f"{'/'.join(limits.video_codecs)}")
        if probe.pix_fmt is not None and probe.pix_fmt not in limits.pix_fmts:
            problems.append(f"pixel format {probe.pix_fmt}, expected "
                            f"{'/'.join(limits.pix_fmts)}")
        if probe.width and probe.height:
            size = f"{probe.width}x{probe.height}"
            aw, ah = limits.aspect
            if limits.exact_size is not None and (probe.width, probe.height) != limits.exact_size:
                ew, eh = limits.exact_size
                problems.append(f"frame size {size}, expected {ew}x{eh} ({aw}:{ah})")
            elif abs(probe.width / probe.height - aw / ah) > limits.aspect_tolerance * aw / ah:
                problems.append(f"aspect ratio of {size} is not {aw}:{ah}")
        elif probe.decodable:
            problems.append("unknown frame size")
        if probe.sample_aspect_ratio not in (None, "1:1", "0:1"):
            problems.append(f"non-square pixels (SAR {probe.sample_aspect_ratio})")
        fps_ok = probe.fps is None or (
            limits.min_fps - 0.01 <= probe.fps <= limits.max_fps + 0.01)
        if not fps_ok:
            problems.append(f"frame rate {probe.fps:.3g} fps outside "
                            f"{limits.min_fps:g}-{limits.max_fps:g} fps")

    if probe.has_audio:
        if probe.audio_codec not in limits.audio_codecs:
            problems.append(f"audio codec {probe.audio_codec}, expected "
                            f"{'/'.join(limits.audio_codecs)}")
        if probe.audio_sample_rate and probe.audio_sample_rate > limits.max_audio_rate:
            problems.append(f"audio sample rate {probe.audio_sample_rate} Hz above "
                            f"{limits.max_audio_rate} Hz")
        if probe.audio_channels and probe.audio_channels > limits.max_audio_channels:
            problems.append(f"{probe.audio_channels} audio channels, at most "
                            f"{limits.max_audio_channels}")

    if probe.duration_s is None:
        if probe.decodable:
            problems.append("unknown duration")
    elif probe.duration_s < limits.min_duration_s:
        problems.append(f"too short: {probe.duration_s:.2f} s (minimum "
                        f"{limits.min_duration_s:g} s)")
    elif probe.duration_s > limits.max_duration_s:
        problems.append(f"too long: {probe.duration_s:.2f} s (maximum "
                        f"{limits.max_duration_s:g} s)")

    if probe.bytes > limits.max_bytes:
        problems.append(f"too large: {_mb(probe.bytes)} (limit {_mb(limits.max_bytes)})")
    elif probe.bytes == 0:
        problems.append("empty file")

    if limits.require_faststart and probe.decodable and probe.has_moov_at_front is not True:
        problems.append("moov atom is not before mdat (not +faststart)"
                        if probe.has_moov_at_front is False else "not an MP4 file")
    return problems


@dataclass(frozen=True)
class IntegrityReport:
    """The verdict on one file: `ok` when there are no problems."""

    probe: ProbeResult
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        return "ok" if self.ok else "; ".join(self.problems)

    def metadata(self) -> dict[str, Any]:
        """For an asset check: the verdict and the numbers it was made on."""
        p = self.probe
        return {
            "ok": self.ok, "problems": list(self.problems), "path": p.path,
            "bytes": p.bytes, "duration_s": p.duration_s, "width": p.width,
            "height": p.height, "video_codec": p.video_codec, "audio_codec": p.audio_codec,
            "pix_fmt": p.pix_fmt, "fps": p.fps, "faststart": p.has_moov_at_front,
        }


def integrity_report(probe: ProbeResult,
                     limits: IntegrityLimits = BRANDED_LIMITS) -> IntegrityReport:
    return IntegrityReport(probe=probe, problems=tuple(check_integrity(probe, limits)))
