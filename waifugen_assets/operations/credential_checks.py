"""How each outside credential is proven before it is stored: the cheapest authenticated read
its system has, or a format check where no read exists that is both cheap and safe.

A check gets the candidate value (never the configured one) and returns a short note about
what accepted it, or raises `Refused` with the system's answer. Nothing here prints, logs or
returns the value; errors from the HTTP layer are redacted already, and every candidate is
registered as a secret before any request carries it.

Format only, on purpose:
- OAuth app secrets (TikTok, YouTube, Fanvue): the only call that proves one is a token
  refresh, which spends an account's refresh token (TikTok rotates it) for no gain. The next
  scheduled refresh proves the secret; a wrong one shows there as an auth failure.
- Webhook secrets: shared secrets we choose and hand to the platform; nothing to ask.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from resources import a2e, runpod, telegram
from resources.http import HttpError, json_request, make_client
from waifugen_assets.core import redaction
from waifugen_assets.core.config import Settings


class Refused(Exception):
    """The candidate value was not accepted; the message is the system's answer (no value)."""


# (value, settings, the paired setting's new value if any) -> a note on what accepted it
Check = Callable[[str, Settings, str | None], str]

_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no spaces, newlines or controls
_BOT_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")
_TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}")  # setWebhook's alphabet, >= 32 ours
MAX_LENGTH = 4096


def check_shape(value: str, minimum: int = 8) -> None:
    """Every credential: one line of visible ASCII of a sane length."""
    if not _PRINTABLE.fullmatch(value):
        raise Refused("the value has spaces, line breaks or non-ASCII characters (pass the "
                      "bare secret, one line)")
    if not minimum <= len(value) <= MAX_LENGTH:
        raise Refused(f"the value is {len(value)} characters long, expected "
                      f"{minimum} to {MAX_LENGTH}")


def _http_answer(call: Callable[[], str]) -> str:
    try:
        return call()
    except HttpError as exc:  # messages name system, method and path; never a credential
        raise Refused(redaction.redact(str(exc))) from None
    except ValueError as exc:  # a client refusing the value's shape before any request
        raise Refused(redaction.redact(str(exc))) from None
    except httpx.HTTPError as exc:  # one the shared layer did not classify (a protocol error)
        raise Refused(redaction.redact(f"{type(exc).__name__}: {exc}")) from None


def check_a2e(value: str, settings: Settings, _pair: str | None = None) -> str:
    check_shape(value)
    base = settings.service_url("A2E_BASE_URL", a2e.SYSTEM, a2e.PRODUCTION_URL)

    def read() -> str:
        with a2e.A2EClient(value, base_url=base, timeout=settings.http_timeout,
                           limiter=a2e.a2e_limiter(settings.a2e_requests_per_hour)) as client:
            return f"A2E accepted it (balance {client.remaining_coins()} coins)"
    return _http_answer(read)


def check_runpod(value: str, settings: Settings, _pair: str | None = None) -> str:
    check_shape(value)
    endpoint = settings.get("RUNPOD_ENDPOINT_ID", sandbox_default=runpod.SANDBOX_ENDPOINT_ID)
    if not endpoint:
        raise Refused("RUNPOD_ENDPOINT_ID is not set: there is no endpoint to check the key "
                      "against")
    base = settings.service_url("RUNPOD_BASE_URL", runpod.SYSTEM, runpod.PRODUCTION_URL)

    def read() -> str:  # GET /v2/<endpoint>/health: a read, no job, no cost
        with make_client(runpod.SYSTEM, base_url=f"{base}/v2/{endpoint}",
                         headers={"Authorization": f"Bearer {value}"},
                         timeout=settings.http_timeout) as client:
            json_request(client, "GET", "/health", require=["workers"])
        return f"RunPod accepted it (endpoint {endpoint} health)"
    return _http_answer(read)


def check_telegram_bot(value: str, settings: Settings, _pair: str | None = None) -> str:
    if not _BOT_TOKEN.fullmatch(value):
        raise Refused("not a bot token: expected <bot id>:<secret> as BotFather gives it")
    base = settings.service_url("TELEGRAM_API_URL", telegram.SYSTEM, telegram.PRODUCTION_URL)

    def read() -> str:
        with telegram.TelegramClient(value, base, timeout=settings.http_timeout) as client:
            me = client.get_me()
        return f"Telegram accepted it (bot @{me.get('username', me['id'])})"
    return _http_answer(read)


def check_s3(value: str, settings: Settings, access_key_id: str | None = None) -> str:
    """HeadBucket on S3_BUCKET with the new secret and the new (else configured) key id."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    check_shape(value, minimum=16)
    bucket = settings.get("S3_BUCKET")
    key_id = access_key_id or settings.get("S3_ACCESS_KEY_ID")
    if not bucket:
        raise Refused("S3_BUCKET is not set: there is no bucket to check the key against")
    if not key_id:
        raise Refused("no access key id: set S3_ACCESS_KEY_ID or pass the new one with the "
                      "secret")
    check_shape(key_id, minimum=4)
    timeout = settings.http_timeout
    endpoint = settings.get("S3_ENDPOINT_URL")
    try:
        client = boto3.client(
            "s3", endpoint_url=endpoint,
            region_name=settings.get("S3_REGION", default="auto", sandbox_default="auto"),
            aws_access_key_id=key_id, aws_secret_access_key=value,
            config=Config(connect_timeout=timeout, read_timeout=timeout,
                          retries={"max_attempts": 3, "mode": "standard"}))
    except ValueError as exc:  # e.g. an endpoint without a scheme
        raise Refused(f"S3_ENDPOINT_URL={endpoint}: {exc}") from None
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        detail = " ".join(str(part) for part in (error.get("Code"), error.get("Message"))
                          if part and str(part) != status)  # HEAD answers carry no body
        raise Refused(redaction.redact(f"S3 HeadBucket {bucket}: HTTP {status} {detail}"
                                       .strip())) from None
    except BotoCoreError as exc:
        raise Refused(redaction.redact(f"S3 HeadBucket {bucket}: {exc}")) from None
    finally:
        client.close()
    return f"S3 accepted it (HeadBucket {bucket})"


def check_app_secret(value: str, _settings: Settings, _pair: str | None = None) -> str:
    check_shape(value, minimum=16)
    return "format checked only (an app secret is proven by the next token refresh)"


def check_telegram_webhook(value: str, _settings: Settings, _pair: str | None = None) -> str:
    if not _TELEGRAM_SECRET.fullmatch(value):
        raise Refused("a Telegram webhook secret is 32 to 256 of A-Z a-z 0-9 _ - (e.g. "
                      "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return "format checked only (a shared secret we choose)"


def check_webhook_secret(value: str, _settings: Settings, _pair: str | None = None) -> str:
    check_shape(value, minimum=16)
    return "format checked only (a shared secret)"
