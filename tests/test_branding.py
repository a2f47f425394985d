"""Branding: the ffmpeg command (pure), real ffmpeg runs on tiny lavfi clips, PyAV probing and
the integrity rules that gate publishing.

Source clips are generated once per test session with ffmpeg's lavfi sources (testsrc2, sine)
at small sizes; the branded output is always 1080x1920, so tests encode with
preset=ultrafast / crf=40 to stay fast.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resources.ffmpeg as ffmpeg_mod
from resources.ffmpeg import FfmpegResource, moov_before_mdat, probe_file, top_level_boxes
from resources.ffmpeg_command import (
    CORNERS,
    DEFAULT_SPEC,
    BrandingError,
    EncodeSpec,
    ProbeResult,
    UnsafeInputError,
    build_brand_command,
    drawtext_text,
    escape_filter_value,
    filter_graph,
    find_font_file,
)
from waifugen_assets.roster.model import WATERMARK_POSITIONS, Watermark
from waifugen_assets.videos.branding import (
    BRANDED_LIMITS,
    PLATFORM_MAX_BYTES,
    IntegrityLimits,
    check_integrity,
    integrity_report,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FAST = EncodeSpec(preset="ultrafast", crf=40)
TRICKY = "@ana's: 100% \\ fun"
FONT = find_font_file()
SRC_FPS = 24
SRC_SECONDS = 3.5


def run_ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, capture_output=True, timeout=60)


def make_clip(path: Path, size: str, *, seconds: float = SRC_SECONDS, audio: bool = True,
              vcodec: str = "libx264", faststart: bool = True) -> Path:
    args = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={SRC_FPS}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:d={seconds}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast"]
    if audio:
        args += ["-c:a", "aac"]
    if faststart:
        args += ["-movflags", "+faststart"]
    run_ffmpeg(*args, str(path))
    return path


def frame(path: Path, index: int = 12, fmt: str = "gray") -> np.ndarray:
    with av.open(str(path)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == index:
                return decoded.to_ndarray(format=fmt).astype(np.int16)
    raise AssertionError(f"{path} has no frame {index}")


# --- fixtures: clips made once per session (per xdist worker) ------------------------------


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("branding-media")


@pytest.fixture(scope="session")
def portrait(media: Path) -> Path:
    return make_clip(media / "portrait.mp4", "360x640")


@pytest.fixture(scope="session")
def ffmpeg_res(media: Path) -> FfmpegResource:
    return FfmpegResource(ffmpeg_path=FFMPEG, font_file=FONT, watermark_dir=str(media))


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("branded")


@pytest.fixture(scope="session")
def plain(ffmpeg_res: FfmpegResource, portrait: Path, out_dir: Path) -> tuple[Path, ProbeResult]:
    out = out_dir / "plain.mp4"
    return out, ffmpeg_res.brand(portrait, out, None, FAST)


@pytest.fixture(scope="session")
def text_branded(ffmpeg_res: FfmpegResource, portrait: Path,
                 out_dir: Path) -> tuple[Path, ProbeResult]:
    out = out_dir / "text.mp4"
    wm = Watermark(text=TRICKY, position="bottom-right", opacity=1.0)
    return out, ffmpeg_res.brand(portrait, out, wm, FAST)


# --- the command (pure) ----------------------------------------------------------------------


def test_command_has_the_encode_spec() -> None:
    cmd = build_brand_command("/in/a.mp4", "/out/b.mp4", None, DEFAULT_SPEC, "ffmpeg",
                              has_audio=True, source_fps=30)
    line = " ".join(cmd)
    for part in ("-c:v libx264", "-profile:v high", "-pix_fmt yuv420p", "-g 60",
                 "-keyint_min 60", "-sc_threshold 0", "-flags +cgop", "-crf 23",
                 "-preset medium", "-c:a aac", "-b:a 128k", "-ar 48000", "-ac 2",
                 "-movflags +faststart", "-f mp4", "-xerror", "-map 0:a:0"):
        assert part in line, part
    # every input is restricted to local files and media demuxers
    assert cmd.count("-protocol_whitelist") == 1
    assert cmd[cmd.index("-i") - 1] == "file"
    assert cmd[cmd.index("-i") + 1] == "file:/in/a.mp4"
    assert cmd[-1] == "file:/out/b.mp4"
    graph = filter_graph(cmd)
    assert "fps=fps=30" in graph
    assert "scale=force_divisible_by=2:force_original_aspect_ratio=decrease:h=1920:w=1080" in graph
    assert "pad=color=black:h=1920:w=1080:x=(ow-iw)/2:y=(oh-ih)/2" in graph
    assert "setsar=1" in graph and graph.endswith("format=yuv420p[s4]")
    assert "-shortest" not in cmd and "anullsrc" not in line


def test_command_without_audio_generates_silence() -> None:
    cmd = build_brand_command("/in/a.mp4", "/out/b.mp4", None, FAST, "ffmpeg",
                              has_audio=False, source_fps=None)
    i = cmd.index("anullsrc=channel_layout=stereo:sample_rate=48000")
    assert cmd[i - 3:i] == ["-f", "lavfi", "-i"]
    assert "-shortest" in cmd and "1:a:0" in cmd


def test_command_with_both_watermarks(tmp_path: Path) -> None:
    wm = Watermark(text=TRICKY, image="logo.png", position="top-left", opacity=0.5)
    cmd = build_brand_command("/in/a.mp4", "/out/b.mp4", wm, DEFAULT_SPEC, "ffmpeg",
                              font_file="/fonts/x.ttf", base_dir=tmp_path)
    assert cmd.count("-protocol_whitelist") == 2  # the logo is an input too
    assert f"file:{tmp_path / 'logo.png'}" in cmd
    logo = cmd.index(f"file:{tmp_path / 'logo.png'}")
    assert cmd[logo - 5:logo] == ["-format_whitelist", "png_pipe,jpeg_pipe,webp_pipe",
                                  "-protocol_whitelist", "file", "-i"]
    graph = filter_graph(cmd)
    assert "scale=force_original_aspect_ratio=decrease:h=216:w=216" in graph
    assert "colorchannelmixer=aa=0.5" in graph
    assert "overlay=eof_action=repeat:x=48:y=48" in graph
    # the text sits under the logo box, top-left
    assert "expansion=none" in graph and ":x=48:y=276" in graph
    assert "text=" + escape_filter_value(TRICKY) in graph
    assert "fontfile=/fonts/x.ttf" in graph


def test_command_without_font_file_uses_fontconfig_sans() -> None:
    cmd = build_brand_command("/in/a.mp4", "/out/b.mp4", Watermark(text="@ana"), FAST)
    assert "font=Sans" in filter_graph(cmd)


@pytest.mark.parametrize(("position", "x", "y"), [
    ("top-left", "48", "48"), ("top-right", "w-tw-48", "48"),
    ("bottom-left", "48", "h-th-48"), ("bottom-right", "w-tw-48", "h-th-48"),
])
def test_text_positions(position: str, x: str, y: str) -> None:
    cmd = build_brand_command("/a.mp4", "/b.mp4", Watermark(text="hi", position=position))
    assert f":x={x}:y={y}[" in filter_graph(cmd)


@pytest.mark.parametrize(("source", "expected"), [
    (None, Fraction(30)), (60.0, Fraction(30)), (30.0, Fraction(30)), (25.0, Fraction(25)),
    (24.0, Fraction(24)), (29.97, Fraction(30000, 1001)), (23.976, Fraction(24000, 1001)),
    (15.0, Fraction(30)), (float("nan"), Fraction(30)),
])
def test_output_fps_is_capped(source: float | None, expected: Fraction) -> None:
    assert DEFAULT_SPEC.output_fps(source) == expected
    assert DEFAULT_SPEC.gop(DEFAULT_SPEC.output_fps(source)) == round(float(expected) * 2)


def test_spec_is_validated() -> None:
    with pytest.raises(ValueError, match="preset"):
        EncodeSpec(preset="warp")
    with pytest.raises(ValueError, match="even"):
        EncodeSpec(width=1081)


URLS = ["https://example.com/a.mp4", "http://127.0.0.1:8765/a.mp4", "file:/etc/passwd",
        "concat:/tmp/a.mp4|/tmp/b.mp4", "rtmp://host/live", "data:video/mp4;base64,AAAA",
        "//host/share/a.mp4", "subfile,,start,0,end,0,,:/etc/passwd"]


@pytest.mark.parametrize("url", URLS)
def test_url_inputs_are_refused_without_running_ffmpeg(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("ffmpeg must not run")

    monkeypatch.setattr(ffmpeg_mod.subprocess, "run", forbidden)
    monkeypatch.setattr(ffmpeg_mod.av, "open", forbidden)
    res = FfmpegResource(ffmpeg_path=FFMPEG, watermark_dir=str(tmp_path))
    with pytest.raises(UnsafeInputError, match="not a local file path"):
        res.brand(url, tmp_path / "out.mp4")
    with pytest.raises(UnsafeInputError):
        build_brand_command(url, "/b.mp4", None)
    with pytest.raises(UnsafeInputError, match="watermark image"):
        build_brand_command("/a.mp4", "/b.mp4", Watermark(text="x", image=url))
    assert not probe_file(url).decodable
    assert list(tmp_path.iterdir()) == []


# ffmpeg's own parsing, to check the escaping against: av_get_token() (libavutil/avstring.c)
# reads a token up to an unescaped terminator, dropping one level of '\' and '...' quoting
# and surrounding whitespace.
def av_get_token(text: str, terms: str) -> tuple[str, str]:
    out: list[str] = []
    i = 0
    while i < len(text) and text[i] in " \n\t\r":
        i += 1
    end = 0  # length of out up to the last char that must be kept
    while i < len(text) and text[i] not in terms:
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            end = len(out)
        elif c == "'":
            i += 1
            while i < len(text) and text[i] != "'":
                out.append(text[i])
                i += 1
            i += 1
            end = len(out)
        else:
            out.append(c)
            i += 1
            if c not in " \n\t\r":
                end = len(out)
    return "".join(out[:end]), text[i:]


def drawtext_text_as_ffmpeg_reads_it(graph: str) -> str:
    chain = graph[graph.index("drawtext=") + len("drawtext="):]
    options, _ = av_get_token(chain, "[],;")  # graph level
    while options:
        key, _, rest = options.partition("=")
        value, options = av_get_token(rest, ":")  # filter option level
        options = options[1:]
        if key == "text":
            return value
    raise AssertionError("no text option")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
               min_size=1, max_size=40))
def test_drawtext_escaping_round_trips(text: str) -> None:
    expected = drawtext_text(text)
    cmd = build_brand_command("/a.mp4", "/b.mp4", Watermark(text=text), FAST,
                              font_file="/f.ttf")
    if not expected:
        assert "drawtext" not in filter_graph(cmd)
        return
    assert drawtext_text_as_ffmpeg_reads_it(filter_graph(cmd)) == expected


def test_drawtext_text_cleans_control_characters() -> None:
    assert drawtext_text(" a\nb\tc\x00 ") == "a b c"
    assert drawtext_text(TRICKY) == TRICKY


# --- real ffmpeg -----------------------------------------------------------------------------


def keyframe_indexes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    packets.sort(key=lambda p: p.pts)
    return [i for i, p in enumerate(packets) if p.is_keyframe]


def test_branded_output_matches_the_spec(plain: tuple[Path, ProbeResult]) -> None:
    out, probe = plain
    assert probe.decodable and probe.fully_decoded, probe.error
    assert (probe.width, probe.height) == (1080, 1920)
    assert (probe.video_codec, probe.pix_fmt, probe.sample_aspect_ratio) == (
        "h264", "yuv420p", "1:1")
    assert (probe.audio_codec, probe.audio_sample_rate, probe.audio_channels) == (
        "aac", 48000, 2)
    assert probe.has_moov_at_front is True
    assert probe.top_level_boxes.index("moov") < probe.top_level_boxes.index("mdat")
    assert probe.duration_s == pytest.approx(SRC_SECONDS, abs=0.1)
    assert probe.fps == pytest.approx(SRC_FPS)  # under the 30 fps cap: kept
    assert probe.video_frames == round(SRC_SECONDS * SRC_FPS)
    assert probe.bytes == out.stat().st_size and len(probe.sha256 or "") == 64
    assert check_integrity(probe) == []
    assert integrity_report(probe).ok
    # closed GOP of 2 s, no scene-cut keyframes
    assert keyframe_indexes(out) == [0, 2 * SRC_FPS]
    # the temp file was renamed, nothing else left beside the output
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []
    row = probe.video_row()
    assert row["duration_ms"] == pytest.approx(SRC_SECONDS * 1000, abs=100)
    assert (row["width"], row["height"], row["video_codec"], row["audio_codec"]) == (
        1080, 1920, "h264", "aac")


@pytest.mark.parametrize(("size", "content_rows"), [("320x180", 608), ("240x240", 1080)])
def test_landscape_and_square_inputs_are_padded(
        size: str, content_rows: int, media: Path, ffmpeg_res: FfmpegResource,
        tmp_path: Path) -> None:
    src = make_clip(media / f"src-{size}.mp4", size)
    probe = ffmpeg_res.brand(src, tmp_path / "out.mp4", None, FAST)
    assert (probe.width, probe.height) == (1080, 1920) and check_integrity(probe) == []
    y = frame(tmp_path / "out.mp4")
    pad = (1920 - content_rows) // 2
    top, bottom, middle = y[: pad - 8], y[1920 - pad + 8:], y[pad + 8: 1920 - pad - 8]
    assert top.max() <= 20 and bottom.max() <= 20  # limited-range black is 16
    assert middle.mean() > 60  # the picture itself (testsrc2 is bright)
    assert y[960, :16].mean() > 30 and y[960, -16:].mean() > 30  # full width, no side bars


def test_text_watermark_changes_its_corner_only(
        plain: tuple[Path, ProbeResult], text_branded: tuple[Path, ProbeResult]) -> None:
    out, probe = text_branded
    assert check_integrity(probe) == []
    base, marked = frame(plain[0]), frame(out)
    corner = np.abs(marked[1700:1900, 540:1060] - base[1700:1900, 540:1060]).mean()
    opposite = np.abs(marked[20:220, 20:540] - base[20:220, 20:540]).mean()
    assert corner > 8
    assert opposite < corner / 10


@pytest.mark.skipif(FONT is None, reason="needs a font file to compare with textfile=")
def test_tricky_text_renders_literally(
        text_branded: tuple[Path, ProbeResult], portrait: Path, tmp_path: Path) -> None:
    """`@ana's: 100% \\ fun` drawn from the escaped text= equals drawing it from a file."""
    textfile = tmp_path / "text.txt"
    textfile.write_text(TRICKY, encoding="utf-8")
    out = tmp_path / "ref.mp4"
    placeholder = "PLACEHOLDERTEXT"
    cmd = build_brand_command(portrait, out,
                              Watermark(text=placeholder, position="bottom-right", opacity=1.0),
                              FAST, FFMPEG, has_audio=True, source_fps=SRC_FPS, font_file=FONT)
    i = cmd.index("-filter_complex") + 1
    cmd[i] = cmd[i].replace(f"text={placeholder}", f"textfile={textfile}")
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    for index in (0, 40):
        ours, reference = frame(text_branded[0], index), frame(out, index)
        assert np.abs(ours - reference).mean() < 0.05


def test_image_watermark_is_overlaid(plain: tuple[Path, ProbeResult], media: Path,
                                     ffmpeg_res: FfmpegResource, portrait: Path,
                                     tmp_path: Path) -> None:
    run_ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1",
               str(media / "logo.png"))
    wm = Watermark(text="", image="logo.png", position="top-right", opacity=1.0)
    probe = ffmpeg_res.brand(portrait, tmp_path / "logo.mp4", wm, FAST)
    assert check_integrity(probe) == []
    rgb = frame(tmp_path / "logo.mp4", fmt="rgb24")
    # the 216x216 logo box sits 48 px from the top and right edges: x 816-1032, y 48-264
    patch = rgb[110:200, 880:970]
    assert patch[..., 0].mean() > 200 and patch[..., 1].mean() < 60
    assert patch[..., 2].mean() < 60
    outside = np.abs(frame(tmp_path / "logo.mp4")[400:1000] - frame(plain[0])[400:1000])
    assert outside.mean() < 1


def test_input_without_audio_gets_silent_aac(media: Path, ffmpeg_res: FfmpegResource,
                                             tmp_path: Path) -> None:
    src = make_clip(media / "mute.mp4", "360x640", audio=False)
    assert not probe_file(src).has_audio
    out = tmp_path / "out.mp4"
    probe = ffmpeg_res.brand(src, out, None, FAST)
    assert (probe.audio_codec, probe.audio_sample_rate, probe.audio_channels) == (
        "aac", 48000, 2)
    assert probe.duration_s == pytest.approx(SRC_SECONDS, abs=0.1)
    assert check_integrity(probe) == []
    with av.open(str(out)) as container:
        peak = max(np.abs(f.to_ndarray()).max() for f in container.decode(audio=0))
    assert peak < 1e-4


def test_corrupt_input_fails_with_a_reason_and_leaves_nothing(
        ffmpeg_res: FfmpegResource, tmp_path: Path) -> None:
    src = tmp_path / "in" / "random.mp4"
    src.parent.mkdir()
    src.write_bytes(random.Random(3).randbytes(50_000))
    out_dir = tmp_path / "out"
    with pytest.raises(BrandingError, match=r"random\.mp4 is not a readable video"):
        ffmpeg_res.brand(src, out_dir / "b.mp4", Watermark(text="@x"), FAST)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def flip_bytes(data: bytes, seed: int = 1) -> bytes:
    """Overwrite a few runs of bytes in the middle third of the media data."""
    buf = bytearray(data)
    rng = random.Random(seed)
    for _ in range(20):
        pos = rng.randrange(len(buf) // 3, len(buf) - 100)
        buf[pos:pos + 64] = rng.randbytes(64)
    return bytes(buf)


def test_damaged_input_fails_with_ffmpegs_reason(portrait: Path, ffmpeg_res: FfmpegResource,
                                                 tmp_path: Path) -> None:
    """The header is fine (so the pre-check passes) but the media data is not: ffmpeg stops
    at the first error (-xerror), the reason is its stderr, the temp file is removed and an
    existing output is left as it was."""
    src = tmp_path / "damaged.mp4"
    src.write_bytes(flip_bytes(portrait.read_bytes()))
    out = tmp_path / "out" / "b.mp4"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    with pytest.raises(BrandingError) as caught:
        ffmpeg_res.brand(src, out, None, FAST)
    err = caught.value
    assert err.returncode not in (None, 0)
    assert err.stderr_tail and err.stderr_tail in err.reason
    assert "ffmpeg failed" in err.reason and "damaged.mp4" in err.reason
    assert [p.name for p in out.parent.iterdir()] == ["b.mp4"]
    assert out.read_bytes() == b"previous"


def test_missing_ffmpeg_binary(portrait: Path, tmp_path: Path) -> None:
    res = FfmpegResource(ffmpeg_path=str(tmp_path / "no-ffmpeg"), watermark_dir=str(tmp_path))
    with pytest.raises(BrandingError, match="cannot run ffmpeg"):
        res.brand(portrait, tmp_path / "out.mp4", None, FAST)
    assert list(tmp_path.iterdir()) == []


def test_missing_logo_is_reported(portrait: Path, ffmpeg_res: FfmpegResource,
                                  tmp_path: Path) -> None:
    wm = Watermark(text="", image="nope.png")
    with pytest.raises(BrandingError, match=r"watermark image .*nope.png does not exist"):
        ffmpeg_res.brand(portrait, tmp_path / "out.mp4", wm, FAST)


# --- probing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_file_is_not_decodable(faststart: bool, media: Path,
                                         tmp_path: Path) -> None:
    whole = make_clip(media / f"whole-{faststart}.mp4", "180x320", faststart=faststart)
    assert probe_file(whole).decodable
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    probe = probe_file(cut)
    assert not probe.decodable and probe.error
    if faststart:  # the index is intact, the media data is cut: found by the box sizes
        assert "truncated" in probe.error and "mdat" in probe.error
    problems = check_integrity(probe)
    assert problems[0].startswith("not decodable")


def test_damaged_media_data_is_found_by_full_decode(portrait: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(flip_bytes(portrait.read_bytes()))
    assert probe_file(damaged, full_decode=False).decodable  # the header is fine
    probe = probe_file(damaged)
    assert not probe.decodable and "decoding failed" in (probe.error or "")


def test_probe_never_raises(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    playlist = tmp_path / "playlist.mp4"  # an HLS playlist posing as a video
    playlist.write_text("#EXTM3U\n#EXTINF:1,\n/etc/passwd\n")
    for path, message in [(tmp_path / "missing.mp4", "cannot read"), (empty, "empty"),
                          (playlist, "cannot open as a video")]:
        probe = probe_file(path)
        assert not probe.decodable and message in (probe.error or ""), probe.error


def test_integrity_of_a_real_bad_file(media: Path) -> None:
    bad = make_clip(media / "bad.mp4", "320x180", seconds=2, audio=False, vcodec="mpeg4",
                    faststart=False)
    probe = probe_file(bad)
    assert probe.decodable and probe.fully_decoded
    problems = "\n".join(check_integrity(probe))
    for expected in ("frame size 320x180, expected 1080x1920", "too short: 2.00 s",
                     "no audio stream", "video codec mpeg4, expected h264",
                     "moov atom is not before mdat"):
        assert expected in problems


def test_top_level_boxes() -> None:
    def box(kind: bytes, payload: bytes = b"", large: bool = False) -> bytes:
        if large:
            return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    data = box(b"ftyp", b"isom") + box(b"moov", b"x" * 10) + box(b"mdat", b"y" * 20, large=True)
    boxes, error = top_level_boxes(io.BytesIO(data), len(data))
    assert error is None and [b.type for b in boxes or []] == ["ftyp", "moov", "mdat"]
    assert moov_before_mdat(boxes) is True
    late = box(b"ftyp") + box(b"mdat", b"y") + box(b"moov")
    boxes, _ = top_level_boxes(io.BytesIO(late), len(late))
    assert moov_before_mdat(boxes) is False
    cut = data[:-5]
    boxes, error = top_level_boxes(io.BytesIO(cut), len(cut))
    assert error and "'mdat'" in error and "5 bytes early" in error
    to_end = box(b"ftyp") + box(b"moov") + struct.pack(">I4s", 0, b"mdat") + b"z" * 9
    boxes, error = top_level_boxes(io.BytesIO(to_end), len(to_end))
    assert error is None and boxes and boxes[-1].size == 17
    assert top_level_boxes(io.BytesIO(b"\x1a\x45\xdf\xa3" * 8), 32) == (None, None)


# --- integrity rules (pure) ------------------------------------------------------------------

GOOD = ProbeResult(
    path="/v/good.mp4", decodable=True, bytes=8 * 1000 * 1000, sha256="0" * 64,
    format_name="mov,mp4,m4a,3gp,3g2,mj2", duration_s=15.0, video_codec="h264",
    video_profile="High", width=1080, height=1920, pix_fmt="yuv420p", fps=30.0,
    sample_aspect_ratio="1:1", audio_codec="aac", audio_sample_rate=48000, audio_channels=2,
    video_frames=450, audio_frames=704, fully_decoded=True, has_moov_at_front=True,
    top_level_boxes=("ftyp", "moov", "free", "mdat"),
)


@pytest.mark.parametrize(("change", "expected"), [
    ({"width": 1920, "height": 1080}, "frame size 1920x1080, expected 1080x1920 (9:16)"),
    ({"width": 1080, "height": 1080}, "frame size 1080x1080"),
    ({"duration_s": 2.5}, "too short: 2.50 s (minimum 3 s)"),
    ({"duration_s": 181.0}, "too long: 181.00 s (maximum 180 s)"),
    ({"audio_codec": None, "audio_sample_rate": None, "audio_channels": None},
     "no audio stream"),
    ({"video_codec": None, "width": None, "height": None}, "no video stream"),
    ({"video_codec": "hevc"}, "video codec hevc, expected h264"),
    ({"audio_codec": "mp3"}, "audio codec mp3, expected aac"),
    ({"pix_fmt": "yuv444p"}, "pixel format yuv444p, expected yuv420p"),
    ({"bytes": 290 * 1000 * 1000}, "too large: 290.0 MB (limit 287.6 MB)"),
    ({"bytes": 0}, "empty file"),
    ({"fps": 15.0}, "frame rate 15 fps outside 23-60 fps"),
    ({"audio_sample_rate": 96000}, "audio sample rate 96000 Hz above 48000 Hz"),
    ({"sample_aspect_ratio": "4:3"}, "non-square pixels (SAR 4:3)"),
    ({"has_moov_at_front": False}, "moov atom is not before mdat (not +faststart)"),
    ({"fully_decoded": False}, "not verified: the file was not fully decoded"),
    ({"decodable": False, "error": "truncated: box 'mdat'"},
     "not decodable: truncated: box 'mdat'"),
])
def test_integrity_rule(change: dict[str, object], expected: str) -> None:
    assert check_integrity(GOOD) == []
    problems = check_integrity(replace(GOOD, **change))
    assert any(problem.startswith(expected) for problem in problems), problems
    report = integrity_report(replace(GOOD, **change))
    assert not report.ok and expected in report.summary
    assert report.metadata()["problems"] == problems


def test_integrity_limits_for_other_sizes_and_platforms() -> None:
    hd = replace(GOOD, width=720, height=1280)
    assert check_integrity(hd) != []
    assert check_integrity(hd, IntegrityLimits(exact_size=None)) == []
    assert check_integrity(replace(hd, width=720, height=1000),
                           IntegrityLimits(exact_size=None)) == ["aspect ratio of 720x1000 is "
                                                                 "not 9:16"]
    assert BRANDED_LIMITS.max_bytes == PLATFORM_MAX_BYTES["tiktok"] == 287_600_000
    assert IntegrityLimits.for_platforms(["instagram"]).max_bytes == 300 * 1000 * 1000
    assert IntegrityLimits.for_platforms(["youtube", "instagram"]).max_bytes == 300_000_000
    big = replace(GOOD, bytes=295_000_000)
    assert check_integrity(big, IntegrityLimits.for_platforms(["instagram"])) == []
    assert check_integrity(big, IntegrityLimits.for_platforms(["tiktok", "instagram"])) != []


def test_default_resource_uses_imageio_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FFMPEG_PATH", raising=False)
    assert FfmpegResource(ffmpeg_path=None).executable() in (
        FFMPEG, ffmpeg_mod.get_settings().get("FFMPEG_PATH"))
    assert FfmpegResource(ffmpeg_path="/opt/ffmpeg").executable() == "/opt/ffmpeg"


def test_the_command_places_every_watermark_position_the_roster_accepts() -> None:
    assert set(CORNERS) == set(WATERMARK_POSITIONS)
