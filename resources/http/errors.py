"""Exceptions of the HTTP layer: one base class, one subclass per way a call can end badly.

Every message is built from the system name, the method and the URL *path* (never the query,
never headers) and passes through `redact`, so printing or logging an error cannot leak a token.
"""

from __future__ import annotations

from typing import Any

from waifugen_assets.core.redaction import redact


class HttpError(Exception):
    """A call to an outside system failed; `.system`, `.status`, `.reason`, `.retryable`."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        system: str,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.system = system
        self.status = status
        self.reason = redact(reason)
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments break the default Exception pickling (used by multiprocessing).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[HttpError], args: tuple[Any, ...], state: dict[str, Any]) -> HttpError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RetryableError(HttpError):
    """A transient failure (5xx, connection refused) that outlived the retries; try again later."""

    retryable = True


class RateLimited(RetryableError):
    """The server (429) or our own limiter said "not now"; `.retry_after` says for how long."""

    def __init__(self, message: str, *, system: str, retry_after: float | None,
                 status: int | None = None, reason: str = "") -> None:
        super().__init__(message, system=system, status=status, reason=reason,
                         retry_after=retry_after)


class AuthError(HttpError):
    """Credentials rejected (401): refresh the token once and retry, else re-authorise."""


class PermanentError(HttpError):
    """The platform refused the request for a reason retrying cannot fix; `.reason` says why."""


class UnknownOutcome(HttpError):
    """The request was sent but no answer came back: the platform may have acted on it.

    Never resend blindly: reconcile first (status fetch, container status, list own uploads).
    """


class InvalidResponse(HttpError):
    """The body is not what the protocol promises (not JSON, wrong shape, missing field)."""
