"""Runtime settings: one table of every setting, read from the environment or `*_FILE` secrets.

Two modes. `sandbox` (the default) needs nothing: an embedded PostgreSQL under WAIFUGEN_HOME,
the sandbox servers on loopback and local video storage. `production` refuses to start while a
required setting is missing, naming it. Secret values are registered with the redaction filter
as soon as they are read, so they can never be printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from pathlib import Path

from waifugen_assets.core import redaction


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Mode(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    default: str | None = None
    required_in_production: bool = False
    secret: bool = False


SANDBOX_DEFAULT_PORT = 8765
# Before every date the tests and the sandbox's fixed world use, and close enough to a first
# install that the catalog's partition health counts days the pipeline could have run.
DEFAULT_LAUNCH_DATE = "2026-11-01"

# The one list of settings. README's configuration table mirrors it (a test keeps them in step).
SETTINGS: tuple[Setting, ...] = (
    Setting("WAIFUGEN_MODE", "`sandbox` or `production`", default="sandbox"),
    Setting("WAIFUGEN_HOME", "state directory (embedded PostgreSQL, Dagster home, sandbox state)",
            default=".waifugen under the project root"),
    Setting("WAIFUGEN_ROSTER", "roster file", default="characters.yaml under the project root"),
    Setting("DATABASE_URL", "app database (PostgreSQL); sandbox: embedded pgserver",
            required_in_production=True, secret=True),
    Setting("WAIFUGEN_SANDBOX_URL", "base URL of the sandbox server (sandbox mode only)",
            default=f"http://127.0.0.1:{SANDBOX_DEFAULT_PORT}"),
    Setting("OLLAMA_HOST", "Ollama base URL; sandbox: the sandbox's /ollama",
            required_in_production=True),
    Setting("OLLAMA_MODEL", "Ollama model for scripts, captions and replies",
            default="llama3.1:8b"),
    Setting("WAIFUGEN_SECRET_KEY", "Fernet key(s), comma-separated newest first, that encrypt "
            "tokens at rest; sandbox: a key generated under WAIFUGEN_HOME",
            required_in_production=True, secret=True),
    Setting("A2E_MONTHLY_CREDITS", "monthly A2E credit budget shared by the roster",
            default="20000"),
    Setting("HTTP_TIMEOUT_SECONDS", "timeout for one outbound HTTP request", default="30"),
    Setting("A2E_API_KEY", "A2E API token (sk_...); sandbox: the sandbox key",
            required_in_production=True, secret=True),
    Setting("A2E_BASE_URL", "A2E API base URL", default="https://video.a2e.ai; sandbox: /a2e"),
    Setting("A2E_REQUESTS_PER_HOUR", "A2E requests per hour per API key, shared by every "
            "process (A2E's limit); the generation sensor plans renders within it",
            default="100"),
    Setting("A2E_RENDER_SECONDS", "expected A2E render time: the first status poll of a task "
            "comes this long after its submit, then polls back off",
            default="240; sandbox: 0"),
    Setting("PUBLISH_STALE_AFTER_HOURS", "a reel whose slot is older than this is not posted "
            "but recorded as skipped (stale), unless a run asks to post late", default="3"),
    Setting("WAIFUGEN_NOW", "sandbox mode only: run as if it were this time (ISO 8601 with "
            "offset; the clock runs on from there), for tests and replays"),
    Setting("RUNPOD_API_KEY", "RunPod API key for the generation fallback (optional)",
            secret=True),
    Setting("RUNPOD_ENDPOINT_ID", "RunPod serverless endpoint of the fallback; unset = no "
            "fallback; sandbox: a sandbox endpoint"),
    Setting("RENDER_PROVIDER", "`auto`: A2E first, RunPod when A2E keeps failing; `runpod`: "
            "new renders to RunPod first (an A2E outage; docs/runbooks/a2e-down.md)",
            default="auto"),
    Setting("RUNPOD_BASE_URL", "RunPod API base URL", default="https://api.runpod.ai; "
            "sandbox: /runpod"),
    Setting("TELEGRAM_BOT_TOKEN", "bot that sends alerts and the daily report; unset = alerts "
            "are recorded, not sent", secret=True),
    Setting("TELEGRAM_ALERT_CHAT_ID", "operators' chat for alerts and the daily report"),
    Setting("TELEGRAM_API_URL", "Telegram Bot API base URL",
            default="https://api.telegram.org; sandbox: /telegram"),
    Setting("VIDEO_STORE", "`local` (a directory served by nginx) or `s3` (AWS S3 / R2)",
            default="local"),
    Setting("VIDEO_DIR", "local store directory", default="WAIFUGEN_HOME/videos"),
    Setting("VIDEO_PUBLIC_BASE_URL", "public URL of the store (nginx, R2 public bucket, CDN)",
            default="sandbox: the sandbox's /media"),
    Setting("S3_BUCKET", "bucket for the s3 store"),
    Setting("S3_ENDPOINT_URL", "S3-compatible endpoint (R2: https://<account>.r2.cloudflarestorage"
            ".com)"),
    Setting("S3_REGION", "S3 region (R2: auto)", default="auto"),
    Setting("S3_ACCESS_KEY_ID", "S3 access key id", secret=True),
    Setting("S3_SECRET_ACCESS_KEY", "S3 secret access key", secret=True),
    Setting("FFMPEG_PATH", "ffmpeg binary", default="the one imageio-ffmpeg ships"),
    Setting("TIKTOK_BASE_URL", "TikTok API base URL",
            default="https://open.tiktokapis.com; sandbox: /tiktok"),
    Setting("TIKTOK_CLIENT_KEY", "TikTok app client key (token refresh)"),
    Setting("TIKTOK_CLIENT_SECRET", "TikTok app client secret", secret=True),
    Setting("INSTAGRAM_BASE_URL", "Instagram Graph API base URL",
            default="https://graph.instagram.com; sandbox: /instagram"),
    Setting("YOUTUBE_BASE_URL", "YouTube Data API base URL",
            default="https://www.googleapis.com; sandbox: /youtube"),
    Setting("YOUTUBE_TOKEN_URL", "Google OAuth token endpoint",
            default="https://oauth2.googleapis.com; sandbox: /youtube/oauth2"),
    Setting("YOUTUBE_CLIENT_ID", "Google OAuth client id (token refresh)"),
    Setting("YOUTUBE_CLIENT_SECRET", "Google OAuth client secret", secret=True),
    Setting("FANVUE_API_URL", "Fanvue API base URL (its OAuth token endpoint is "
            "<base>/oauth/token)", default="https://api.fanvue.com; sandbox: /fanvue"),
    Setting("FANVUE_CLIENT_ID", "Fanvue OAuth app client id (token refresh)"),
    Setting("FANVUE_CLIENT_SECRET", "Fanvue OAuth app client secret", secret=True),
    Setting("FANVUE_WEBHOOK_SECRET", "secret Fanvue signs webhooks with (HMAC-SHA256); "
            "sandbox: a fixed development secret", secret=True),
    Setting("TELEGRAM_WEBHOOK_SECRET", "secret_token given to setWebhook, checked on every "
            "Telegram update; sandbox: a fixed development secret", secret=True),
    Setting("WEBHOOKS_HOST", "address `waifugen webhooks serve` listens on",
            default="127.0.0.1"),
    Setting("WEBHOOKS_PORT", "port `waifugen webhooks serve` listens on", default="8788"),
    Setting("INBOUND_MODE", "how subscriber events arrive: `webhooks` (waifugen webhooks "
            "serve) or `polling` (each DM run asks Telegram and Fanvue)", default="polling"),
    Setting("WAIFUGEN_SEQUENCES", "DM sequences file",
            default="sequences.yaml under the project root"),
    Setting("WAIFUGEN_LAUNCH_DATE", "first day of the date partitions (YYYY-MM-DD): the day "
            "the roster started; earlier days do not exist in Dagster",
            default=DEFAULT_LAUNCH_DATE),
    # Money (analytics and the daily report; docs/analytics.md).
    Setting("ACCOUNTING_CURRENCY", "ISO 4217 currency of costs and margins (revenue in other "
            "currencies is reported per currency, never converted)", default="USD"),
    Setting("A2E_CREDIT_PRICE_CENTS", "what one A2E credit costs, in cents of "
            "ACCOUNTING_CURRENCY (a decimal)", default="1"),
    Setting("RUNPOD_CENTS_PER_SECOND", "what one second of the RunPod fallback worker costs, "
            "in cents of ACCOUNTING_CURRENCY (a decimal)", default="0.05"),
    Setting("COST_PER_REEL_TARGET_CREDITS", "target A2E credits per generated reel "
            "(cost_per_reel compares the actual with it)", default="40"),
    Setting("CREDIT_RECONCILE_TOLERANCE_CREDITS", "A2E balance change the credit ledger may "
            "leave unexplained in a day before its check warns", default="20"),
    # Backups (waifugen backup, the 6-hourly `backup` schedule; docs/runbooks/).
    Setting("BACKUP_DIR", "where backup archives are written (kept there even when uploaded)",
            default="WAIFUGEN_HOME/backups"),
    Setting("BACKUP_S3_URL", "s3://bucket/prefix to upload backups to (S3 or R2; credentials, "
            "endpoint and region from the S3_* settings); unset = local only"),
    Setting("PG_BIN_DIR", "directory of pg_dump, pg_restore, pg_dumpall and psql of the "
            "server's major version", default="pgserver's PostgreSQL 16 tools, else the PATH"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def project_root() -> Path:
    """The checkout this package lives in (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def read_setting(name: str, environ: Mapping[str, str]) -> str | None:
    """`NAME` from the environment, else the contents of the file named by `NAME_FILE`."""
    spec = _BY_NAME[name]
    value = environ.get(name)
    if value in (None, ""):
        path = environ.get(f"{name}_FILE")
        if path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={path}: cannot read ({exc.strerror})") from None
    if value in (None, ""):
        return None
    if spec.secret:
        redaction.register_secret(value)
    return value


@dataclass(frozen=True)
class Money:
    """Prices and targets the ledger, the marts and the report compute costs with."""

    currency: str = "USD"
    credit_price_cents: Decimal = Decimal("1")  # one A2E credit, in cents of `currency`
    runpod_cents_per_second: Decimal = Decimal("0.05")
    target_credits_per_reel: int = 40
    reconcile_tolerance_credits: int = 20

    def dbt_vars(self) -> dict[str, str | int]:
        """The same values as dbt vars (dbt_analytics/dbt_project.yml has these defaults)."""
        return {"accounting_currency": self.currency,
                "credit_price_cents": str(self.credit_price_cents),
                "runpod_cents_per_second": str(self.runpod_cents_per_second),
                "target_credits_per_reel": self.target_credits_per_reel}


def _decimal(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}={raw!r}: expected a decimal number such as 0.5") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{name}={raw!r}: must be a finite number, 0 or more")
    return value


def _currency(name: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", raw):
        raise ConfigError(f"{name}={raw!r}: expected an ISO 4217 code such as USD or EUR")
    return raw


def load_money(values: Mapping[str, str | None]) -> Money:
    return Money(
        currency=_currency("ACCOUNTING_CURRENCY", values.get("ACCOUNTING_CURRENCY") or "USD"),
        credit_price_cents=_decimal("A2E_CREDIT_PRICE_CENTS",
                                    values.get("A2E_CREDIT_PRICE_CENTS") or "1"),
        runpod_cents_per_second=_decimal("RUNPOD_CENTS_PER_SECOND",
                                         values.get("RUNPOD_CENTS_PER_SECOND") or "0.05"),
        target_credits_per_reel=_positive_int(
            "COST_PER_REEL_TARGET_CREDITS", values.get("COST_PER_REEL_TARGET_CREDITS") or "40"),
        reconcile_tolerance_credits=_int(
            "CREDIT_RECONCILE_TOLERANCE_CREDITS",
            values.get("CREDIT_RECONCILE_TOLERANCE_CREDITS") or "20"),
    )


@dataclass(frozen=True)
class Settings:
    mode: Mode
    home: Path
    roster_path: Path
    database_url: str | None
    sandbox_url: str
    ollama_host: str
    ollama_model: str
    secret_keys: tuple[str, ...] = field(repr=False)
    a2e_monthly_credits: int
    http_timeout: float
    a2e_requests_per_hour: int = 100
    a2e_render_seconds: float = 240.0
    publish_stale_after_hours: float = 3.0
    launch_date: dt.date = dt.date(2026, 11, 1)  # DEFAULT_LAUNCH_DATE
    money: Money = field(default_factory=lambda: Money())
    env: dict[str, str | None] = field(default_factory=dict, repr=False, compare=False)

    def get(self, name: str, sandbox_default: str | None = None,
            default: str | None = None) -> str | None:
        """A setting without a typed field (outside systems): set value, else the default of
        the current mode."""
        if name not in _BY_NAME:  # a name missing from SETTINGS could never be configured
            raise KeyError(f"{name} is not a setting: add it to SETTINGS (and README)")
        value = self.env.get(name)
        if value:
            return value
        return sandbox_default if self.is_sandbox else default

    def sandbox_service(self, system: str) -> str:
        return f"{self.sandbox_url}/{system}"

    def service_url(self, name: str, system: str, production: str, path: str = "") -> str:
        """An outside system's base URL: setting `name` if set, else the sandbox's mount of
        `system` (sandbox mode) or the real `production` URL; no trailing slash."""
        sandbox = f"{self.sandbox_service(system)}{path}"
        return (self.get(name, sandbox_default=sandbox, default=production)
                or production).rstrip("/")

    @property
    def is_sandbox(self) -> bool:
        return self.mode is Mode.SANDBOX

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def sandbox_state(self) -> Path:
        return self.home / "sandbox"

    def public_view(self) -> dict[str, str]:
        """Every setting with secrets masked: what `waifugen config` prints."""
        resolved = {
            "WAIFUGEN_MODE": self.mode.value,
            "WAIFUGEN_HOME": str(self.home),
            "WAIFUGEN_ROSTER": str(self.roster_path),
            "WAIFUGEN_SANDBOX_URL": self.sandbox_url if self.is_sandbox else "(unused)",
            "OLLAMA_HOST": self.ollama_host,
            "OLLAMA_MODEL": self.ollama_model,
            "WAIFUGEN_SECRET_KEY": f"({len(self.secret_keys)} key(s) set)",
            "A2E_MONTHLY_CREDITS": str(self.a2e_monthly_credits),
            "HTTP_TIMEOUT_SECONDS": str(self.http_timeout),
            "A2E_REQUESTS_PER_HOUR": str(self.a2e_requests_per_hour),
            "A2E_RENDER_SECONDS": f"{self.a2e_render_seconds:g}",
            "PUBLISH_STALE_AFTER_HOURS": f"{self.publish_stale_after_hours:g}",
            "WAIFUGEN_LAUNCH_DATE": self.launch_date.isoformat(),
            "ACCOUNTING_CURRENCY": self.money.currency,
            "A2E_CREDIT_PRICE_CENTS": str(self.money.credit_price_cents),
            "RUNPOD_CENTS_PER_SECOND": str(self.money.runpod_cents_per_second),
            "COST_PER_REEL_TARGET_CREDITS": str(self.money.target_credits_per_reel),
            "CREDIT_RECONCILE_TOLERANCE_CREDITS": str(self.money.reconcile_tolerance_credits),
        }
        view = {}
        for spec in SETTINGS:
            raw = self.env.get(spec.name)
            if spec.name in resolved:
                view[spec.name] = resolved[spec.name]
            elif spec.name == "DATABASE_URL":
                view[spec.name] = redaction.mask_url(raw) if raw else "(embedded pgserver)"
            elif spec.secret:
                view[spec.name] = "(set)" if raw else "(not set)"
            else:
                view[spec.name] = raw or f"(default: {spec.default or 'none'})"
        return view


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r}: must not be negative")
    return value


def _positive_int(name: str, raw: str) -> int:
    value = _int(name, raw)
    if value < 1:
        raise ConfigError(f"{name}={raw!r}: must be at least 1")
    return value


def _float(name: str, raw: str, *, zero_ok: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={raw!r}: expected a finite number")
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{name}={raw!r}: must be {'0 or more' if zero_ok else 'positive'}")
    return value


def launch_date(environ: Mapping[str, str] | None = None) -> dt.date:
    """WAIFUGEN_LAUNCH_DATE (or its default): read on its own, because the partitions are
    defined at import, before (and without) the rest of the settings."""
    raw = read_setting("WAIFUGEN_LAUNCH_DATE", os.environ if environ is None else environ)
    raw = (raw or DEFAULT_LAUNCH_DATE).strip()
    try:  # fromisoformat alone would also take 20261101 and 2026-W44
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return dt.date.fromisoformat(raw)
    except ValueError:
        pass
    raise ConfigError(f"WAIFUGEN_LAUNCH_DATE={raw!r}: expected a date YYYY-MM-DD "
                      f"(e.g. {DEFAULT_LAUNCH_DATE})")


def _sandbox_secret_key(home: Path) -> str:
    """A per-checkout development key, created once, so sandbox tokens are encrypted too."""
    from cryptography.fernet import Fernet

    path = home / "sandbox-secret.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=home, prefix=".sandbox-secret-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
                out.write(Fernet.generate_key().decode())
            # Linking never replaces: of two processes starting at once, the first key
            # wins and both use it (a replace would leave them holding different keys).
            with contextlib.suppress(FileExistsError):
                os.link(tmp_name, path)
        finally:
            os.unlink(tmp_name)
    key = path.read_text(encoding="utf-8").strip()
    redaction.register_secret(key)
    return key


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; in production, fail on the first missing one by name."""
    env = os.environ if environ is None else environ
    raw_mode = (env.get("WAIFUGEN_MODE") or "sandbox").strip().lower()
    try:
        mode = Mode(raw_mode)
    except ValueError:
        raise ConfigError(
            f"WAIFUGEN_MODE={raw_mode!r}: expected one of {', '.join(m.value for m in Mode)}"
        ) from None

    values = {s.name: read_setting(s.name, env) for s in SETTINGS}
    if mode is Mode.PRODUCTION:
        missing = [s.name for s in SETTINGS if s.required_in_production and not values[s.name]]
        if missing:
            raise ConfigError(
                "production mode needs these settings (set NAME or NAME_FILE): "
                + ", ".join(missing)
            )

    root = project_root()
    home = Path(values["WAIFUGEN_HOME"] or root / ".waifugen").resolve()
    sandbox_url = (values["WAIFUGEN_SANDBOX_URL"]
                   or f"http://127.0.0.1:{SANDBOX_DEFAULT_PORT}").rstrip("/")
    raw_keys = values["WAIFUGEN_SECRET_KEY"]
    if raw_keys:
        keys = tuple(k.strip() for k in raw_keys.split(",") if k.strip())
        for k in keys:
            redaction.register_secret(k)
    else:
        keys = (_sandbox_secret_key(home),)

    return Settings(
        mode=mode,
        home=home,
        roster_path=Path(values["WAIFUGEN_ROSTER"] or root / "characters.yaml").resolve(),
        database_url=values["DATABASE_URL"],
        sandbox_url=sandbox_url,
        ollama_host=(values["OLLAMA_HOST"] or f"{sandbox_url}/ollama").rstrip("/"),
        ollama_model=values["OLLAMA_MODEL"] or "llama3.1:8b",
        secret_keys=keys,
        a2e_monthly_credits=_int("A2E_MONTHLY_CREDITS", values["A2E_MONTHLY_CREDITS"] or "20000"),
        http_timeout=_float("HTTP_TIMEOUT_SECONDS", values["HTTP_TIMEOUT_SECONDS"] or "30"),
        a2e_requests_per_hour=_positive_int(
            "A2E_REQUESTS_PER_HOUR", values["A2E_REQUESTS_PER_HOUR"] or "100"),
        # The sandbox's A2E renders as it is polled (unless told render times): poll at once.
        a2e_render_seconds=_float("A2E_RENDER_SECONDS", values["A2E_RENDER_SECONDS"]
                                  or ("0" if mode is Mode.SANDBOX else "240"), zero_ok=True),
        publish_stale_after_hours=_float("PUBLISH_STALE_AFTER_HOURS",
                                         values["PUBLISH_STALE_AFTER_HOURS"] or "3"),
        launch_date=launch_date(env),
        money=load_money(values),
        env=values,
    )


@cache
def get_settings() -> Settings:
    """Settings of this process (read once)."""
    return load_settings()
