"""resources.youtube against the sandbox over real HTTP: resumable uploads in chunks, resume
after failures by probing, lost final answers, expired sessions, quota (deferrable errors and
the ledger), tokens, reconciliation by marker."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from resources.http import (
    AuthError,
    PermanentError,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
)
from resources.youtube import (
    CHUNK_UNIT,
    InvalidGrant,
    QuotaExceeded,
    QuotaLedger,
    QuotaModel,
    QuotaSpend,
    SessionExpired,
    Video,
    VideoNotFound,
    YouTubeClient,
    YouTubeResource,
    next_reset,
    quota_day,
    refresh_token,
)
from sandbox.systems.youtube import channel_id_for
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenSet

MiB = 1024 * 1024
UPLOAD = "/upload/youtube/v3/videos"
SECRET = "GOCSPX-test"
STATUS = {"privacyStatus": "public", "selfDeclaredMadeForKids": False,
          "containsSyntheticMedia": True}


class Account:
    """One channel in its own API project: its tokens, a client and the sandbox controls."""

    def __init__(self, sandbox: Any, sleeps: list[float]) -> None:
        self.sandbox = sandbox
        self.base = f"{sandbox.url}/youtube"
        self.client_id = f"test-{uuid.uuid4().hex[:10]}.apps.googleusercontent.com"
        self.refresh = f"1//sandbox_{uuid.uuid4().hex[:12]}"
        self.channel = channel_id_for(self.refresh)
        self.tokens = self.refresh_tokens()
        self.spent: list[str] = []
        retry = RetryPolicy(random=lambda: 0.5, sleep=sleeps.append)
        self.client = YouTubeClient(lambda: self.tokens.access_token, base_url=self.base,
                                    retry=retry, on_quota=self.spent.append)

    def refresh_tokens(self) -> TokenSet:
        return refresh_token(f"{self.base}/oauth2", self.client_id, SECRET, self.refresh)

    def control(self, path: str, method: str = "POST", **body: Any) -> Any:
        response = httpx.request(method, f"{self.base}/_control/{path}",
                                 json=body if method == "POST" else None)
        assert response.status_code == 200, response.text
        return response.json()

    def published(self) -> list[dict[str, Any]]:
        return self.control(f"published?account={self.channel}", method="GET")["videos"]

    def puts(self, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.sandbox.journal("youtube", since=since)
                if e["method"] == "PUT" and e["path"] == UPLOAD]

    def posts(self, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.sandbox.journal("youtube", since=since)
                if e["method"] == "POST" and e["path"] == UPLOAD]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def acc(sandbox: Any, sleeps: list[float]) -> Iterator[Account]:
    account = Account(sandbox, sleeps)
    account.control("config", client_id=account.client_id, units_per_day=1_000_000)
    yield account
    account.client.close()
    account.control("chunk_faults", method="DELETE")


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 MiB and a bit: four 1 MiB chunks, the last one short (bytes are not inspected)."""
    path = tmp_path_factory.mktemp("yt") / "reel.mp4"
    path.write_bytes(os.urandom(3 * MiB + 12345))
    return path


@pytest.fixture(scope="module")
def file_sha(video_file: Path) -> str:
    return hashlib.sha256(video_file.read_bytes()).hexdigest()


def snippet(marker: str = "") -> dict[str, Any]:
    return {"title": f"Ramen in the rain {marker}".strip(),
            "description": f"AI-generated virtual creator. {marker}".strip(),
            "tags": ["ramen", "shorts"], "categoryId": "22"}


def last_id(sandbox: Any) -> int:
    entries = sandbox.journal("youtube")
    return entries[-1]["id"] if entries else 0


def chunk_ranges(entries: list[dict[str, Any]]) -> list[str]:
    return [e["headers"].get("content-range", "") for e in entries]


# --- uploads ----------------------------------------------------------------------------------

def test_full_resumable_upload_in_chunks(acc: Account, video_file: Path, file_sha: str,
                                         sandbox: Any) -> None:
    size = video_file.stat().st_size
    since = last_id(sandbox)
    uri = acc.client.start_upload(snippet("#wg-full"), STATUS, size)
    video = acc.client.upload(uri, video_file, chunk_size=MiB)
    assert isinstance(video, Video) and video.upload_status == "uploaded"
    assert video.contains_synthetic_media is True
    assert video.self_declared_made_for_kids is False
    assert video.channel_id == acc.channel and video.title == "Ramen in the rain #wg-full"
    assert chunk_ranges(acc.puts(since)) == [
        f"bytes */{size}", f"bytes 0-{MiB - 1}/{size}", f"bytes {MiB}-{2 * MiB - 1}/{size}",
        f"bytes {2 * MiB}-{3 * MiB - 1}/{size}", f"bytes {3 * MiB}-{size - 1}/{size}"]
    assert [e["status"] for e in acc.puts(since)] == [308, 308, 308, 308, 201]
    assert all("authorization" not in e["headers"] for e in acc.puts(since))
    [post] = acc.posts(since)
    assert post["headers"]["x-upload-content-length"] == str(size)
    assert post["body"]["status"] == STATUS
    [row] = acc.published()
    assert (row["id"], row["sha256"], row["size"]) == (video.id, file_sha, size)
    assert (row["containsSyntheticMedia"], row["selfDeclaredMadeForKids"]) == (True, False)
    assert acc.spent == ["videos.insert"]


def test_local_checks_before_spending_quota(acc: Account, video_file: Path) -> None:
    for bad_snippet, bad_status in (
            ({"title": "x" * 101}, STATUS), ({"title": "a<b"}, STATUS),
            ({"title": "ok", "description": "é" * 2501}, STATUS),
            (snippet(), {"privacyStatus": "public", "selfDeclaredMadeForKids": False}),
            (snippet(), {"containsSyntheticMedia": True})):
        with pytest.raises(ValueError, match=r"title|description|status"):
            acc.client.start_upload(bad_snippet, bad_status, 100)
    with pytest.raises(ValueError, match="multiple of 262144"):
        acc.client.upload("http://unused", video_file, chunk_size=MiB + 1)
    assert acc.spent == [] and acc.published() == []


def test_resume_after_503_on_a_middle_chunk(acc: Account, video_file: Path, file_sha: str,
                                            sandbox: Any, sleeps: list[float]) -> None:
    size = video_file.stat().st_size
    uri = acc.client.start_upload(snippet(), STATUS, size)
    acc.control("chunk_faults", offset=MiB, action="status", status=503,
                upload_id=httpx.URL(uri).params["upload_id"])
    since = last_id(sandbox)
    video = acc.client.upload(uri, video_file, chunk_size=MiB)
    puts = acc.puts(since)
    assert [(r, e["status"]) for r, e in zip(chunk_ranges(puts), puts, strict=True)] == [
        (f"bytes */{size}", 308), (f"bytes 0-{MiB - 1}/{size}", 308),
        (f"bytes {MiB}-{2 * MiB - 1}/{size}", 503), (f"bytes */{size}", 308),
        (f"bytes {MiB}-{2 * MiB - 1}/{size}", 308),
        (f"bytes {2 * MiB}-{3 * MiB - 1}/{size}", 308), (f"bytes {3 * MiB}-{size - 1}/{size}",
                                                         201)]
    assert sleeps == [0.25]  # one backoff before the probe (jitter pinned to 0.5)
    [row] = acc.published()
    assert (row["id"], row["sha256"]) == (video.id, file_sha)


@pytest.mark.parametrize("action", ["drop_before", "drop_after", "status_after"])
def test_resume_from_the_range_the_probe_reports(acc: Account, video_file: Path, file_sha: str,
                                                 sandbox: Any, action: str) -> None:
    """A dropped connection or an error after the chunk was stored: the probe says where the
    session stands and the upload continues from there, never from the client's guess."""
    size = video_file.stat().st_size
    uri = acc.client.start_upload(snippet(), STATUS, size)
    kind, phase = action.split("_")
    acc.control("chunk_faults", offset=MiB, action="drop" if kind == "drop" else "status",
                status=500, phase=phase, upload_id=httpx.URL(uri).params["upload_id"])
    since = last_id(sandbox)
    video = acc.client.upload(uri, video_file, chunk_size=MiB)
    ranges = chunk_ranges(acc.puts(since))
    middle = f"bytes {MiB}-{2 * MiB - 1}/{size}"
    assert ranges[2:4] == [middle, f"bytes */{size}"]
    assert ranges.count(middle) == (2 if phase == "before" else 1)
    [row] = acc.published()
    assert (row["id"], row["sha256"]) == (video.id, file_sha)


def test_a_crashed_upload_resumes_where_the_session_stands(acc: Account, video_file: Path,
                                                           file_sha: str,
                                                           sandbox: Any) -> None:
    size = video_file.stat().st_size
    uri = acc.client.start_upload(snippet(), STATUS, size)
    acc.control("chunk_faults", offset=2 * MiB, action="drop", phase="before",
                upload_id=httpx.URL(uri).params["upload_id"])
    with pytest.raises(UnknownOutcome):
        acc.client.upload(uri, video_file, chunk_size=MiB, max_resumes=0)
    assert acc.client.probe(uri, size).received_bytes == 2 * MiB
    since = last_id(sandbox)
    # A new run (new client) with only the saved session URI, and another chunk size.
    rerun = YouTubeClient(lambda: "unused: chunk PUTs carry no token", base_url=acc.base)
    with rerun:
        video = rerun.upload(uri, video_file, chunk_size=4 * CHUNK_UNIT)
    assert chunk_ranges(acc.puts(since)) == [f"bytes */{size}",
                                             f"bytes {2 * MiB}-{3 * MiB - 1}/{size}",
                                             f"bytes {3 * MiB}-{size - 1}/{size}"]
    [row] = acc.published()
    assert (row["id"], row["sha256"]) == (video.id, file_sha)


def test_lost_final_answer_is_found_by_the_probe(acc: Account, video_file: Path,
                                                 file_sha: str, sandbox: Any) -> None:
    size = video_file.stat().st_size
    uri = acc.client.start_upload(snippet("#wg-lost"), STATUS, size)
    acc.control("chunk_faults", offset="last", action="drop", phase="after",
                upload_id=httpx.URL(uri).params["upload_id"])
    since = last_id(sandbox)
    video = acc.client.upload(uri, video_file, chunk_size=MiB)
    puts = acc.puts(since)
    assert puts[-2]["status"] is None and puts[-1]["headers"]["content-range"] == \
        f"bytes */{size}"
    assert puts[-1]["status"] == 200 and video.contains_synthetic_media is True
    assert acc.client.probe(uri, size).video == video
    [row] = acc.published()
    assert (row["id"], row["sha256"]) == (video.id, file_sha)


def test_lost_final_answer_then_expired_session_is_reconciled_by_marker(
        acc: Account, video_file: Path) -> None:
    size = video_file.stat().st_size
    marker = f"#wg-{uuid.uuid4().hex[:8]}"
    acc.client.upload(acc.client.start_upload(snippet("#wg-other"), STATUS, size), video_file,
                      chunk_size=2 * MiB)
    uri = acc.client.start_upload(snippet(marker), STATUS, size)
    acc.control("chunk_faults", offset="last", action="drop", phase="after",
                upload_id=httpx.URL(uri).params["upload_id"])
    with pytest.raises(UnknownOutcome):
        acc.client.upload(uri, video_file, chunk_size=2 * MiB, max_resumes=0)
    acc.control("expire_session", session_uri=uri)
    with pytest.raises(SessionExpired) as caught:
        acc.client.upload(uri, video_file, chunk_size=2 * MiB)
    assert isinstance(caught.value, PermanentError) and caught.value.status == 404
    found = acc.client.find_upload(marker)
    assert found is not None and marker in (found.title or "")
    assert found.upload_status == "processed" and found.contains_synthetic_media is True
    assert acc.client.find_upload("#wg-never") is None
    assert [v["title"] for v in acc.published()].count(found.title) == 1
    assert len(acc.published()) == 2


def test_session_expired_before_any_bytes(acc: Account, video_file: Path) -> None:
    uri = acc.client.start_upload(snippet(), STATUS, video_file.stat().st_size)
    acc.control("expire_session", session_uri=uri)
    with pytest.raises(SessionExpired):
        acc.client.upload(uri, video_file, chunk_size=MiB)
    with pytest.raises(SessionExpired):
        acc.client.probe(uri, video_file.stat().st_size)
    assert acc.published() == []


def test_start_upload_is_never_resent(acc: Account, sandbox: Any) -> None:
    since = last_id(sandbox)
    sandbox.add_fault(system="youtube", route=UPLOAD, method="POST", action="drop",
                      phase="after", times=1)
    with pytest.raises(UnknownOutcome):
        acc.client.start_upload(snippet(), STATUS, 1000)
    sandbox.add_fault(system="youtube", route=UPLOAD, method="POST", action="status",
                      status=503, times=1)
    with pytest.raises(RetryableError):
        acc.client.start_upload(snippet(), STATUS, 1000)
    assert len(acc.posts(since)) == 2  # one request each, no automatic resend
    assert acc.client.start_upload(snippet(), STATUS, 1000).startswith(acc.base)


def test_upload_survives_a_storm_of_5xx_and_drops(acc: Account, video_file: Path,
                                                  file_sha: str, sandbox: Any) -> None:
    size = video_file.stat().st_size
    uri = acc.client.start_upload(snippet(), STATUS, size)
    sandbox.add_fault(system="youtube", route=UPLOAD, method="PUT", action="status",
                      status=503, probability=0.2)
    sandbox.add_fault(system="youtube", route=UPLOAD, method="PUT", action="drop",
                      phase="after", probability=0.15)
    client = YouTubeClient(lambda: acc.tokens.access_token, base_url=acc.base,
                           retry=RetryPolicy(max_attempts=8, sleep=lambda s: None))
    with client:
        video = client.upload(uri, video_file, chunk_size=4 * CHUNK_UNIT, max_resumes=10)
    faulted = [e for e in acc.puts() if e["fault"] is not None]
    assert faulted, "the storm should have hit some requests"
    [row] = acc.published()
    assert (row["id"], row["sha256"]) == (video.id, file_sha)


# --- quota -----------------------------------------------------------------------------------

def test_quota_exhausted_is_a_deferrable_permanent_error(acc: Account) -> None:
    acc.control("config", client_id=acc.client_id, units_per_day=10_000,
                units_remaining=1599)
    with pytest.raises(QuotaExceeded) as caught:
        acc.client.start_upload(snippet(), STATUS, 1000)
    error = caught.value
    assert isinstance(error, PermanentError) and error.deferrable
    assert (error.status, error.quota_reason) == (403, "quotaExceeded")
    assert error.resume_at == next_reset(dt.datetime.now(dt.UTC))
    acc.control("config", client_id=acc.client_id, quota_model="buckets",
                inserts_remaining=1, units_remaining=10_000)
    acc.client.start_upload(snippet(), STATUS, 1000)
    with pytest.raises(QuotaExceeded):
        acc.client.start_upload(snippet(), STATUS, 1000)


def test_channel_upload_cap_is_deferrable(acc: Account) -> None:
    acc.control("config", client_id=acc.client_id, channel_uploads_per_day=0)
    with pytest.raises(QuotaExceeded) as caught:
        acc.client.start_upload(snippet(), STATUS, 1000)
    assert (caught.value.status, caught.value.quota_reason) == (400, "uploadLimitExceeded")


def test_ledger_classic_and_bucket_models() -> None:
    now = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)  # 05:00 in Los Angeles (PDT)
    classic = QuotaLedger()
    assert classic.cost("videos.insert") == {"units": 1600}
    assert classic.cost("videos.list") == {"units": 1}
    assert classic.uploads_left([], now) == 6  # 10,000 // 1600
    spends = [QuotaSpend(now - dt.timedelta(hours=1), "videos.insert")] * 6
    assert classic.remaining(spends, now) == {"units": 400}
    assert not classic.can_afford("videos.insert", spends, now)
    assert classic.can_afford("videos.list", spends, now, reserve_units=399)
    assert classic.defer_until("videos.insert", spends, now) == \
        dt.datetime(2025, 3, 11, 7, 0, tzinfo=dt.UTC)  # midnight PDT
    buckets = QuotaLedger(model=QuotaModel.BUCKETS)
    assert buckets.cost("videos.insert") == {"inserts": 1}
    assert buckets.uploads_left(spends, now) == 94
    assert buckets.remaining(spends, now) == {"units": 10_000, "inserts": 94, "searches": 100}
    many = [QuotaSpend(now, "videos.insert")] * 100
    assert buckets.defer_until("videos.insert", many, now) is not None
    assert buckets.can_afford("videos.list", many, now)


def test_ledger_days_reset_at_pacific_midnight() -> None:
    ledger = QuotaLedger()
    before = dt.datetime(2025, 1, 15, 7, 59, tzinfo=dt.UTC)  # 23:59 PST, Jan 14
    after = dt.datetime(2025, 1, 15, 8, 0, tzinfo=dt.UTC)  # 00:00 PST, Jan 15
    assert quota_day(before) == dt.date(2025, 1, 14)
    assert quota_day(after) == dt.date(2025, 1, 15)
    assert next_reset(before) == after
    assert next_reset(after) == dt.datetime(2025, 1, 16, 8, 0, tzinfo=dt.UTC)
    spends = [QuotaSpend(before, "videos.insert")] * 6
    assert ledger.uploads_left(spends, before) == 0
    assert ledger.uploads_left(spends, after) == 6
    # Day of the DST change: 23 hours long, still reset at local midnight.
    assert next_reset(dt.datetime(2025, 3, 9, 12, 0, tzinfo=dt.UTC)) == \
        dt.datetime(2025, 3, 10, 7, 0, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        quota_day(dt.datetime(2025, 1, 1))  # naive on purpose


def test_on_quota_reports_every_costing_call(acc: Account) -> None:
    acc.client.my_recent_uploads(10)
    acc.client.my_recent_uploads(10)  # the uploads playlist id is cached
    assert acc.spent == ["channels.list", "playlistItems.list", "playlistItems.list"]


# --- tokens ---------------------------------------------------------------------------------

def test_expired_token_is_an_auth_error_and_a_refresh_fixes_it(acc: Account) -> None:
    acc.control("expire_token", access_token=acc.tokens.access_token)
    with pytest.raises(AuthError) as caught:
        acc.client.start_upload(snippet(), STATUS, 1000)
    assert caught.value.status == 401 and "authError" in caught.value.reason
    assert not isinstance(caught.value, PermanentError)
    old = acc.tokens
    acc.tokens = acc.refresh_tokens()
    assert acc.tokens.access_token != old.access_token
    assert acc.tokens.refresh_token is None  # Google keeps the refresh token: no rotation
    assert acc.tokens.expires_in == 3599
    assert acc.client.start_upload(snippet(), STATUS, 1000)


def test_revoked_refresh_token_is_invalid_grant(acc: Account) -> None:
    acc.control("revoke_token", refresh_token=acc.refresh)
    with pytest.raises(InvalidGrant) as caught:
        acc.refresh_tokens()
    assert isinstance(caught.value, AuthError) and isinstance(caught.value, PermanentError)
    assert caught.value.reason.startswith("invalid_grant") and caught.value.status == 400
    with pytest.raises(AuthError):  # the grant's access tokens die with it
        acc.client.video("abcdefghijk")


def test_refresh_with_a_bad_client_is_permanent(acc: Account) -> None:
    with pytest.raises(PermanentError) as caught:
        refresh_token(f"{acc.base}/oauth2", acc.client_id, "wrong-secret", acc.refresh)
    assert not isinstance(caught.value, InvalidGrant)
    assert caught.value.reason.startswith("invalid_client")


def test_refresh_through_a_caller_client(acc: Account) -> None:
    with httpx.Client(base_url=f"{acc.base}/oauth2") as http:
        tokens = refresh_token(http, acc.client_id, SECRET, acc.refresh)
        assert tokens.access_token.startswith("ya29.")
        acc.control("revoke_token", refresh_token=acc.refresh)
        with pytest.raises(InvalidGrant):
            refresh_token(http, acc.client_id, SECRET, acc.refresh)


# --- reads -----------------------------------------------------------------------------------

def test_video_reads_and_recent_uploads(acc: Account, tmp_path: Path) -> None:
    small = tmp_path / "small.mp4"
    small.write_bytes(b"tiny video bytes")
    ids = []
    for n in range(3):
        uri = acc.client.start_upload(snippet(f"#wg-{n}"), STATUS, small.stat().st_size)
        ids.append(acc.client.upload(uri, small).id)
    video = acc.client.video(ids[0])
    assert video.upload_status == "processed" and video.statistics is not None
    assert isinstance(video.statistics.view_count, int)
    assert video.url.endswith(ids[0]) and video.shorts_url.endswith(f"/shorts/{ids[0]}")
    recent = acc.client.my_recent_uploads(2)
    assert [v.id for v in recent] == ids[:0:-1]  # newest first
    assert all(v.contains_synthetic_media for v in recent)
    assert [v.id for v in acc.client.my_recent_uploads(60)] == ids[::-1]
    with pytest.raises(VideoNotFound):
        acc.client.video("nonexistent")


def test_processing_failure_after_acceptance_is_visible(acc: Account, tmp_path: Path) -> None:
    small = tmp_path / "small.mp4"
    small.write_bytes(b"bytes that will not decode")
    acc.control("next_uploads", outcome="rejected", reason="duplicate", account=acc.channel)
    uri = acc.client.start_upload(snippet(), STATUS, small.stat().st_size)
    accepted = acc.client.upload(uri, small)
    assert not accepted.failed
    later = acc.client.video(accepted.id)
    assert later.failed and later.rejection_reason == "duplicate"


def test_resource_builds_clients_from_settings(acc: Account) -> None:
    resource = YouTubeResource(base_url=acc.base, token_url=f"{acc.base}/oauth2",
                               client_id=acc.client_id, client_secret=SECRET,
                               quota_model="buckets")
    tokens = resource.refresh(acc.refresh)
    with resource.get_client(lambda: tokens.access_token) as client:
        assert client.uploads_playlist() == "UU" + acc.channel[2:]
    assert resource.ledger().model is QuotaModel.BUCKETS
    defaults = YouTubeResource()
    settings = get_settings()
    if settings.is_sandbox:
        assert defaults.resolved_base_url() == settings.sandbox_service("youtube")
        assert defaults.resolved_token_url() == settings.sandbox_service("youtube") + "/oauth2"
        assert defaults.credentials()[0].endswith(".apps.googleusercontent.com")
