"""The branding pass as an ffmpeg command: the encode spec, input hardening, the filter graph
built through ffmpeg-python, and what probing a file finds. Pure code (no process is started
here): `resources.ffmpeg.FfmpegResource` runs the command and probes with PyAV; the rules a
branded file must meet to be published are waifugen_assets/videos/branding.py.

The pass, in filter-graph order:

    fps cap -> scale to fit 1080x1920 (aspect kept) -> pad to 1080x1920, centred, black
    -> setsar=1 -> [logo overlay] -> [drawtext] -> yuv420p
    + the input's first audio track, or generated silence when it has none
    -> H.264 High, closed GOP (one keyframe every 2 s, no scene-cut keyframes), capped CRF
       + AAC-LC 128k 48 kHz stereo, MP4 with the moov atom in front (+faststart)

Input hardening: every input (video and logo) is opened with `-protocol_whitelist file` and a
demuxer whitelist (MP4/MOV/Matroska for the video, PNG/JPEG/WebP for the logo), so a "video"
that is really an HLS playlist or a concat script cannot make ffmpeg read other files or the
network; inputs that look like URLs (`https://...`, `concat:...`, `file:...`) are refused
before any command is built, and paths are passed absolute with an explicit `file:` prefix.
`-xerror` makes ffmpeg stop on the first decoding error, so a corrupt or truncated source fails
the reel instead of producing a shorter, silently damaged file.

Text watermarks: drawtext runs with `expansion=none`, so `%` is literal (no `%{...}`
functions), and the text is escaped for the two parsing levels (filter options, then the
filter graph: `\\ ' : =` and `\\ ' [ ] , ;`) by ffmpeg-python; control characters are replaced
with spaces. The font is a file found on the machine (DejaVu Sans Bold or another common sans
font, see `find_font_file`); without one, drawtext falls back to fontconfig's "Sans", which
needs an ffmpeg built with fontconfig (imageio-ffmpeg's is) and an installed font.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import ffmpeg

# --- errors ----------------------------------------------------------------------------------


class BrandingError(RuntimeError):
    """Branding one reel failed; `reason` is a one-paragraph explanation for the operator.

    `stderr_tail` holds ffmpeg's last stderr lines when ffmpeg itself failed.
    """

    def __init__(self, reason: str, *, returncode: int | None = None,
                 stderr_tail: str | None = None) -> None:
        self.reason = reason
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(reason)


class UnsafeInputError(BrandingError):
    """An input that is not a plain local file path (a URL, a protocol prefix)."""


MIN_FPS = 23.0  # Instagram Reels: 23-60 fps; slower sources are brought up to it
# Where a watermark may sit (the roster file's `watermark.position` values).
CORNERS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")


class Overlay(Protocol):
    """A watermark as the command needs it (the roster's Watermark fits)."""

    text: str
    image: str | None
    position: str
    opacity: float


# Demuxers an input may be opened with (ffmpeg's -format_whitelist, matched per name).
VIDEO_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"
IMAGE_DEMUXERS = "png_pipe,jpeg_pipe,webp_pipe"

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


# --- the encode spec ------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodeSpec:
    """What every branded file looks like. Defaults: 1080x1920 H.264 High / AAC 128k."""

    width: int = 1080
    height: int = 1920
    crf: int = 23
    preset: str = "medium"
    profile: str = "high"
    pix_fmt: str = "yuv420p"
    # Output frame rate: the source's, capped at max_fps; a source slower than min_fps (or of
    # unknown rate) is brought to max_fps. Always constant frame rate.
    max_fps: int = 30
    min_fps: float = MIN_FPS
    gop_seconds: float = 2.0  # closed GOP, one keyframe every gop_seconds
    # Capped CRF: keeps peaks under the platforms' ingest bitrates (Instagram: 25 Mbps).
    maxrate: str | None = "20M"
    bufsize: str | None = "40M"
    audio_bitrate: str = "128k"
    audio_rate: int = 48000
    audio_channels: int = 2
    faststart: bool = True
    # Watermark layout, in output pixels.
    logo_width_ratio: float = 0.2  # the logo fits a square box of 20% of the output width
    margin: int = 48
    font_size: int = 56
    text_gap: int = 12  # between the logo and the text when both are drawn

    def __post_init__(self) -> None:
        problems = []
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            problems.append(f"size {self.width}x{self.height}: must be positive and even")
        if not 0 <= self.crf <= 51:
            problems.append(f"crf {self.crf}: must be 0-51")
        if self.preset not in X264_PRESETS:
            problems.append(f"preset {self.preset!r}: one of {', '.join(X264_PRESETS)}")
        if not 1 <= self.min_fps <= self.max_fps:
            problems.append(f"fps range {self.min_fps}-{self.max_fps}: invalid")
        if self.gop_seconds <= 0:
            problems.append("gop_seconds must be positive")
        if self.audio_channels not in (1, 2):
            problems.append("audio_channels must be 1 or 2")
        if not 0 < self.logo_width_ratio <= 1:
            problems.append("logo_width_ratio must be in (0, 1]")
        if problems:
            raise ValueError("EncodeSpec: " + "; ".join(problems))

    @property
    def logo_box(self) -> int:
        """Side of the square box the logo is scaled to fit (even, in pixels)."""
        return max(2, int(self.width * self.logo_width_ratio) // 2 * 2)

    def output_fps(self, source_fps: float | None) -> Fraction:
        """Frame rate of the branded file for a source of `source_fps` (None: unknown)."""
        if source_fps is None or not math.isfinite(source_fps) or source_fps < self.min_fps:
            return Fraction(self.max_fps)
        if source_fps >= self.max_fps:
            return Fraction(self.max_fps)
        for base in (24, 30, 48, 60):  # NTSC rates: 29.97 -> 30000/1001
            if abs(source_fps - base * 1000 / 1001) < 0.005:
                return Fraction(base * 1000, 1001)
        return Fraction(source_fps).limit_denominator(1001)

    def gop(self, fps: Fraction) -> int:
        return max(1, round(float(fps) * self.gop_seconds))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_SPEC = EncodeSpec()


# --- inputs ----------------------------------------------------------------------------------

# "https:", "concat:", "file:", "data:" ... (two letters at least, so "C:\\" stays a path),
# and ffmpeg's one comma-form protocol, "subfile,,start,...,:path".
_SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]+:|subfile,)")


def looks_like_url(path: str | os.PathLike[str]) -> bool:
    text = os.fspath(path)
    return bool(_SCHEME.match(text)) or text.startswith("//")


def local_input(path: str | os.PathLike[str], what: str = "input") -> Path:
    """`path` as an absolute local path; UnsafeInputError for URLs and protocol prefixes."""
    text = os.fspath(path)
    if not text or looks_like_url(text):
        raise UnsafeInputError(
            f"{what} {text!r} is not a local file path: only local files are branded "
            "(URLs and ffmpeg protocols are refused)"
        )
    return Path(text).absolute()


def ffmpeg_file_url(path: Path) -> str:
    """The explicit `file:` form, so no part of a path is ever read as a protocol."""
    return f"file:{path}"


# --- the command -----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def drawtext_text(text: str) -> str:
    """The watermark text as drawn: NFC, control characters (newlines) as spaces, trimmed.

    Filter-level escaping is ffmpeg-python's (see `escape_filter_value`); `%` needs none
    because drawtext runs with `expansion=none`.
    """
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", text)).strip()


def escape_filter_value(value: str) -> str:
    """How ffmpeg-python writes one option value into a filter graph (both levels).

    Level 1 (filter options, split on `:`): `\\ ' = :` get a backslash. Level 2 (the graph,
    split on `[ ] , ;`): `\\ ' [ ] , ;` get a backslash. Mirrors ffmpeg.nodes.FilterNode so
    tests can check the graph string; the command itself is compiled by ffmpeg-python.
    """

    def esc(text: str, chars: str) -> str:
        text = text.replace("\\", "\\\\")
        for ch in chars:
            text = text.replace(ch, "\\" + ch)
        return text

    return esc(esc(value, "'=:"), "'[],;")


def _corner(position: str, margin: int, *, w: str, h: str, ow: str, oh: str,
            offset: int = 0) -> tuple[str, str]:
    """x, y expressions for an object of size ow x oh in a corner of a w x h frame.

    `offset` pushes it further from the top/bottom edge (the text under/over a logo).
    """
    if position not in CORNERS:
        raise ValueError(f"watermark position {position!r}: one of {CORNERS}")
    vertical, horizontal = position.split("-")
    x = str(margin) if horizontal == "left" else f"{w}-{ow}-{margin}"
    y = str(margin + offset) if vertical == "top" else f"{h}-{oh}-{margin + offset}"
    return x, y


def _opacity(value: float) -> str:
    value = min(1.0, max(0.0, float(value)))
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def resolve_image(image: str, base_dir: str | os.PathLike[str] | None) -> Path:
    """The logo file: absolute, or relative to `base_dir` (the roster file's directory)."""
    local_input(image, "watermark image")
    path = Path(image)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path.absolute()


def build_brand_command(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    watermark: Overlay | None,
    spec: EncodeSpec = DEFAULT_SPEC,
    ffmpeg_exe: str = "ffmpeg",
    *,
    has_audio: bool = True,
    source_fps: float | None = None,
    font_file: str | os.PathLike[str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The complete argv of the branding pass (nothing is run).

    `has_audio` / `source_fps` come from probing the input (no audio: silence is generated;
    the frame rate is capped, see EncodeSpec.output_fps). `font_file` is used for a text
    watermark; None falls back to fontconfig's "Sans". A relative `watermark.image` is looked
    up in `base_dir`. `output_path` is written with `-y` (the caller passes a temp file and
    renames it). Raises UnsafeInputError for URL-looking inputs.
    """
    src = local_input(input_path, "input")
    dst = local_input(output_path, "output")
    font = None if font_file is None else local_input(font_file, "font file")

    fps = spec.output_fps(source_fps)
    gop = spec.gop(fps)
    source = ffmpeg.input(ffmpeg_file_url(src), protocol_whitelist="file",
                          format_whitelist=VIDEO_DEMUXERS)

    video = (
        source["v:0"]
        .filter("fps", fps=str(fps))
        .filter("scale", w=spec.width, h=spec.height, force_original_aspect_ratio="decrease",
                force_divisible_by=2)
        .filter("pad", w=spec.width, h=spec.height, x="(ow-iw)/2", y="(oh-ih)/2", color="black")
        .filter("setsar", "1")
    )

    text_offset = 0
    if watermark is not None and watermark.image:
        logo_path = resolve_image(watermark.image, base_dir)
        box = spec.logo_box
        logo = (
            ffmpeg.input(ffmpeg_file_url(logo_path), protocol_whitelist="file",
                         format_whitelist=IMAGE_DEMUXERS)["v:0"]
            .filter("scale", w=box, h=box, force_original_aspect_ratio="decrease")
            .filter("format", "rgba")
            .filter("colorchannelmixer", aa=_opacity(watermark.opacity))
        )
        x, y = _corner(watermark.position, spec.margin, w="main_w", h="main_h",
                       ow="overlay_w", oh="overlay_h")
        # A still image: overlay keeps showing its one frame for the whole video.
        video = ffmpeg.overlay(video, logo, x=x, y=y, eof_action="repeat")
        text_offset = box + spec.text_gap

    if watermark is not None and watermark.text and drawtext_text(watermark.text):
        x, y = _corner(watermark.position, spec.margin, w="w", h="h", ow="tw", oh="th",
                       offset=text_offset)
        alpha = _opacity(watermark.opacity)
        font_kw: dict[str, str] = {"fontfile": str(font)} if font else {"font": "Sans"}
        video = video.filter(
            "drawtext", text=drawtext_text(watermark.text), expansion="none",
            fontsize=spec.font_size, fontcolor=f"white@{alpha}", borderw=3,
            bordercolor=f"black@{alpha}", x=x, y=y, **font_kw,
        )

    video = video.filter("format", spec.pix_fmt)

    if has_audio:
        audio = source["a:0"]
    else:
        audio = ffmpeg.input(
            f"anullsrc=channel_layout={'stereo' if spec.audio_channels == 2 else 'mono'}"
            f":sample_rate={spec.audio_rate}",
            f="lavfi",
        )["a:0"]

    out_opts: dict[str, Any] = {
        "c:v": "libx264", "preset": spec.preset, "crf": spec.crf, "profile:v": spec.profile,
        "pix_fmt": spec.pix_fmt, "g": gop, "keyint_min": gop, "sc_threshold": 0,
        "flags": "+cgop",
        "c:a": "aac", "b:a": spec.audio_bitrate, "ar": spec.audio_rate,
        "ac": spec.audio_channels,
        "map_metadata": -1, "map_chapters": -1,
        "f": "mp4",
    }
    if spec.maxrate:
        out_opts["maxrate"] = spec.maxrate
        out_opts["bufsize"] = spec.bufsize or spec.maxrate
    if spec.faststart:
        out_opts["movflags"] = "+faststart"
    if not has_audio:
        out_opts["shortest"] = None  # the generated silence is endless
    out = ffmpeg.output(video, audio, ffmpeg_file_url(dst), **out_opts)
    global_args = [ffmpeg_exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
                   "-xerror", "-y"]
    return global_args + ffmpeg.get_args(out)


def filter_graph(command: Sequence[str]) -> str:
    """The -filter_complex argument of a command."""
    return command[list(command).index("-filter_complex") + 1]


# --- fonts -----------------------------------------------------------------------------------

FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",  # Debian, Ubuntu
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",  # Fedora
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",  # Arch
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial Bold.ttf",  # macOS
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arialbd.ttf",
)
_FONT_GLOBS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf",
               "NotoSans-Bold.ttf", "*Sans*-Bold.ttf", "*.ttf")


def find_font_file(candidates: Iterable[str] = FONT_CANDIDATES,
                   font_dirs: Iterable[str] = ("/usr/share/fonts", "/usr/local/share/fonts"),
                   ) -> str | None:
    """A TrueType font for drawtext: a known sans file, else the first match in font_dirs."""
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    for pattern in _FONT_GLOBS:
        for directory in font_dirs:
            root = Path(directory)
            if root.is_dir():
                for match in sorted(root.rglob(pattern)):
                    if match.is_file():
                        return str(match)
    return None


# --- probing results and integrity ----------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """What a file is, from PyAV (filled in by resources.ffmpeg.probe_file).

    `decodable` is False when the file cannot be opened, a packet fails to decode, or the file
    is structurally cut short (a box running past the end of the file, fewer packets than the
    index lists); `error` says which. `fully_decoded` is True when every packet was decoded.
    """

    path: str
    decodable: bool
    error: str | None = None
    bytes: int = 0
    sha256: str | None = None
    format_name: str | None = None
    duration_s: float | None = None
    video_codec: str | None = None
    video_profile: str | None = None
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None
    sample_aspect_ratio: str | None = None  # "1:1"
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    video_frames: int | None = None  # decoded
    audio_frames: int | None = None  # decoded
    fully_decoded: bool = False
    # MP4 top-level box order: True when moov comes before mdat (+faststart); None: not MP4.
    has_moov_at_front: bool | None = None
    top_level_boxes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def duration_ms(self) -> int | None:
        return None if self.duration_s is None else round(self.duration_s * 1000)

    def video_row(self) -> dict[str, Any]:
        """The columns of a `videos` row that come from the file itself."""
        return {
            "sha256": self.sha256, "bytes": self.bytes, "duration_ms": self.duration_ms,
            "width": self.width, "height": self.height,
            "video_codec": self.video_codec, "audio_codec": self.audio_codec,
        }

    def as_metadata(self) -> dict[str, Any]:
        """JSON-ready (run or check metadata)."""
        data = asdict(self)
        data["top_level_boxes"] = list(self.top_level_boxes)
        return data


