"""Whether a unit of work that failed runs again (no I/O: the proxies' run_transaction
carries the decisions out)."""

from __future__ import annotations

import enum
from typing import Any

from .error_kinds import ErrorKind
from .errors import OutcomeUnknownError, TransactionLostError
from .policies import RetryOnError

__all__ = ["Failure", "UnitOfWork"]


class Failure(enum.Enum):
    """How a unit of work failed, as far as running it again is concerned."""

    ROLLED_BACK = "rolled_back"
    """The server rolled the whole transaction back (deadlock, serialization failure) or
    the connection died with it (TransactionLostError): run it all again."""
    LOCK_WAIT = "lock_wait"
    """A statement waited too long for a lock (1205): the server rolled back only that
    statement, so the transaction must be rolled back before running it again."""
    UNKNOWN = "unknown"
    """The COMMIT's outcome is unknown: only the caller's ``already_applied`` can tell."""
    OTHER = "other"
    """Anything else: raised as it is."""


_LOCK_WAIT_TIMEOUT = 1205


class UnitOfWork:
    """The retry state of one ``run_transaction`` call."""

    __slots__ = ("adapter", "attempts", "errors", "policy")

    def __init__(self, policy: RetryOnError, adapter: Any, errors: Any) -> None:
        if not isinstance(policy, RetryOnError):
            raise TypeError(
                f"retry must be a RetryOnError (its attempts, deadline and backoff apply to "
                f"the whole unit of work), got {type(policy).__qualname__}"
            )
        self.policy = policy
        self.adapter = adapter
        self.errors = errors
        self.attempts = 0

    def classify(self, exc: BaseException) -> Failure:
        if isinstance(exc, TransactionLostError):
            return Failure.ROLLED_BACK
        if isinstance(exc, OutcomeUnknownError):
            return Failure.UNKNOWN
        code = self.adapter.error_code(exc)
        if code is None:
            return Failure.OTHER
        if code == _LOCK_WAIT_TIMEOUT:
            return Failure.LOCK_WAIT
        if self.errors.kind(code) is ErrorKind.TRANSACTION_ROLLED_BACK:
            return Failure.ROLLED_BACK
        return Failure.OTHER

    def again_after(self, elapsed: float) -> float | None:
        """One more attempt failed in a way worth running again: seconds to wait first,
        or None once the policy's attempts or deadline are used up."""
        self.attempts += 1
        return self.policy.connect_wait(self.attempts, elapsed)
