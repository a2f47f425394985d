"""Upload throughput to the sandbox: our platform clients against curl, and their memory.

    python -m benchmarks.upload [--sizes-mb 50,200] [--runs 3] [--platforms tiktok,...]
                                [--sandbox-url URL] [--docs PATH] [--no-docs]

The sandbox runs in this (the parent) process, in a thread, on a free loopback port (or the one
at `--sandbox-url`); it spools every upload to disk, never holding a file in memory. A file of
deterministic bytes is streamed to disk once per size. For each platform, size and run, in turn:

- ours: a fresh Python subprocess builds the client as its Dagster resource does, makes the
  untimed set-up call (TikTok `init_direct_post`, YouTube `start_upload`, Instagram
  `create_reel_container(resumable=True)`), takes its peak RSS (`ru_maxrss`) as the baseline,
  then times the upload call social publishing makes (`TikTokClient.upload`,
  `YouTubeClient.upload`, `InstagramClient.upload_resumable`); the rise of `ru_maxrss` is the
  memory the upload cost (a 5 ms psutil sampler cross-checks it). The sandbox's memory is in
  the parent, so it is not counted.
- curl: the parent makes the same set-up call on a new account, then ONE curl process sends the
  same byte ranges to the same URLs with the same method and headers, one `--next` request per
  chunk on a reused connection, each body streamed from a pre-cut file of that chunk (`-T`;
  curl cannot upload a byte range of a file). `Expect:` is blanked so curl does not wait for a
  100 Continue. Unlike our YouTube and Instagram clients it does not first ask the server for
  its offset. Cutting the chunk files is not timed.

Both times run to the answer of the last chunk, so they include the sandbox's own work on the
complete file (sha256 and format check), which is the same for both. Every upload is verified by
the sha256 the sandbox recorded. Results: docs/benchmarks.md, section "## Upload: ...".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import httpx

from benchmarks.memory import watch_rss
from benchmarks.report import DOCS, machine, write_section
from benchmarks.storage_memory import chunks

MB = 1_000_000
PLATFORMS = ("tiktok", "youtube", "instagram")
HEADING = "## Upload: our clients vs curl to the sandbox"
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0  # HTTP_TIMEOUT_SECONDS' default, what the resources use
# RSS may rise by this much between the smallest and the largest file before it counts as
# growing with the file (allocator noise, lazily imported modules), or 5% of the size gap.
GROWTH_SLACK_MB = 8.0
_accounts = count(1)


# --- the payload -----------------------------------------------------------------------------

def make_file(path: Path, size: int) -> str:
    """Stream `size` deterministic bytes (1 MiB at a time) to `path`; their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for part in chunks(size):
            digest.update(part)
            out.write(part)
    return digest.hexdigest()


def cut(path: Path, ranges: Sequence[tuple[int, int]], into: Path) -> list[Path]:
    """Copy each (first, length) range of `path` to its own file (curl's bodies), 1 MiB a go."""
    from resources.http import file_range

    into.mkdir(parents=True, exist_ok=True)
    files = []
    for index, (first, length) in enumerate(ranges):
        target = into / f"chunk-{index:04d}"
        with target.open("wb") as out:
            for piece in file_range(path, first, length):
                out.write(piece)
        files.append(target)
    return files


# --- one upload, prepared on the sandbox -----------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """One request of an upload: what curl sends for a chunk (and what our client sends)."""

    method: str
    url: str
    first: int
    length: int
    headers: tuple[tuple[str, str], ...]
    accepted: tuple[int, ...]  # statuses that mean the chunk was taken


@dataclass
class Prepared:
    platform: str
    key: str  # publish_id / upload_id / container id: finds the upload in the sandbox
    upload: Callable[[], None]  # our client's upload call, as social publishing makes it
    pieces: list[Piece]
    close: Callable[[], None] = field(default=lambda: None)


def new_account(platform: str) -> str:
    """A sandbox account of its own for every upload: no rate, quota or cap is shared."""
    return f"bench{platform[:2]}{os.getpid()}t{time.time_ns() // 1000 % 10**10}n{next(_accounts)}"


def ranges_of(size: int, chunk: int) -> list[tuple[int, int]]:
    """(first, length) of consecutive `chunk`-byte pieces, the last one shorter."""
    return [(first, min(chunk, size - first)) for first in range(0, size, chunk)]


def prepare_tiktok(base: str, account: str, path: Path) -> Prepared:
    from resources.tiktok import TikTokClient, content_type_for, tiktok_limits

    token = f"act.sandbox.{account}"
    client = TikTokClient(lambda: token, base_url=f"{base}/tiktok", timeout=TIMEOUT,
                          limits=tiktok_limits(max_wait=30.0))
    size = path.stat().st_size
    init = client.init_direct_post("upload benchmark #AIgenerated", size,
                                   privacy_level="PUBLIC_TO_EVERYONE", is_aigc=True)
    kind = content_type_for(path)
    pieces = [Piece("PUT", init.upload_url, first, last - first + 1,
                    (("Content-Type", kind), ("Content-Range", f"bytes {first}-{last}/{size}")),
                    (201,) if last + 1 == size else (206,))
              for first, last in init.chunks]
    return Prepared("tiktok", init.publish_id,
                    lambda: client.upload(init.upload_url, path, init.chunks), pieces,
                    client.close)


def prepare_youtube(base: str, account: str, path: Path) -> Prepared:
    from resources.youtube import (
        DEFAULT_CHUNK_SIZE,
        SANDBOX_CLIENT_SECRET,
        YouTubeClient,
        refresh_token,
    )

    # Its own API project (client id) too: the sandbox counts the 10,000 daily units per project.
    tokens = refresh_token(f"{base}/youtube/oauth2", f"{account}.apps.googleusercontent.com",
                           SANDBOX_CLIENT_SECRET, f"1//sandbox-{account}")
    client = YouTubeClient(lambda: tokens.access_token, base_url=f"{base}/youtube",
                           timeout=TIMEOUT)
    size = path.stat().st_size
    session = client.start_upload(
        {"title": "upload benchmark", "description": "#AIgenerated", "categoryId": "22"},
        {"privacyStatus": "public", "selfDeclaredMadeForKids": False,
         "containsSyntheticMedia": True}, size)
    upload_id = httpx.URL(session).params["upload_id"]
    pieces = [Piece("PUT", session, first, length,
                    (("Content-Type", "video/mp4"),
                     ("Content-Range", f"bytes {first}-{first + length - 1}/{size}")),
                    (200, 201) if first + length == size else (308,))
              for first, length in ranges_of(size, DEFAULT_CHUNK_SIZE)]

    def upload() -> None:
        client.upload(session, path)  # YouTubeFlow's call: default chunk size

    return Prepared("youtube", upload_id, upload, pieces, client.close)


def prepare_instagram(base: str, account: str, path: Path) -> Prepared:
    from resources.instagram import DEFAULT_CHUNK_BYTES, InstagramClient, lookup_user

    token = f"IGAAsandbox{account}"
    graph = f"{base}/instagram"
    user = lookup_user(graph, token, timeout=TIMEOUT)
    client = InstagramClient(lambda: token, user.id, base_url=graph,
                             rupload_base=f"{graph}/rupload", timeout=TIMEOUT,
                             chunk_bytes=DEFAULT_CHUNK_BYTES)
    container = client.create_reel_container("upload benchmark #AIgenerated", resumable=True)
    uri = container.upload_uri
    if uri is None:
        raise RuntimeError("instagram: the resumable container has no upload URI")
    size = path.stat().st_size
    pieces = [Piece("POST", uri, first, length,
                    (("Authorization", f"OAuth {token}"), ("offset", str(first)),
                     ("file_size", str(size)), ("Content-Type", "application/octet-stream")),
                    (200,))
              for first, length in ranges_of(size, DEFAULT_CHUNK_BYTES)]
    return Prepared("instagram", container.id, lambda: client.upload_resumable(uri, path),
                    pieces, client.close)


PREPARE: dict[str, Callable[[str, str, Path], Prepared]] = {
    "tiktok": prepare_tiktok, "youtube": prepare_youtube, "instagram": prepare_instagram}


def recorded_sha256(base: str, platform: str, key: str) -> str | None:
    """The sha256 the sandbox computed over the bytes it received for this upload."""
    with httpx.Client(base_url=base, timeout=TIMEOUT, trust_env=False) as http:
        if platform == "tiktok":
            rows = http.get("/tiktok/_control/posts").raise_for_status().json()
            return next((r.get("video_sha256") for r in rows if r.get("publish_id") == key),
                        None)
        if platform == "youtube":
            rows = http.get("/youtube/_control/published").raise_for_status().json()["videos"]
            return next((r.get("sha256") for r in rows if r.get("upload_id") == key), None)
        rows = http.get("/instagram/_control/containers").raise_for_status().json()
        return next((r.get("sha256") for r in rows if r.get("id") == key), None)


# --- ours: the measured child ----------------------------------------------------------------

def child(platform: str, base: str, path: Path) -> dict[str, Any]:
    """In a fresh interpreter: set up (untimed), then time the upload and watch the memory."""
    prepared = PREPARE[platform](base, new_account(platform), path)
    with watch_rss() as memory:
        cpu_started, started = time.process_time(), time.perf_counter()
        prepared.upload()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started  # user + sys of every thread (sampler included)
    prepared.close()
    return {"key": prepared.key, "seconds": seconds, "cpu_s": cpu,
            "requests": len(prepared.pieces),
            "maxrss_increase_mb": memory.maxrss_increase_mb,
            "sampled_increase_mb": memory.sampled_increase_mb,
            "peak_maxrss_mb": memory.peak_maxrss_mb}


def run_ours(platform: str, base: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.upload", "--child", platform, "--sandbox-url", base,
         "--file", str(path)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"upload benchmark child ({platform}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the baseline: curl ----------------------------------------------------------------------

def curl_command(pieces: Sequence[Piece], bodies: Sequence[Path]) -> list[str]:
    """One curl process, one request per chunk (`--next`), the body streamed from its file."""
    if len(pieces) != len(bodies):
        raise ValueError("one body file per piece")
    command = ["curl"]
    for index, (piece, body) in enumerate(zip(pieces, bodies, strict=True)):
        if index:
            command.append("--next")
        command += ["-sS", "-o", "/dev/null", "-w", "%{http_code}\\n", "-X", piece.method,
                    "-T", str(body), "-H", "Expect:"]
        for name, value in piece.headers:
            command += ["-H", f"{name}: {value}"]
        # -T appends the file's name to a URL whose path ends in "/" (TikTok's upload_url):
        # send the URL's own path and query instead.
        url = httpx.URL(piece.url)
        command += ["--request-target", url.raw_path.decode("ascii"), piece.url]
    return command


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_curl(prepared: Prepared, bodies: Sequence[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of curl) for one upload; the statuses are checked."""
    command = curl_command(prepared.pieces, bodies)
    cpu_started, started = _children_cpu(), time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu_started
    codes = [int(c) for c in out.stdout.split()]
    wanted = [p.accepted for p in prepared.pieces]
    if out.returncode != 0 or len(codes) != len(wanted) or any(
            c not in w for c, w in zip(codes, wanted, strict=True)):
        raise RuntimeError(f"curl {prepared.platform} upload failed (exit {out.returncode}, "
                           f"statuses {codes}): {out.stderr[-500:]}")
    return seconds, cpu


# --- the run ---------------------------------------------------------------------------------

def measure(base: str, platforms: Sequence[str], sizes_mb: Sequence[int], runs: int,
            work: Path) -> list[dict[str, Any]]:
    """One row per platform and size: medians of `runs` interleaved runs of ours and curl."""
    rows = []
    for size_mb in sizes_mb:
        size = size_mb * MB
        path = work / f"upload-{size_mb}mb.mp4"
        sha = make_file(path, size)
        if "instagram" in platforms:  # the sandbox refuses files over its Reels limit
            with httpx.Client(base_url=base, timeout=TIMEOUT, trust_env=False) as http:
                limit = http.get("/instagram/_control/config").raise_for_status().json()
                if limit.get("max_video_bytes", 0) < size:
                    http.post("/instagram/_control/config",
                              json={"max_video_bytes": size}).raise_for_status()
        for platform in platforms:
            ours, curls, curl_cpus, server_cpus, verified = [], [], [], [], True
            bodies: list[Path] | None = None
            for _ in range(runs):
                # This process's CPU while it waits is the sandbox thread's (when it runs here).
                server_started = time.process_time()
                result = run_ours(platform, base, path)
                server_cpus.append(time.process_time() - server_started)
                verified &= recorded_sha256(base, platform, result["key"]) == sha
                ours.append(result)
                prepared = PREPARE[platform](base, new_account(platform), path)
                try:
                    if bodies is None:
                        bodies = cut(path, [(p.first, p.length) for p in prepared.pieces],
                                     work / f"{platform}-{size_mb}")
                    server_started = time.process_time()
                    seconds, cpu = run_curl(prepared, bodies)
                    server_cpus.append(time.process_time() - server_started)
                    curls.append(seconds)
                    curl_cpus.append(cpu)
                finally:
                    prepared.close()
                verified &= recorded_sha256(base, platform, prepared.key) == sha
            shutil.rmtree(work / f"{platform}-{size_mb}", ignore_errors=True)
            ours_s = statistics.median(r["seconds"] for r in ours)
            curl_s = statistics.median(curls)
            rows.append({
                "platform": platform, "size_mb": size_mb, "requests": ours[0]["requests"],
                "ours_s": round(ours_s, 3), "curl_s": round(curl_s, 3),
                "ratio": round(ours_s / curl_s, 2),
                "ours_mb_s": round(size_mb / ours_s, 1), "curl_mb_s": round(size_mb / curl_s, 1),
                "ours_cpu_s": round(statistics.median(r["cpu_s"] for r in ours), 3),
                "curl_cpu_s": round(statistics.median(curl_cpus), 3),
                "sandbox_cpu_s": round(statistics.median(server_cpus), 3),
                "ours_runs_s": [round(r["seconds"], 3) for r in ours],
                "curl_runs_s": [round(s, 3) for s in curls],
                # ru_maxrss only moves above the high-water mark of the imports, the sampler
                # can miss a spike between samples: the larger of the two, worst run.
                "rss_increase_mb": round(max(max(r["maxrss_increase_mb"],
                                                 r["sampled_increase_mb"]) for r in ours), 1),
                "maxrss_increase_mb": round(max(r["maxrss_increase_mb"] for r in ours), 1),
                "sampled_increase_mb": round(max(r["sampled_increase_mb"] for r in ours), 1),
                "peak_rss_mb": round(max(r["peak_maxrss_mb"] for r in ours), 1),
                "sha256_ok": verified})
        path.unlink()
    return rows


def memory_verdicts(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per platform: does the RSS increase grow from the smallest to the largest file?"""
    verdicts = {}
    for platform in dict.fromkeys(r["platform"] for r in rows):
        mine = sorted((r for r in rows if r["platform"] == platform), key=lambda r: r["size_mb"])
        small, large = mine[0], mine[-1]
        if small is large:
            continue  # one size: nothing to compare
        growth = large["rss_increase_mb"] - small["rss_increase_mb"]
        allowed = max(GROWTH_SLACK_MB, 0.05 * (large["size_mb"] - small["size_mb"]))
        verdicts[platform] = {"small_mb": small["size_mb"], "large_mb": large["size_mb"],
                              "growth_mb": round(growth, 1), "allowed_mb": round(allowed, 1),
                              "constant": growth <= allowed}
    return verdicts


# --- report ----------------------------------------------------------------------------------

PROTOCOL = {
    "tiktok": "FILE_UPLOAD: PUT per chunk, Content-Range (10 MB chunks, last takes the rest)",
    "youtube": "resumable session: PUT per chunk, Content-Range (8 MiB chunks), 308 between",
    "instagram": "rupload: POST per chunk, `offset` + `file_size` headers (32 MiB chunks)",
}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    sizes = ", ".join(f"{s} MB" for s in result["sizes_mb"])
    lines = [
        HEADING,
        "",
        f"Measured {result['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, {m['os']}, {result['curl']}. `python -m benchmarks.upload` "
        f"(files of {sizes}; {result['runs']} runs each, ours and curl interleaved; times are "
        "medians).",
        "",
        "The sandbox runs in the harness process on a loopback port and spools uploads to disk. "
        "Ours: a fresh subprocess per run makes the untimed set-up call (TikTok init, YouTube "
        "videos.insert session, Instagram resumable container), then the timed call social "
        "publishing makes: `TikTokClient.upload`, `YouTubeClient.upload` (starts with a "
        "session probe), `InstagramClient.upload_resumable` (starts with an offset GET), "
        "each chunk streamed from the file 1 MiB at a time through the shared HTTP layer. "
        "Curl: the same set-up on a fresh account, then one curl process sending the same "
        "chunks to the same URL with the same method and headers, one `--next` request per "
        "chunk on a reused connection, each body streamed from a pre-cut file of that chunk "
        "(`-T`, `Expect:` blanked; cutting is not timed), no probe. Both times end with the "
        "answer to the last chunk, so both include the sandbox hashing and checking the whole "
        "file. Memory: the larger of the rise of our process's `ru_maxrss` over its value after "
        "the set-up call and the rise of its RSS sampled every 5 ms (worst run); the sandbox "
        "is in another process and not counted.",
        "",
        "| platform | protocol | file | ours | curl | ratio ours/curl | ours MB/s | curl MB/s "
        "| CPU ours / curl | sandbox CPU | peak RSS increase | sha256 verified |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        server = f"{r['sandbox_cpu_s']:.2f} s" if result["sandbox_in_process"] else "n/a"
        lines.append(
            f"| {r['platform']} | {PROTOCOL[r['platform']]}; {r['requests']} "
            f"request{'' if r['requests'] == 1 else 's'} | "
            f"{r['size_mb']} MB | {r['ours_s']:.2f} s | {r['curl_s']:.2f} s | {r['ratio']:.2f} | "
            f"{r['ours_mb_s']:.0f} | {r['curl_mb_s']:.0f} | "
            f"{r['ours_cpu_s']:.2f} s / {r['curl_cpu_s']:.2f} s | {server} | "
            f"{r['rss_increase_mb']:.1f} MB | "
            f"{r['sha256_ok']} |")
    lines += ["", "Constant memory (RSS increase at the largest file minus at the smallest; "
                  f"allowed: the larger of {GROWTH_SLACK_MB:.0f} MB and 5% of the size gap):", ""]
    if not result["memory"]:
        lines.append("- one file size only: run with two sizes to compare.")
    for platform, v in result["memory"].items():
        word = "PASS" if v["constant"] else "FAIL"
        lines.append(f"- {platform}: {v['large_mb']} MB vs {v['small_mb']} MB: "
                     f"{v['growth_mb']:+.1f} MB (allowed {v['allowed_mb']:.0f} MB): {word}")
    runs = "; ".join(f"{r['platform']} {r['size_mb']} MB ours "
                     f"{', '.join(f'{s:.2f}' for s in r['ours_runs_s'])} / curl "
                     f"{', '.join(f'{s:.2f}' for s in r['curl_runs_s'])}"
                     for r in result["rows"])
    lines += ["", f"Runs (s): {runs}. Load average (1 min) {result['load_before']} before, "
                  f"{result['load_after']} after; sandbox, client and curl share the cores.", ""]
    lines += [reading(result), ""]
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> str:
    """How to read the wall ratio: who set the pace, and what the client itself cost."""
    large = max(result["sizes_mb"])
    rows = [r for r in result["rows"] if r["size_mb"] == large]
    ours = ", ".join(f"{r['platform']} {r['ours_cpu_s']:.2f} s vs {r['curl_cpu_s']:.2f} s"
                     for r in rows)
    text = (f"Client CPU for {large} MB (user + sys, ours includes the 5 ms RSS sampler): "
            f"{ours}.")
    if result["sandbox_in_process"]:
        shares = [r["sandbox_cpu_s"] / r["curl_s"] for r in rows]
        text += (f" The sandbox's own CPU per upload is {min(shares):.0%}-{max(shares):.0%} of "
                 "curl's wall time: it is a Python server (h11, a sha256 of every body for its "
                 "journal, file writes) sharing the cores, and it sets the pace for both "
                 "clients, so the wall ratio shows that our client adds little to an upload "
                 "against this server, while the CPU column is the client's own cost.")
    return text


def curl_version() -> str:
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split()[:2])


def run(base: str, platforms: Sequence[str], sizes_mb: Sequence[int], runs: int,
        work: Path, *, sandbox_in_process: bool) -> dict[str, Any]:
    before = machine()
    rows = measure(base, platforms, sizes_mb, runs, work)
    memory = memory_verdicts(rows)
    result = {
        "benchmark": "upload", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": before, "curl": curl_version(), "sizes_mb": list(sizes_mb), "runs": runs,
        "rows": rows, "memory": memory, "load_before": before["load_1m"],
        "load_after": round(os.getloadavg()[0], 2), "sandbox_in_process": sandbox_in_process,
    }
    result["passed"] = all(r["sha256_ok"] for r in rows) and all(
        v["constant"] for v in memory.values())
    return result


def _int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("give positive integers separated by commas")
    return sorted(set(values))


def _platforms(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = sorted(set(names) - set(PLATFORMS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown platform(s) {unknown}; known: {PLATFORMS}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=_int_list, default=[50, 200],
                        help="file sizes in MB (10^6 bytes); the largest is the headline, the "
                             "smallest shows whether memory grows with the file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platforms", type=_platforms, default=list(PLATFORMS))
    parser.add_argument("--sandbox-url", help="use this running sandbox instead of starting one")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--child", choices=PLATFORMS, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.sandbox_url, args.file)))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="wg-bench-upload-"))
    try:
        if args.sandbox_url:
            result = run(args.sandbox_url.rstrip("/"), args.platforms, args.sizes_mb,
                         args.runs, work, sandbox_in_process=False)
        else:
            from sandbox.server import SandboxServer

            with SandboxServer(work / "sandbox") as server:
                result = run(server.url, args.platforms, args.sizes_mb, args.runs, work,
                             sandbox_in_process=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(render(result), "## Upload:", docs=args.docs)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
