"""Policies: small immutable values that decide what to do, never how.

A policy never sleeps, reads the clock or touches a socket: the engine hands it the
facts (ages, idle times, attempt numbers, elapsed seconds) and carries out its answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tenacity

from ..error_kinds import ErrorTable
from ._profiles import ProfileError, load, profile_names

__all__ = [
    "DeadPeerTimeout",
    "MaxAge",
    "PingOnCheckout",
    "Policy",
    "ProfileError",
    "ReplayTransaction",
    "RetryOnError",
    "default_policies",
    "load",
    "profile_names",
]


_DAY = 86400.0
"""The longest timeout, idle time, wait or retry deadline a policy accepts, in seconds:
far beyond any sensible setting, far inside what the consumers take (a socket timeout
or ``time.sleep()`` overflows past about 9.2e9 s; asyncio's loop blocks at most a day
at a time anyway), and a value past it is most likely a unit mistake."""

_YEAR = 365 * _DAY
"""The longest ``MaxAge``: MySQL's own ceiling for ``wait_timeout``."""


def _seconds(
    owner: str, name: str, value: object, *, strict: bool, high: float = _DAY, low: float = 0.0
) -> float:
    """``value`` as a number of seconds from ``low`` (excluded if ``strict``) to ``high``."""
    allowed = f"{'>' if strict else '>='} {low:g} and <= {high:.0f} ({_spoken(high)})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{owner}: {name} must be a number of seconds {allowed}, got {_shown(value)}"
        )
    # Compared before any float(): an int too big for a float compares exactly, and NaN
    # fails every comparison.
    if not (low < value <= high if strict else low <= value <= high):
        raise ValueError(f"{owner}: {name} must be {allowed}, got {_shown(value)}")
    return float(value)


def _shown(value: object) -> str:
    """``repr(value)``, but a huge int by its size: its digits would fill the message (and
    past 4300 of them ``repr()`` itself raises)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{'a negative' if value < 0 else 'an'} int of {value.bit_length()} bits"
    return repr(value)


def _spoken(seconds: float) -> str:
    return "one year" if seconds == _YEAR else "one day"


@dataclass(frozen=True)
class PingOnCheckout:
    """Check the connection before a statement is sent outside a transaction.

    Every checkout runs a zero-round-trip liveness check of the driver's socket (a few
    microseconds). After ``idle`` seconds without use it also sends a COM_PING bounded by
    ``timeout`` seconds, which catches a half-open connection the socket cannot show.
    ``idle=0`` pings at every checkout (the cost of the classic pre-ping).

    ``skip_recent`` skips the socket check when the connection was used less than that
    many seconds ago (HikariCP skips validation for 0.5 s). It saves a system call per
    statement on a busy connection; the price is that a connection killed inside that
    window is found by ``cursor.execute()`` itself: a read is still sent again, but a
    write then raises ``OutcomeUnknownError`` (or ``TransactionLostError``) instead of
    being sent safely on a new connection. Only ``execute()`` skips the check.

    Each is at most one day (86400 s); ``timeout`` reaches the driver's socket.
    """

    idle: float = 30.0
    timeout: float = 5.0
    skip_recent: float = 0.5

    def __post_init__(self) -> None:
        owner = "PingOnCheckout"
        object.__setattr__(self, "idle", _seconds(owner, "idle", self.idle, strict=False))
        object.__setattr__(self, "timeout", _seconds(owner, "timeout", self.timeout, strict=True))
        object.__setattr__(
            self, "skip_recent", _seconds(owner, "skip_recent", self.skip_recent, strict=False)
        )
        if self.skip_recent >= self.idle and self.idle > 0:
            raise ValueError(
                f"PingOnCheckout: skip_recent ({self.skip_recent:g}) must be < idle ({self.idle:g})"
            )

    def ping_timeout(self, idle_for: float) -> float | None:
        """The ping's time limit if a connection idle for ``idle_for`` s needs one."""
        return self.timeout if idle_for >= self.idle else None


@dataclass(frozen=True)
class MaxAge:
    """Replace a connection once it is ``seconds`` old, between transactions.

    Each connection's lifetime is drawn at connect, shortened by up to ``jitter`` of it, so
    a fleet opened together does not reconnect together. With ``follow_wait_timeout``, a
    connection idle for nearly the server's ``wait_timeout`` is replaced before the server
    can close it while a statement is on its way. ``seconds`` is at most one year (MySQL's
    own ceiling for ``wait_timeout``).
    """

    seconds: float = 3600.0
    jitter: float = 0.05
    follow_wait_timeout: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "seconds", _seconds("MaxAge", "seconds", self.seconds, strict=True, high=_YEAR)
        )
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float):
            raise TypeError(
                f"MaxAge: jitter must be a number between 0 and 0.5, got {self.jitter!r}"
            )
        if not 0 <= self.jitter <= 0.5:  # NaN fails too
            raise ValueError(f"MaxAge: jitter must be between 0 and 0.5, got {_shown(self.jitter)}")
        object.__setattr__(self, "jitter", float(self.jitter))
        if not isinstance(self.follow_wait_timeout, bool):
            raise TypeError(
                "MaxAge: follow_wait_timeout must be True or False, "
                f"got {self.follow_wait_timeout!r}"
            )

    def lifetime(self, draw: float) -> float:
        """The lifetime of a new connection, for a random ``draw`` in [0, 1)."""
        return self.seconds * (1.0 - self.jitter * draw)

    def idle_limit(self, wait_timeout: float | None) -> float | None:
        """Idle seconds after which to reconnect, given the server's ``wait_timeout``."""
        if not self.follow_wait_timeout or not wait_timeout or wait_timeout <= 0:
            return None
        return wait_timeout - min(30.0, 0.1 * wait_timeout)


@dataclass(frozen=True)
class DeadPeerTimeout:
    """Give up on a connection whose server has gone silent for about ``seconds``.

    A server that vanishes without a word (a dead host, a blackholing firewall, a cable
    pulled) leaves a statement waiting forever: nothing on the socket says it is gone.
    The kernel is told to give up instead (libpq's ``keepalives_*`` and
    ``tcp_user_timeout``): sent data unacknowledged for ``seconds``, or keepalive probes
    unanswered over about the same time, fail the connection with the driver's own
    "lost connection" error, and the safety rules decide what the caller sees. A live
    server acknowledges at once even while it runs a long query, so no query length is
    capped. Set on each new connection's TCP socket where the driver shows it (Linux
    honours every setting; other systems those they have).

    ``seconds`` is from 1 to one day (86400 s). Leave the policy out to keep the
    system's defaults: on Linux some 15 minutes of retransmissions for a statement that
    was never acknowledged, and over two hours (or forever, without keepalives) for a
    reply that never comes.
    """

    seconds: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "seconds",
            _seconds("DeadPeerTimeout", "seconds", self.seconds, strict=False, low=1.0),
        )


@dataclass
class _AttemptState:
    """The parts of tenacity's ``RetryCallState`` its stop and wait strategies read."""

    attempt_number: int
    seconds_since_start: float
    upcoming_sleep: float = 0.0
    outcome: Any = None
    idle_for: float = 0.0


@dataclass(frozen=True)
class RetryOnError:
    """Retry what is safe to retry, with tenacity's strategies deciding when to stop.

    - Connecting (first connect and every reconnect) is retried on transient errors
      (server down, too many connections) with exponential backoff and jitter until
      ``attempts`` tries or ``deadline`` seconds, whichever comes first. Access denied and
      unknown database are never retried.
    - A statement that provably never reached the server, or a plain read outside a
      transaction with writes, is sent again on a new connection up to ``resend`` times.

    ``stop`` and ``wait`` take any tenacity stop/wait strategy (composed with ``|``, ``&``
    and ``+`` as usual) and replace the ones built from the numbers. ``deadline``,
    ``backoff`` and ``max_backoff`` are at most one day (86400 s): a wait is slept.
    """

    attempts: int | None = 20
    deadline: float | None = 30.0
    backoff: float = 0.05
    max_backoff: float = 2.0
    resend: int = 2
    stop: tenacity.stop.stop_base | None = field(default=None, compare=False)
    wait: tenacity.wait.wait_base | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        owner = "RetryOnError"
        if self.attempts is not None and (
            isinstance(self.attempts, bool) or not isinstance(self.attempts, int)
        ):
            raise TypeError(f"{owner}: attempts must be an int >= 1 or None, got {self.attempts!r}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"{owner}: attempts must be >= 1 or None, got {_shown(self.attempts)}")
        if self.deadline is not None:
            object.__setattr__(
                self, "deadline", _seconds(owner, "deadline", self.deadline, strict=True)
            )
        if self.attempts is None and self.deadline is None and self.stop is None:
            raise ValueError(
                f"{owner}: attempts and deadline cannot both be None (retries must end); "
                "give one of them, or a tenacity stop strategy"
            )
        object.__setattr__(self, "backoff", _seconds(owner, "backoff", self.backoff, strict=False))
        object.__setattr__(
            self, "max_backoff", _seconds(owner, "max_backoff", self.max_backoff, strict=False)
        )
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"{owner}: max_backoff ({self.max_backoff:g}) must be >= backoff ({self.backoff:g})"
            )
        if isinstance(self.resend, bool) or not isinstance(self.resend, int):
            raise TypeError(f"{owner}: resend must be an int >= 0, got {self.resend!r}")
        if self.resend < 0:
            raise ValueError(f"{owner}: resend must be an int >= 0, got {_shown(self.resend)}")
        if self.stop is not None and not callable(self.stop):
            raise TypeError(f"{owner}: stop must be a tenacity stop strategy, got {self.stop!r}")
        if self.wait is not None and not callable(self.wait):
            raise TypeError(f"{owner}: wait must be a tenacity wait strategy, got {self.wait!r}")

    def _stop_strategy(self) -> tenacity.stop.stop_base:
        if self.stop is not None:
            return self.stop
        stops: list[tenacity.stop.stop_base] = []
        if self.attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.attempts))
        if self.deadline is not None:
            stops.append(tenacity.stop_before_delay(self.deadline))
        return tenacity.stop_any(*stops)

    def _wait_strategy(self) -> tenacity.wait.wait_base:
        if self.wait is not None:
            return self.wait
        return tenacity.wait_exponential(
            multiplier=self.backoff, max=self.max_backoff
        ) + tenacity.wait_random(0, self.backoff)

    def connect_wait(self, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before connect attempt ``attempt + 1``, or None to give up.

        ``attempt`` counts the attempts made so far; ``elapsed`` is the seconds since the
        first of them started.
        """
        state = _AttemptState(attempt_number=attempt, seconds_since_start=elapsed)
        state.upcoming_sleep = float(self._wait_strategy()(state))  # type: ignore[arg-type]
        if self._stop_strategy()(state):  # type: ignore[arg-type]
            return None
        return state.upcoming_sleep

    def may_resend(self, resends_done: int) -> bool:
        return resends_done < self.resend


def _count(owner: str, name: str, value: object, high: int) -> int:
    """``value`` as a whole number from 1 to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int from 1 to {high}, got {_shown(value)}")
    if not 1 <= value <= high:
        raise ValueError(f"{owner}: {name} must be an int from 1 to {high}, got {_shown(value)}")
    return value


@dataclass(frozen=True)
class ReplayTransaction:
    """Opt in to verified transaction replay (off unless given).

    While a transaction is open, each statement is kept with its parameters and a digest
    of what the caller could see of its result (its rows, ``rowcount``, ``lastrowid``,
    ``description``, the warning count). When the connection is lost before ``COMMIT``
    was sent, and the server provably rolled the transaction back, a new connection
    runs the same statements again inside a transaction opened the same way, and
    compares each digest: all equal, the caller's statement goes on as if nothing
    happened; any difference or error, the replay is rolled back and
    ``TransactionLostError`` says at which statement it diverged.

    A transaction is not replayed (the rules without replay apply) once it holds more
    than ``max_statements`` statements, ``max_bytes`` of statement text and parameters,
    or is older than ``max_seconds``; nor when it ran a statement whose effect the
    digest cannot see or a new session cannot rebuild (see the documentation's
    Transactions page). PyMySQL and aiomysql only, for now.
    """

    max_statements: int = 64
    max_bytes: int = 1 << 20
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        owner = "ReplayTransaction"
        _count(owner, "max_statements", self.max_statements, 100_000)
        _count(owner, "max_bytes", self.max_bytes, 1 << 30)
        object.__setattr__(
            self,
            "max_seconds",
            _seconds(owner, "max_seconds", self.max_seconds, strict=True),
        )


Policy = PingOnCheckout | MaxAge | RetryOnError | DeadPeerTimeout | ReplayTransaction | ErrorTable


def default_policies() -> list[Policy]:
    """The default set: liveness check with a ping after 30 s idle, a one-hour max age
    with 5 % jitter that also follows ``wait_timeout``, safe retries for 30 s, and a
    server silent for 10 s given up."""
    return [PingOnCheckout(), MaxAge(), RetryOnError(), DeadPeerTimeout()]
