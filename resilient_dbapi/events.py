"""Events: what a resilient connection did, for listeners, counters and logs.

Pass ``listeners=[callable, ...]`` to :func:`resilient_dbapi.connect` (or register one
for every connection with :func:`add_listener`); each is called with one event object.
Counters are on ``conn.stats``. Logs, under the ``resilient_dbapi`` logger (which has
only a ``NullHandler``: the application decides what is shown), follow the library's
concerns: ``resilient_dbapi.connection`` (a connection lost and replaced, work lost) and
``resilient_dbapi.connect`` (connect attempts, hosts passed over); the background probe
logs to ``resilient_dbapi.probe``. One line at WARNING per outage, with its summary: a
connection lost (or given up: its server turned read-only or stopped serving) and
replaced, with the reason, the error, how long the new connection took and in how many
attempts; a connect that succeeded only after retries, or the giving up (a connect
retried through a long outage says nothing at WARNING until it ends); each attempt and
each statement sent again at DEBUG; a planned replacement (``max_age``, ``idle``,
``reopened``, or ``host_marked``: another connection's failure, reported by its own
line) at INFO. Lost work (a transaction, an outcome, a session) has its own WARNING.
Every line names the driver and the host; no event, counter or log line carries a
password, another connect argument, a statement or its parameters.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .error_kinds import Code

__all__ = [
    "Connected",
    "Event",
    "GaveUp",
    "HostPassedOver",
    "OutcomeUnknown",
    "Pinged",
    "Reconnected",
    "Retrying",
    "SessionLost",
    "Stats",
    "TransactionLost",
    "TransactionReplayed",
    "add_listener",
    "remove_listener",
]

log = logging.getLogger("resilient_dbapi.connection")
connect_log = logging.getLogger("resilient_dbapi.connect")
# Reasons a connection is replaced by plan, or because another connection's failure
# marked its host (reported there), not because it was lost itself.
_PLANNED = frozenset({"max_age", "idle", "reopened", "host_marked"})
# Reasons a connection was lost (the others: its server turned read-only or stopped
# serving, or a planned replacement needed more than one attempt).
_LOST = frozenset({"liveness", "ping", "error", "commit_failed"})


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events; ``where`` names the server (never a secret)."""

    where: str


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The first physical connection is open."""

    attempts: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Reconnected(Event):
    """A physical connection was replaced; ``reason`` is liveness, ping, max_age, idle,
    error, read_only, not_ready (a Galera node that stopped serving), commit_failed (1180),
    reopened or host_marked (another connection of the same creator found its host down
    or in the wrong role), and ``code`` the driver error that caused it, if any."""

    reason: str
    code: Code | None
    attempts: int
    seconds: float


@dataclass(frozen=True, slots=True)
class HostPassedOver(Event):
    """With several hosts: one was not used. ``why`` is ``"unreachable"`` (``code`` is
    the driver's error), ``"read-only"``, ``"writable"`` or ``"not ready"`` (the role did
    not suit the target: a Galera node that serves nothing is not ready), ``"turned
    read-only"`` or ``"stopped serving"`` (it refused a statement under a connection), or
    ``"silent"`` (a statement heard nothing within the read timeout)."""

    why: str
    code: Code | None


@dataclass(frozen=True, slots=True)
class Pinged(Event):
    ok: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class Retrying(Event):
    """``what`` is "connect" (another connect attempt after ``wait`` seconds) or
    "statement" (a statement safe to send again, sent on a new connection)."""

    what: str
    attempt: int
    wait: float
    code: Code | None


@dataclass(frozen=True, slots=True)
class GaveUp(Event):
    """Connecting failed for good: the retry policy's attempts or deadline ran out."""

    attempts: int
    code: Code | None


@dataclass(frozen=True, slots=True)
class TransactionLost(Event):
    code: Code | None


@dataclass(frozen=True, slots=True)
class TransactionReplayed(Event):
    """A transaction lost with its connection ran again on a new one and every result
    matched (see ``ReplayTransaction``): the caller's statement went on."""

    statements: int
    seconds: float


@dataclass(frozen=True, slots=True)
class OutcomeUnknown(Event):
    code: Code | None


@dataclass(frozen=True, slots=True)
class SessionLost(Event):
    code: Code | None
    lost: tuple[str, ...]


@dataclass
class Stats:
    """Counters of one resilient connection (``conn.stats``)."""

    connects: int = 0
    reconnects: int = 0
    reconnect_reasons: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    failed_pings: int = 0
    connect_retries: int = 0
    statement_resends: int = 0
    gave_up: int = 0
    transactions_lost: int = 0
    transactions_replayed: int = 0
    outcomes_unknown: int = 0
    sessions_lost: int = 0
    concurrent_use_refused: int = 0
    hosts_passed_over: int = 0


Listener = Callable[[Event], object]
_global: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Call ``listener`` with the events of every resilient connection."""
    if not callable(listener):
        raise TypeError(
            f"a listener must be callable with one event, got a {type(listener).__qualname__}"
        )
    _global.append(listener)


def remove_listener(listener: Listener) -> None:
    _global.remove(listener)


def check_listeners(listeners: Iterable[Listener] | None) -> tuple[Listener, ...]:
    if listeners is None:
        return ()
    if not isinstance(listeners, list | tuple):
        raise TypeError(
            f"listeners must be a list of callables, got a {type(listeners).__qualname__}"
        )
    for listener in listeners:
        if not callable(listener):
            raise TypeError(
                f"a listener must be callable with one event, got a {type(listener).__qualname__}"
            )
    return tuple(listeners)


class Observer:
    """Counts, logs and hands out the events of one connection."""

    __slots__ = ("listeners", "stats")

    def __init__(self, listeners: tuple[Listener, ...]) -> None:
        self.listeners = listeners
        self.stats = Stats()

    def emit(self, event: Event) -> None:
        self._count_and_log(event)
        for listener in (*self.listeners, *_global):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the database call
                log.exception("resilient_dbapi listener %r failed", listener)

    def _count_and_log(self, event: Event) -> None:
        stats = self.stats
        if isinstance(event, Connected):
            stats.connects += 1
            if event.attempts > 1:
                connect_log.warning(
                    "connected to %s after %d attempts in %.1f s",
                    event.where,
                    event.attempts,
                    event.seconds,
                )
        elif isinstance(event, Reconnected):
            stats.connects += 1
            stats.reconnects += 1
            stats.reconnect_reasons[event.reason] += 1
            if event.reason in _PLANNED and event.attempts == 1:
                # Planned, or (host_marked) following another connection's finding,
                # which its own line (a host passed over) reported already.
                log.info(
                    "reconnected %s: replaced its connection (reason=%s) in %.1f ms",
                    event.where,
                    event.reason,
                    event.seconds * 1000,
                )
            else:
                log.warning(
                    "connection to %s %s (reason=%s, error=%s): reconnected in %.1f ms%s",
                    event.where,
                    "lost" if event.reason in _LOST else "given up",
                    event.reason,
                    event.code,
                    event.seconds * 1000,
                    f" after {event.attempts} attempts" if event.attempts > 1 else "",
                )
        elif isinstance(event, HostPassedOver):
            stats.hosts_passed_over += 1
            connect_log.warning(
                "host %s passed over: %s (error %s)", event.where, event.why, event.code
            )
        elif isinstance(event, Pinged):
            stats.pings += 1
            stats.failed_pings += not event.ok
        elif isinstance(event, Retrying):
            if event.what == "connect":
                stats.connect_retries += 1
                # The outage's summary is the line that ends it (connected after N
                # attempts, or gave up): each attempt only at DEBUG.
                connect_log.debug(
                    "connect attempt %d to %s failed (error %s); retrying in %.3f s",
                    event.attempt,
                    event.where,
                    event.code,
                    event.wait,
                )
            else:
                stats.statement_resends += 1
                log.debug(
                    "connection to %s lost (error %s); sending the statement again "
                    "on a new connection",
                    event.where,
                    event.code,
                )
        elif isinstance(event, GaveUp):
            stats.gave_up += 1
            connect_log.warning(
                "gave up connecting to %s after %d attempts (error %s)",
                event.where,
                event.attempts,
                event.code,
            )
        elif isinstance(event, TransactionReplayed):
            stats.transactions_replayed += 1
            log.info(
                "transaction on %s replayed on the new connection: %d statements, every "
                "result as before, in %.1f ms",
                event.where,
                event.statements,
                event.seconds * 1000,
            )
        elif isinstance(event, TransactionLost):
            stats.transactions_lost += 1
            log.warning("transaction lost on %s (error %s)", event.where, event.code)
        elif isinstance(event, OutcomeUnknown):
            stats.outcomes_unknown += 1
            log.warning(
                "outcome unknown on %s (error %s): a write or COMMIT was in flight",
                event.where,
                event.code,
            )
        elif isinstance(event, SessionLost):
            stats.sessions_lost += 1
            log.warning(
                "session lost on %s (error %s): %s", event.where, event.code, ", ".join(event.lost)
            )
