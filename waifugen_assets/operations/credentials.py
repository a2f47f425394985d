"""Ages of every outside credential and of the Fernet keys; rotation that validates first.

The `credentials` table holds metadata only: a name, a kind, when the value in use was first
seen (`created_at`) and last replaced (`rotated_at`), when a cheap authenticated read last
accepted it (`validated_at`), and a fingerprint (the first 12 hex characters of its sha256,
as `core.tokens.key_id`), never the value.

- `sync` makes sure every configured credential has a row. First sight: `created_at` is the
  secret file's mtime when it is read from `NAME_FILE` (older than now: the value was in use
  at least that long), else now. A different fingerprint than the row's, without a
  `rotate`, means someone replaced the value by hand: `rotated_at` = now, noted.
- Fernet keys (WAIFUGEN_SECRET_KEY, newest first) get one row each, `fernet:<key_id>`. They
  are never replaced in place: a new key is added in front, `waifugen tokens rekey`
  re-encrypts, the old key is dropped (its row goes at the next `sync`).
- `status` / `report_line`: age = days since `rotated_at`, else `created_at`; warning from
  75 days, expired from 90.
- `rotate` validates the new value (credential_checks) before anything changes, then writes
  it atomically to the file `NAME_FILE` names (0600) and records the row. Services read
  settings once at start: they pick the new value up when restarted.

Call `sync` from fresh processes (the CLI, a run): a long-lived process holds the settings it
started with, and would record the old value as a change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.core import redaction, schema
from waifugen_assets.core.config import Settings
from waifugen_assets.operations import credential_checks as checks
from waifugen_assets.operations.credential_checks import Check, Refused

log = logging.getLogger(__name__)

WARN_DAYS = 75
EXPIRE_DAYS = 90
FERNET_PREFIX = "fernet:"
FERNET_KIND = "fernet_key"
FERNET_ROTATION = ("add a new key in front of WAIFUGEN_SECRET_KEY, run `waifugen tokens "
                   "rekey`, then drop the old key")
STATES = ("ok", "warning", "expired")


@dataclass(frozen=True)
class Credential:
    name: str  # the row's name
    setting: str  # read with read_setting: NAME, else the file NAME_FILE names
    kind: str
    validation: str  # what `rotate` asks before storing, for the status output
    check: Check
    pair: str | None = None  # a setting rotated with it (S3: the access key id)

    @property
    def validated_by_read(self) -> bool:
        return not self.validation.startswith("format")


CREDENTIALS: tuple[Credential, ...] = (
    Credential("a2e_api_key", "A2E_API_KEY", "api_key",
               "A2E GET /api/v1/user/remainingCoins", checks.check_a2e),
    Credential("runpod_api_key", "RUNPOD_API_KEY", "api_key",
               "RunPod GET /v2/<RUNPOD_ENDPOINT_ID>/health", checks.check_runpod),
    Credential("s3_secret_access_key", "S3_SECRET_ACCESS_KEY", "s3_secret",
               "S3 HeadBucket S3_BUCKET", checks.check_s3, pair="S3_ACCESS_KEY_ID"),
    Credential("telegram_bot_token", "TELEGRAM_BOT_TOKEN", "bot_token", "Telegram getMe",
               checks.check_telegram_bot),
    Credential("tiktok_client_secret", "TIKTOK_CLIENT_SECRET", "app_secret",
               "format only (proven by the next token refresh)", checks.check_app_secret),
    Credential("youtube_client_secret", "YOUTUBE_CLIENT_SECRET", "app_secret",
               "format only (proven by the next token refresh)", checks.check_app_secret),
    Credential("fanvue_client_secret", "FANVUE_CLIENT_SECRET", "app_secret",
               "format only (proven by the next token refresh)", checks.check_app_secret),
    Credential("fanvue_webhook_secret", "FANVUE_WEBHOOK_SECRET", "webhook_secret",
               "format only (a shared secret)", checks.check_webhook_secret),
    Credential("telegram_webhook_secret", "TELEGRAM_WEBHOOK_SECRET", "webhook_secret",
               "format only (a shared secret we choose)", checks.check_telegram_webhook),
)
BY_NAME = {c.name: c for c in CREDENTIALS}
# What to do at the platform after the file holds the new value.
AFTER_ROTATE = {
    "telegram_webhook_secret": "then call setWebhook on every character's bot with the new "
                               "secret_token (updates carrying the old one get 401 until "
                               "then; Telegram retries them)",
    "fanvue_webhook_secret": "it must be the secret the Fanvue app signs with (its webhook "
                             "settings): deliveries signed with another one get 401",
}


class RotationRefused(Exception):
    """Nothing was changed; the message names the credential and why (never the value)."""


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def state_of(age_days: int) -> str:
    if age_days >= EXPIRE_DAYS:
        return "expired"
    return "warning" if age_days >= WARN_DAYS else "ok"


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _file_of(setting: str, environ: Mapping[str, str]) -> Path | None:
    """The secret file a setting is read from: only when NAME itself is unset (it wins)."""
    path = environ.get(f"{setting}_FILE")
    return Path(path) if path and not environ.get(setting) else None


def _seen_since(path: Path | None, now: dt.datetime) -> dt.datetime:
    """When a value was first in use, as far as we can tell: its file's mtime, else now."""
    if path is None:
        return now
    try:
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except OSError:
        return now
    return min(mtime, now)


@dataclass(frozen=True)
class _Seen:
    name: str
    kind: str
    fingerprint: str
    since: dt.datetime
    key_id: str | None = None


def _fernet_file(settings: Settings, environ: Mapping[str, str]) -> Path | None:
    if environ.get("WAIFUGEN_SECRET_KEY"):
        return None
    if environ.get("WAIFUGEN_SECRET_KEY_FILE"):
        return Path(environ["WAIFUGEN_SECRET_KEY_FILE"])
    return settings.home / "sandbox-secret.key"  # config._sandbox_secret_key's file


def _configured(settings: Settings, environ: Mapping[str, str],
                now: dt.datetime) -> list[_Seen]:
    seen = []
    for spec in CREDENTIALS:
        value = settings.env.get(spec.setting)
        if value:
            seen.append(_Seen(spec.name, spec.kind, fingerprint(value),
                              _seen_since(_file_of(spec.setting, environ), now)))
    key_file = _fernet_file(settings, environ)
    for position, key in enumerate(settings.secret_keys):
        kid = fingerprint(key)  # == core.tokens.key_id(key)
        # The file was last written when its newest key went in: older keys were seen first.
        since = _seen_since(key_file, now) if position == 0 else now
        seen.append(_Seen(f"{FERNET_PREFIX}{kid}", FERNET_KIND, kid, since, key_id=kid))
    return seen


def sync(engine: sa.Engine, settings: Settings, now: dt.datetime,
         environ: Mapping[str, str] | None = None) -> list[str]:
    """Rows for every configured credential; returns notes on what changed (no values)."""
    env = os.environ if environ is None else environ
    now = _aware(now)
    c = schema.credentials
    notes = []
    configured = _configured(settings, env, now)
    with engine.begin() as conn:
        for item in configured:
            created = conn.execute(
                insert(c).values(name=item.name, kind=item.kind, key_id=item.key_id,
                                 fingerprint=item.fingerprint, created_at=item.since)
                .on_conflict_do_nothing(index_elements=[c.c.name])).rowcount
            if created:
                notes.append(f"{item.name}: first seen, in use since "
                             f"{item.since:%Y-%m-%d %H:%M} UTC")
                continue
            row = conn.execute(sa.select(c.c.fingerprint, c.c.created_at, c.c.rotated_at)
                               .where(c.c.name == item.name).with_for_update()).one()
            if row.fingerprint == item.fingerprint:
                continue
            if row.fingerprint is None:  # a row from before fingerprints were kept
                conn.execute(sa.update(c).where(c.c.name == item.name)
                             .values(fingerprint=item.fingerprint))
                continue
            since = max(item.since, row.rotated_at or row.created_at)
            conn.execute(sa.update(c).where(c.c.name == item.name).values(
                fingerprint=item.fingerprint, rotated_at=since, validated_at=None))
            note = (f"{item.name}: changed outside `waifugen credentials rotate` (fingerprint "
                    f"{row.fingerprint} -> {item.fingerprint}): its age counts from "
                    f"{since:%Y-%m-%d %H:%M} UTC")
            log.warning("credential %s", note)
            notes.append(note)
        # Retired Fernet keys (dropped after `tokens rekey`) no longer age.
        live = [i.name for i in configured if i.kind == FERNET_KIND]
        gone = conn.execute(sa.delete(c).where(c.c.kind == FERNET_KIND, c.c.name.not_in(live))
                            .returning(c.c.name)).scalars().all()
        notes.extend(f"{name}: no longer configured (retired after rekey): row removed"
                     for name in sorted(gone))
    return notes


@dataclass(frozen=True)
class CredentialStatus:
    name: str
    kind: str
    fingerprint: str | None
    created_at: dt.datetime
    rotated_at: dt.datetime | None
    validated_at: dt.datetime | None
    last_used_at: dt.datetime | None
    age_days: int
    state: str  # ok | warning | expired

    @property
    def since(self) -> dt.datetime:
        return self.rotated_at or self.created_at

    @property
    def rotate_by(self) -> dt.date:
        return (self.since + dt.timedelta(days=EXPIRE_DAYS)).date()

    @property
    def how_to_rotate(self) -> str:
        if self.kind == FERNET_KIND:
            return "waifugen tokens rekey"
        if self.name in BY_NAME:
            return f"waifugen credentials rotate {self.name}"
        return "-"


def _rows(conn: sa.Connection, now: dt.datetime) -> list[CredentialStatus]:
    c = schema.credentials
    rows = conn.execute(sa.select(c.c.name, c.c.kind, c.c.fingerprint, c.c.created_at,
                                  c.c.rotated_at, c.c.validated_at, c.c.last_used_at)
                        .order_by(c.c.name)).all()
    out = []
    for r in rows:
        age = max((now - (r.rotated_at or r.created_at)).days, 0)
        out.append(CredentialStatus(r.name, r.kind, r.fingerprint, r.created_at, r.rotated_at,
                                    r.validated_at, r.last_used_at, age, state_of(age)))
    return out


def status(engine: sa.Engine, now: dt.datetime) -> list[CredentialStatus]:
    """Every credential row with its age and state, by name."""
    with engine.connect() as conn:
        return _rows(conn, _aware(now))


def report_line(conn: sa.Connection, now: dt.datetime) -> str | None:
    """One line for the daily report naming credentials due for rotation; None when all are
    younger than WARN_DAYS. Plain text: the report escapes it for HTML / Markdown."""
    due = sorted((s for s in _rows(conn, _aware(now)) if s.state != "ok"),
                 key=lambda s: (-s.age_days, s.name))
    if not due:
        return None
    parts = []
    for s in due:
        when = ("expired on" if s.state == "expired" else "rotate by")
        parts.append(f"{s.name} {s.age_days} days old ({when} {s.rotate_by.isoformat()})")
    return "credentials: " + "; ".join(parts)


def mark_used(conn: sa.Connection, names: Iterable[str], now: dt.datetime) -> None:
    """Record that a call authenticated with these credentials succeeded (last_used_at)."""
    c = schema.credentials
    conn.execute(sa.update(c).where(c.c.name.in_(list(names)),
                                    sa.or_(c.c.last_used_at.is_(None),
                                           c.c.last_used_at < now))
                 .values(last_used_at=now))


def forget(engine: sa.Engine, name: str) -> bool:
    """Drop the row of a credential no longer used (so it stops aging in reports)."""
    c = schema.credentials
    with engine.begin() as conn:
        return bool(conn.execute(sa.delete(c).where(c.c.name == name)).rowcount)


# --- rotation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rotated:
    name: str
    path: Path
    fingerprint: str
    note: str  # what accepted it
    next_step: str


def _target(setting: str, name: str, environ: Mapping[str, str]) -> Path:
    """The secret file to replace, after checking the services would read it."""
    raw = environ.get(f"{setting}_FILE")
    if not raw:
        raise RotationRefused(
            f"{name}: set {setting}_FILE to the secret file the services read; a value in the "
            "environment cannot be replaced from here")
    if environ.get(setting):
        raise RotationRefused(
            f"{name}: {setting} is set in the environment too, and wins over {setting}_FILE: "
            "unset it so the services read the file; nothing was changed")
    path = Path(raw)
    if path.is_dir() or not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise RotationRefused(f"{name}: {setting}_FILE={raw}: not a file in a writable "
                              "directory; nothing was changed")
    return path


def write_secret(path: Path, value: str) -> None:
    """Replace `path` with `value` atomically: a file in the same directory, renamed over it.
    The old file's owner, group and owner/group permission bits are kept (the services may
    run as another user, or read it through a group), never world bits; where the owner or
    group cannot be kept (not root), RotationRefused before anything is replaced."""
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
            out.write(value + "\n")
            out.flush()
            os.fsync(out.fileno())
        if old is not None:
            os.chmod(tmp, (stat.S_IMODE(old.st_mode) & 0o770) | 0o600)
            _keep_owner(tmp, path, old)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _keep_owner(tmp: str, path: Path, old: os.stat_result) -> None:
    mine = os.stat(tmp)
    for what, wanted, have, ids in (("uid", old.st_uid, mine.st_uid, (old.st_uid, -1)),
                                    ("gid", old.st_gid, mine.st_gid, (-1, old.st_gid))):
        if wanted == have:
            continue
        try:
            os.chown(tmp, *ids)
        except OSError as exc:
            who = "owner" if what == "uid" else "group"
            raise RotationRefused(
                f"{path}: cannot keep its {who} ({what} {wanted}) on the new file "
                f"({exc.strerror}): the services might not read it; run this as root or as "
                "the file's owner; nothing was changed") from None


def _write_pair(pair_path: Path, pair_value: str, path: Path, value: str) -> None:
    """Both files or neither: a new key id beside the old secret would break the store."""
    try:
        old_pair = pair_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old_pair = None
    write_secret(pair_path, pair_value)
    try:
        write_secret(path, value)
    except BaseException:
        if old_pair is None:
            pair_path.unlink(missing_ok=True)
        else:
            write_secret(pair_path, old_pair.strip())
        raise


def rotate(engine: sa.Engine, settings: Settings, name: str, value: str, *,
           now: dt.datetime, environ: Mapping[str, str] | None = None,
           pair_value: str | None = None) -> Rotated:
    """Validate `value` for credential `name`, then store it in its secret file and record
    the rotation. RotationRefused (nothing changed) when any step before the write fails."""
    env = os.environ if environ is None else environ
    now = _aware(now)
    value = value.strip()
    pair_value = pair_value.strip() if pair_value else None
    redaction.register_secret(value)  # whatever prints from here on, never the value
    if name.startswith(FERNET_PREFIX) or name == "WAIFUGEN_SECRET_KEY":
        raise RotationRefused(f"{name}: Fernet keys are not replaced in place: "
                              f"{FERNET_ROTATION}")
    spec = BY_NAME.get(name)
    if spec is None:
        raise RotationRefused(f"unknown credential {name!r}: one of "
                              f"{', '.join(BY_NAME)}")
    if not value:
        raise RotationRefused(f"{name}: the new value is empty; nothing was changed")
    if pair_value is not None and spec.pair is None:
        raise RotationRefused(f"{name} has no paired setting; nothing was changed")
    if value == settings.env.get(spec.setting) and pair_value is None:
        raise RotationRefused(f"{name}: that is the value in use already; nothing was changed")
    path = _target(spec.setting, name, env)
    pair_path = _target(spec.pair, name, env) if pair_value and spec.pair else None
    try:
        note = spec.check(value, settings, pair_value)
    except Refused as exc:
        raise RotationRefused(f"{name}: not accepted, nothing was changed: {exc}") from None

    c = schema.credentials
    new_fp = fingerprint(value)
    validated = now if spec.validated_by_read else None
    with engine.begin() as conn:  # the row commits only once the file holds the value
        conn.execute(insert(c).values(
            name=name, kind=spec.kind, fingerprint=new_fp, created_at=now, rotated_at=now,
            validated_at=validated, last_used_at=validated,
        ).on_conflict_do_update(index_elements=[c.c.name], set_={
            "kind": spec.kind, "fingerprint": new_fp, "rotated_at": now,
            "validated_at": validated,
            "last_used_at": sa.func.coalesce(validated, c.c.last_used_at)}))
        try:
            if pair_path is None or pair_value is None:
                write_secret(path, value)
            else:
                _write_pair(pair_path, pair_value, path, value)
        except OSError as exc:  # disk full, read-only, not ours to replace: the row rolls back
            raise RotationRefused(f"{name}: cannot write {exc.filename or path}: "
                                  f"{exc.strerror or exc}; nothing was changed") from None
    log.info("credential %s rotated (fingerprint %s, file %s)", name, new_fp, path)
    steps = ["restart the services that read it (settings are read once at start)"]
    if name in AFTER_ROTATE:
        steps.append(AFTER_ROTATE[name])
    return Rotated(name, path, new_fp, note, "; ".join(steps))
