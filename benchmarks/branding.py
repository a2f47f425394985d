"""Branding benchmark: FfmpegResource.brand() against the same ffmpeg command run directly.

A 15 s 1080x1920 30 fps clip with AAC audio (lavfi testsrc2 + sine, made once and cached in
the temp directory) is branded with a text + logo watermark and the production EncodeSpec
(H.264 High crf 23 preset medium, AAC 128k), three ways, interleaved, `--runs` times each:

- `brand()`: the resource as the asset calls it (header probe of the input, the ffmpeg pass
  into a temp file, fsync + atomic rename, full-decode probe of the output);
- `brand(verify=False)`: the same with a header-only probe of the output;
- raw: the ffmpeg command typed out below, same filter graph string, same encoder options,
  run with subprocess.

Reported: medians, ratios ours/raw and "times realtime" (15 s / elapsed). The section
"## Branding: 15 s 1080x1920 clip" of docs/benchmarks.md is written (or replaced).

    python -m benchmarks.branding [--runs 3] [--no-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from benchmarks.report import machine, write_section
from resources.ffmpeg import FfmpegResource, probe_file
from resources.ffmpeg_command import DEFAULT_SPEC, build_brand_command, filter_graph, find_font_file
from waifugen_assets.roster.model import Watermark
from waifugen_assets.videos.branding import check_integrity

HEADING = "## Branding: 15 s 1080x1920 clip"
SECONDS = 15
WORK = Path(tempfile.gettempdir()) / "waifugen-bench-branding"
WATERMARK = Watermark(text="@bench.creator", image="logo.png", position="bottom-right",
                      opacity=0.8)


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_inputs() -> tuple[Path, Path]:
    """The source clip and the logo, generated once."""
    WORK.mkdir(parents=True, exist_ok=True)
    src = WORK / f"src-1080x1920-{SECONDS}s.mp4"
    logo = WORK / "logo.png"
    base = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    if not src.exists():
        tmp = src.with_suffix(".tmp.mp4")
        subprocess.run([
            *base,
            "-f", "lavfi", "-i", f"testsrc2=s=1080x1920:r=30:d={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:d={SECONDS}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(tmp),
        ], check=True)
        tmp.replace(src)
    if not logo.exists():
        subprocess.run([*base, "-f", "lavfi", "-i", "color=c=0xff3366:s=256x128",
                        "-frames:v", "1", str(logo)], check=True)
    return src, logo


def raw_command(src: Path, logo: Path, font: str, out: Path) -> list[str]:
    """The branding pass typed out by hand: what an operator would run in a shell."""
    graph = (
        "[0:v:0]fps=fps=30[s0];"
        "[s0]scale=force_divisible_by=2:force_original_aspect_ratio=decrease:h=1920:w=1080[s1];"
        "[s1]pad=color=black:h=1920:w=1080:x=(ow-iw)/2:y=(oh-ih)/2[s2];"
        "[s2]setsar=1[s3];"
        "[1:v:0]scale=force_original_aspect_ratio=decrease:h=216:w=216[s4];"
        "[s4]format=rgba[s5];"
        "[s5]colorchannelmixer=aa=0.8[s6];"
        "[s3][s6]overlay=eof_action=repeat:x=main_w-overlay_w-48:y=main_h-overlay_h-48[s7];"
        "[s7]drawtext=bordercolor=black@0.8:borderw=3:expansion=none:fontcolor=white@0.8:"
        f"fontfile={font}:fontsize=56:text=@bench.creator:x=w-tw-48:y=h-th-276[s8];"
        "[s8]format=yuv420p[s9]"
    )
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-xerror",
        "-y",
        "-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm",
        "-protocol_whitelist", "file", "-i", f"file:{src}",
        "-format_whitelist", "png_pipe,jpeg_pipe,webp_pipe",
        "-protocol_whitelist", "file", "-i", f"file:{logo}",
        "-filter_complex", graph,
        "-map", "[s9]", "-map", "0:a:0",
        "-f", "mp4",
        "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-profile:v", "high",
        "-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-flags", "+cgop", "-maxrate", "20M", "-bufsize", "40M",
        "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
        "-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart",
        f"file:{out}",
    ]


def _options(cmd: list[str]) -> list[tuple[str, ...]]:
    """A command as (input options + input) groups, the graph and sorted output options."""
    i = cmd.index("-filter_complex")
    head, graph, tail = cmd[:i], cmd[i + 1], cmd[i + 2:-1]
    pairs = sorted(zip(tail[::2], tail[1::2], strict=False))
    return [tuple(head), (graph,), *pairs]


def same_command(raw: list[str], ours: list[str]) -> bool:
    return _options(raw) == _options(ours)


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Any) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, its threads and waited-for children)."""
    cpu0, started = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - started, _cpu() - cpu0


def ffmpeg_version() -> str:
    first = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True,
                           text=True, check=False).stdout.split("\n", 1)[0]
    return first.replace("ffmpeg version ", "").split(" Copyright")[0]


def run(runs: int) -> dict[str, Any]:
    src, logo = make_inputs()
    load_before = round(os.getloadavg()[0], 2)
    font = find_font_file()
    if font is None:
        raise SystemExit("no font file found for the text watermark (install fonts-dejavu)")
    res = FfmpegResource(ffmpeg_path=ffmpeg_exe(), font_file=font, watermark_dir=str(WORK))
    out_ours, out_raw = WORK / "branded-ours.mp4", WORK / "branded-raw.mp4"

    # The typed-out command must be the one brand() runs (apart from the output path).
    source = probe_file(src, full_decode=False)
    ours_cmd = build_brand_command(src, out_raw, WATERMARK, DEFAULT_SPEC, ffmpeg_exe(),
                                   has_audio=source.has_audio, source_fps=source.fps,
                                   font_file=font, base_dir=WORK)
    raw = raw_command(src, logo, font, out_raw)
    if not same_command(raw, ours_cmd):
        print("warning: the typed-out command differs from brand()'s:\n"
              f"  raw:  {filter_graph(raw)}\n  ours: {filter_graph(ours_cmd)}", file=sys.stderr)

    variants = {
        "raw": lambda: subprocess.run(raw, check=True),
        "ours": lambda: res.brand(src, out_ours, WATERMARK),
        "ours_noverify": lambda: res.brand(src, out_ours, WATERMARK, verify=False),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    variants["raw"]()  # warm-up: page cache, binary, fonts
    for i in range(runs):
        for name, fn in variants.items():
            wall, used = timed(fn)
            times[name].append(wall)
            cpu[name].append(used)
        print(f"run {i + 1}/{runs}: " + ", ".join(
            f"{k} {times[k][-1]:.2f} s ({cpu[k][-1]:.1f} s CPU)" for k in variants),
            file=sys.stderr)
    probe = probe_file(out_ours)
    medians = {k: statistics.median(v) for k, v in times.items()}
    cpu_medians = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "benchmark": "branding",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {**machine(), "ffmpeg": ffmpeg_version()},
        "runs": runs,
        "same_command": same_command(raw, ours_cmd),
        "times_s": times,
        "median_s": medians,
        "cpu_s": cpu,
        "median_cpu_s": cpu_medians,
        "cpu_ratio": cpu_medians["ours"] / cpu_medians["raw"],
        "cpu_ratio_noverify": cpu_medians["ours_noverify"] / cpu_medians["raw"],
        "load_1m_before": load_before,
        "ratio": medians["ours"] / medians["raw"],
        "ratio_noverify": medians["ours_noverify"] / medians["raw"],
        "realtime": {k: SECONDS / v for k, v in medians.items()},
        "verify_s": medians["ours"] - medians["ours_noverify"],
        "output": {"bytes": probe.bytes, "width": probe.width, "height": probe.height,
                   "video_codec": probe.video_codec, "profile": probe.video_profile,
                   "fps": probe.fps, "duration_s": probe.duration_s,
                   "integrity_problems": check_integrity(probe)},
        "source_bytes": src.stat().st_size,
    }


def render(r: dict[str, Any]) -> str:
    m, med, rt, out = r["machine"], r["median_s"], r["realtime"], r["output"]
    cpu = r["median_cpu_s"]
    return "\n".join([
        HEADING,
        "",
        f"Measured {r['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, ffmpeg {m['ffmpeg']} "
        f"(imageio-ffmpeg). `python -m benchmarks.branding` ({r['runs']} runs each, "
        "interleaved; medians).",
        "",
        f"Source: {SECONDS} s 1080x1920 30 fps H.264 + AAC "
        f"({r['source_bytes'] / 1e6:.1f} MB, lavfi testsrc2 + sine). Pass: text + logo "
        "watermark, production EncodeSpec (libx264 High, crf 23, preset medium, closed GOP "
        "of 60, AAC 128k 48 kHz, +faststart). The raw command is typed out in "
        f"benchmarks/branding.py; identical to brand()'s command: {r['same_command']}.",
        "",
        "| run | median wall | times realtime | ratio to raw | median CPU | CPU ratio |",
        "|---|---|---|---|---|---|",
        f"| raw ffmpeg command | {med['raw']:.2f} s | {rt['raw']:.2f}x | 1.00 "
        f"| {cpu['raw']:.1f} s | 1.00 |",
        f"| `FfmpegResource.brand()` (full-decode verify of the output) | {med['ours']:.2f} s "
        f"| {rt['ours']:.2f}x | {r['ratio']:.2f} | {cpu['ours']:.1f} s "
        f"| {r['cpu_ratio']:.2f} |",
        f"| `brand(verify=False)` (header-only probe) | {med['ours_noverify']:.2f} s | "
        f"{rt['ours_noverify']:.2f}x | {r['ratio_noverify']:.2f} "
        f"| {cpu['ours_noverify']:.1f} s | {r['cpu_ratio_noverify']:.2f} |",
        "",
        "Wall-clock runs (s): " + "; ".join(
            f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in r["times_s"].items())
        + f". Load average (1 min) {r['load_1m_before']} before, {m['load_1m']} after: the "
        "machine is shared, so CPU time (user + sys of the process, its threads and ffmpeg) "
        "is the steadier comparison.",
        "",
        f"The full decode of the branded file costs {r['verify_s']:.2f} s of that. Output: "
        f"{out['width']}x{out['height']} {out['video_codec']} ({out['profile']}), "
        f"{out['fps']:g} fps, {out['duration_s']:.2f} s, {out['bytes'] / 1e6:.1f} MB; "
        f"integrity problems: {out['integrity_problems'] or 'none'}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.runs)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(render(result), HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
