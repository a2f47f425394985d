"""Storage and branding stages: `stored_videos` and `branded_videos`.

stored_videos: each generated reel's video is downloaded (streaming, SSRF-checked, size-capped),
probed, and kept under its content address; a corrupt or truncated file fails that reel with
the reason, the others carry on. branded_videos: one ffmpeg pass per reel (watermark,
1080x1920, H.264/AAC, faststart), the output fully decoded and checked, then stored. The
blocking `video_integrity` check re-reads every branded video of the partition from the store
before anything downstream (publishing) may run.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects.postgresql import insert

from resources.database import DatabaseResource
from resources.ffmpeg import FfmpegResource
from resources.ffmpeg_command import BrandingError, EncodeSpec
from resources.http import HttpError
from resources.url_policy import UnsafeUrl, content_key
from resources.video_store import (
    Downloaded,
    DownloadError,
    StorageError,
    StoredObject,
    VideoStoreResource,
)
from waifugen_assets.core import schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import ConfigError, get_settings, read_setting
from waifugen_assets.pipeline.catalog import (
    CONTENT_TEAM,
    cell,
    check_result,
    md_table,
    reasons_table,
    row_counts,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.rendering.assets import reels
from waifugen_assets.roster.model import Watermark
from waifugen_assets.videos.branding import IntegrityLimits, check_integrity, integrity_report

INTEGRITY_CHECK = "video_integrity"
DOWNLOAD_TRIES = 3  # a truncated transfer is worth another try; a bad file is not


def configured_store_kind() -> str:
    """The video store the settings name (`local` or `s3`), read when the code location
    loads: kinds are fixed at definition time. Only VIDEO_STORE is read, so loading needs no
    secret; a run's VideoStoreResource.backend could still differ, and wins for that run."""
    name = read_setting("VIDEO_STORE", os.environ) or "local"
    if name not in ("local", "s3"):
        raise ConfigError(f"VIDEO_STORE={name!r}: expected local or s3")
    return name


STORE_KIND = configured_store_kind()


def _video_counts(conn: sa.Connection, variant: str, character_id: str,
                  day: Any) -> dict[str, object]:
    r, v = schema.reels, schema.videos
    rows = sa.select(v.c.id).where(v.c.variant == variant)
    return row_counts(conn, rows, rows.join_from(v, r, r.c.id == v.c.reel_id).where(
        r.c.character_id == character_id, r.c.date == day))


def _reels_in(engine: sa.Engine, character_id: str, day: Any, status: str) -> list[dict]:
    r = schema.reels
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(
            sa.select(r).where(r.c.character_id == character_id, r.c.date == day,
                               r.c.status == status).order_by(r.c.tier, r.c.slot)).mappings()]


def _claimed(engine: sa.Engine, claims: Claims, reels: list[dict],
             status: str) -> Iterator[dict]:
    """The reels this run may work on: claimed (another run is not on them) and, read after
    the claim, still at `status`. Each claim is released when the caller moves on."""
    r = schema.reels
    for reel in reels:
        if not claims.take("reel", reel["id"]):
            continue
        try:
            with engine.connect() as conn:
                now = conn.scalar(sa.select(r.c.status).where(r.c.id == reel["id"]))
            if now == status:
                yield reel
        finally:
            claims.release("reel", reel["id"])


def _set_status(conn: sa.Connection, reel_id: int, status: str,
                reason: str | None = None) -> None:
    conn.execute(sa.update(schema.reels).where(schema.reels.c.id == reel_id).values(
        status=status, failure_reason=reason[:1000] if reason else None,
        updated_at=sa.func.now()))


def _fail(engine: sa.Engine, reel_id: int, reason: str) -> None:
    with engine.begin() as conn:
        _set_status(conn, reel_id, "failed", reason)


def _save_video(conn: sa.Connection, reel_id: int, variant: str, stored: StoredObject,
                file_facts: dict[str, Any]) -> None:
    v = schema.videos
    conn.execute(insert(v).values(
        reel_id=reel_id, variant=variant, storage_backend=stored.backend,
        storage_key=stored.key, public_url=stored.public_url, sha256=stored.sha256,
        bytes=stored.bytes, **{k: file_facts.get(k) for k in
                               ("duration_ms", "width", "height", "video_codec", "audio_codec")},
    ).on_conflict_do_nothing(index_elements=[v.c.reel_id, v.c.variant]))


def _download(video_store: VideoStoreResource, url: str,
              scratch: Path) -> tuple[Downloaded | None, str | None, bool]:
    """(file, why there is none, whether a later run may succeed). Truncated transfers are
    tried again at once; an unreachable server is left for the next run; an unsafe URL or a
    file the provider no longer has fails the reel."""
    reason = None
    for _ in range(DOWNLOAD_TRIES):
        try:
            return video_store.download(url, scratch), None, False
        except DownloadError as exc:
            reason = f"download failed: {exc.reason or exc}"
            if not exc.retryable:
                return None, reason, False
        except UnsafeUrl as exc:
            return None, f"download refused: {exc}", False
        except HttpError as exc:
            return None, f"download failed: {exc}", exc.retryable
    return None, reason, False


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[reels],
    group_name="content",
    kinds={STORE_KIND, "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.videos),
    description="Generated videos downloaded (streaming, SSRF-checked), verified and stored "
    "under their sha256 with a permanent URL.",
)
def stored_videos(context: dg.AssetExecutionContext, database: DatabaseResource,
                  video_store: VideoStoreResource, ffmpeg: FfmpegResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    store = video_store.store()
    stored, failed, pending = 0, {}, {}
    with Claims(engine) as claims:
        for reel in _claimed(engine, claims,
                             _reels_in(engine, character_id, day, "generated"), "generated"):
            scratch = Path(tempfile.mkdtemp(prefix="wg-store-"))
            try:
                got, reason, later = _download(video_store, reel["generation_result_url"], scratch)
                if later:
                    pending[reel["id"]] = reason
                    continue
                probe = ffmpeg.probe(got.path) if got else None
                if probe is not None and (not probe.decodable or not probe.has_video):
                    reason = f"the provider's video is unusable: {probe.error or 'no video stream'}"
                if reason or got is None or probe is None:
                    failed[reel["id"]] = reason or "download failed"
                    _fail(engine, reel["id"], failed[reel["id"]])
                    continue
                obj = store.put_file(got.path, content_key(got.sha256), "video/mp4")
                with engine.begin() as conn:
                    _save_video(conn, reel["id"], "raw", obj, probe.video_row())
                    _set_status(conn, reel["id"], "stored")
                stored += 1
            except StorageError as exc:
                failed[reel["id"]] = f"storing failed: {exc}"
                _fail(engine, reel["id"], failed[reel["id"]])
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    with engine.connect() as conn:
        counts = _video_counts(conn, "raw", character_id, day)
    return dg.MaterializeResult(metadata={
        "stored": stored, "failed": len(failed), "pending": len(pending),
        "backend": video_store.backend_name(),
        "reasons": reasons_table({**pending, **failed}), **counts})


class BrandConfig(dg.Config):
    preset: str | None = Field(
        default=None, description="x264 preset; default `veryfast` in sandbox, `medium` else.")
    crf: int = Field(default=23, description="x264 quality (lower is better and bigger).")


def _watermark(raw: dict[str, Any] | None) -> Watermark | None:
    return Watermark(**raw) if raw else None


def _publish_limits(engine: sa.Engine, character_id: str) -> IntegrityLimits:
    pa = schema.platform_accounts
    with engine.connect() as conn:
        platforms = list(conn.execute(sa.select(pa.c.platform)
                                      .where(pa.c.character_id == character_id)).scalars())
    return IntegrityLimits.for_platforms(platforms)


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[stored_videos],
    group_name="content",
    kinds={"ffmpeg", STORE_KIND, "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.videos),
    pool="ffmpeg",
    check_specs=[dg.AssetCheckSpec(
        INTEGRITY_CHECK, asset="branded_videos", blocking=True,
        description="Every branded video that may be published is re-read from the store and "
        "fully decoded: video + audio, H.264/AAC, 1080x1920, 3-180 s, within size limits.")],
    description="One ffmpeg pass per stored reel: watermark, 1080x1920, H.264 yuv420p closed "
    "GOP, AAC 128k 48 kHz, faststart; the output fully decoded and checked, then stored.",
)
def branded_videos(context: dg.AssetExecutionContext, config: BrandConfig,
                   database: DatabaseResource, video_store: VideoStoreResource,
                   ffmpeg: FfmpegResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    store = video_store.store()
    with engine.connect() as conn:
        watermark = _watermark(conn.scalar(sa.select(schema.characters.c.watermark)
                                           .where(schema.characters.c.id == character_id)))
    limits = _publish_limits(engine, character_id)
    preset = config.preset or ("veryfast" if get_settings().is_sandbox else "medium")
    spec = EncodeSpec(preset=preset, crf=config.crf)
    v = schema.videos
    branded, failed = 0, {}
    with Claims(engine) as claims:
        for reel in _claimed(engine, claims,
                             _reels_in(engine, character_id, day, "stored"), "stored"):
            scratch = Path(tempfile.mkdtemp(prefix="wg-brand-"))
            try:
                with engine.connect() as conn:
                    raw_key = conn.scalar(sa.select(v.c.storage_key).where(
                        v.c.reel_id == reel["id"], v.c.variant == "raw"))
                source = store.get_path(raw_key, scratch)
                probe = ffmpeg.brand(source, scratch / "branded.mp4", watermark, spec)
                problems = check_integrity(probe, limits)
                if problems:
                    raise BrandingError("the branded video failed its integrity check: "
                                        + "; ".join(problems))
                obj = store.put_file(Path(probe.path), content_key(str(probe.sha256)), "video/mp4")
                with engine.begin() as conn:
                    _save_video(conn, reel["id"], "branded", obj, probe.video_row())
                    _set_status(conn, reel["id"], "branded")
                branded += 1
            except (BrandingError, StorageError, FileNotFoundError) as exc:
                failed[reel["id"]] = f"branding failed: {exc}"
                _fail(engine, reel["id"], failed[reel["id"]])
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    check = verify_branded(engine, video_store, ffmpeg, character_id, day, limits)
    with engine.connect() as conn:
        counts = _video_counts(conn, "branded", character_id, day)
    return dg.MaterializeResult(
        metadata={"branded": branded, "failed": len(failed), "preset": preset,
                  "reasons": reasons_table(failed), **counts},
        check_results=[check])


def verify_branded(engine: sa.Engine, video_store: VideoStoreResource, ffmpeg: FfmpegResource,
                   character_id: str, day: Any, limits: IntegrityLimits) -> dg.AssetCheckResult:
    """Re-read and fully decode every publishable branded video of the partition.

    A video that no longer passes is withdrawn (its reel fails with the reason) so the
    others can still be published; a video that cannot be read at all fails the check,
    which blocks publishing until someone looks."""
    r, v = schema.reels, schema.videos
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.id, v.c.storage_key).join(v, sa.and_(v.c.reel_id == r.c.id,
                                                                v.c.variant == "branded"))
            .where(r.c.character_id == character_id, r.c.date == day, r.c.status == "branded")
        ).all()
    store = video_store.store()
    withdrawn, unreadable, verified = {}, {}, 0
    for reel_id, key in rows:
        scratch = Path(tempfile.mkdtemp(prefix="wg-verify-"))
        try:
            report = integrity_report(ffmpeg.probe(store.get_path(key, scratch)), limits)
        except (StorageError, FileNotFoundError, OSError) as exc:
            unreadable[str(reel_id)] = str(exc)
            continue
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if report.ok:
            verified += 1
        else:
            withdrawn[str(reel_id)] = report.summary
            _fail(engine, reel_id, f"branded video failed re-verification: {report.summary}")
    problems = [[str(k), "unreadable", why] for k, why in unreadable.items()]
    problems += [[str(k), "withdrawn", why] for k, why in withdrawn.items()]
    return check_result(
        INTEGRITY_CHECK, character_id, day, passed=not unreadable,
        severity=dg.AssetCheckSeverity.ERROR,
        summary=f"{verified} of {len(rows)} branded video(s) verified, {len(withdrawn)} "
        f"withdrawn, {len(unreadable)} unreadable",
        metadata={"verified": verified, "withdrawn": len(withdrawn),
                  "unreadable": len(unreadable), "max_bytes": limits.max_bytes,
                  "problems": md_table(["reel", "problem", "reason"],
                                       ([cell(c) for c in p] for p in problems))})
