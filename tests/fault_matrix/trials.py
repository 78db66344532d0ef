"""One case of the fault matrix through the sync proxy (:class:`Trial`), what it saw
(:class:`Observation`), and how the steps of a row's cases run side by side (:func:`each`).

What a trial runs is defined here too, as the trial sees it: an :class:`Operation` and a
:class:`Fault` (whose hooks get the trial, or the :class:`Row` of trials). The operations
and the faults themselves live in :mod:`.operations` and :mod:`.faults`, above this module.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi import (
    MYSQL_ERRORS,
    ErrorKind,
    OutcomeUnknownError,
    ResilientError,
    TransactionLostError,
    events,
)
from resilient_dbapi.policies import Policy, ReplayTransaction, default_policies
from resilient_dbapi.testing import FaultProxy

from .common import (
    APP_PASSWORD,
    APP_USER,
    ASYNC,
    LOST,
    OK,
    RECOVERED,
    STEP_TIMEOUT,
    SYNC,
    UNKNOWN,
    error,
    gave_up,
    kill,
    open_admin,
    timed_out,
    tls_kwargs,
)

__all__ = ["Fault", "Observation", "Operation", "Row", "Trial", "each"]


# -- what a case runs: an operation, a fault ---------------------------------------------


def _nothing(trial: Trial, slow: float) -> None:
    """No set-up."""


@dataclass(frozen=True)
class Operation:
    """An operation in its context; ``run(trial, slow)`` and ``setup(trial, slow)`` take
    ``slow`` seconds on the server when ``slow`` is not 0 (the in-flight faults' form)."""

    name: str
    title: str
    description: str
    autocommit: bool
    run: Callable[[Trial, float], None]
    setup: Callable[[Trial, float], None] = _nothing
    blocks_commits: bool = False  # its slow form holds a global lock: run it alone
    replay: bool = False  # ReplayTransaction() added to the fault's policies

    def policies(self, fault: Fault) -> tuple[Policy, ...] | None:
        """The policies of its case under ``fault``."""
        if not self.replay:
            return fault.policies
        chosen = default_policies() if fault.policies is None else fault.policies
        return (*chosen, ReplayTransaction())


class Fault:
    """A fault, how it is injected, and the outcome each operation must have under it.

    ``inject_all`` acts once for the row (on the server), ``inject`` per case just
    before its operation, ``strike`` per case ``strike_after`` seconds into an operation
    that runs ``slow`` seconds on the server (the in-flight faults). The hooks are
    synchronous; the asyncio cases call them from a worker thread, so the event loop
    keeps running (and reading its sockets) meanwhile, as in a service."""

    name = ""
    title = ""
    how = ""
    how_async = ""  # what differs on the asyncio side, if anything
    expected: Mapping[str, str] = MappingProxyType({})
    # The asyncio proxy's expected outcomes, where the README says they differ.
    expected_async: Mapping[str, str] | None = None
    notes: Mapping[str, str] = MappingProxyType({})  # why, where it is not obvious
    notes_async: Mapping[str, str] = MappingProxyType({})
    session_sql: tuple[str, ...] = ()  # sent through the proxy right after connecting
    own_server = False  # restarts, stops or reconfigures the server
    app_user = False  # the client must not have SUPER
    at_connect = False  # the fault hits the first connect
    in_flight = False
    within_skip_recent = 0.0  # the operation must come within this of the last use
    needs_admin = False  # an admin connection per case, open before the fault strikes
    slow = 0.0
    strike_after = 0.3
    policies: tuple[Policy, ...] | None = None
    deadline: float | None = None  # the retry deadline of ``policies``, when it matters
    client_kwargs: Mapping[str, Any] = MappingProxyType({})
    # asyncio: an asyncio.timeout around the operation, what aiomysql has instead of
    # PyMySQL's read_timeout (None: no limit but STEP_TIMEOUT).
    async_timeout: float | None = None
    # asyncio: the operation waits (at most 2 s) until the event loop has read the end of
    # the connection's stream, so that the case shows what the loop's knowledge does.
    async_until_eof = False

    def outcomes(self, mode: str) -> Mapping[str, str]:
        """The expected outcome of each operation through the ``mode`` proxy."""
        if mode == ASYNC and self.expected_async is not None:
            return self.expected_async
        return self.expected

    def make_proxy(self, port: int, host: str) -> FaultProxy | None:
        return None

    def time_limit(self, outcome: str) -> float | None:
        """At most how long an operation with ``outcome`` may take (None: no limit)."""
        return None

    def before_connect(self, row: Row) -> None:
        pass

    def inject_all(self, row: Row) -> None:
        pass

    def inject(self, trial: Trial) -> None:
        pass

    def strike(self, trial: Trial) -> None:
        pass

    def after_all(self, row: Row) -> None:
        pass


@dataclass
class Row:
    """One fault's cases, run together, and what the fault keeps between its steps."""

    fault: Fault
    server: Any
    trials: list[Trial]
    threads: list[threading.Thread] = field(default_factory=list)
    holders: list[Any] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def later(self, seconds: float, action: Callable[[], None], what: str) -> None:
        """Run ``action`` in ``seconds`` from a thread (joined in ``after_all``)."""

        def run() -> None:
            time.sleep(seconds)
            try:
                action()
            except Exception as exc:  # recorded, never raised in a thread
                self.problems.append(f"{what} failed: {exc!r}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(STEP_TIMEOUT)


# -- one case -------------------------------------------------------------------------------


@dataclass
class Observation:
    """What one case did: the outcome label, the error or reconnect behind it, the
    operation's seconds, and any broken invariant (or harness failure)."""

    outcome: str
    detail: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


class Trial:
    """One case being run through the sync proxy: its database, its resilient connection
    and the client's ledger of writes (acknowledged, of unknown outcome, pending in the
    transaction). :class:`~.trials_async.AsyncTrial` is its asyncio twin."""

    mode = SYNC
    _numbers = itertools.count(1)

    def __init__(self, fault: Fault, op: Operation, server: Any) -> None:
        self.fault, self.op, self.server = fault, op, server
        self.database = f"fm_{os.getpid()}_{next(self._numbers)}"
        self.conn: Any = None
        self.admin: Any = None  # for the faults that kill: opened before they strike
        self.proxy: FaultProxy | None = None
        self.stream: Any = None
        self.stream_rows = 0
        self.blocker: threading.Thread | None = None
        self.events: list[events.Event] = []
        self.events_from = 0
        self.acknowledged: set[str] = set()
        self.unknown: set[str] = set()
        self.pending: set[str] = set()  # acknowledged inside the open transaction
        self.attempted: set[str] = set()  # by the operation
        self.outcome = ""
        self.detail = ""
        self.seconds = 0.0
        self.problems: list[str] = []
        self.broken = False
        self.last_used = 0.0
        self.baseline = 0
        self.thread_id = 0
        self.struck_at: float | None = None
        self._uids = itertools.count(1)
        self._keys = itertools.count(1000)  # past the seed row's id

    # -- helpers ------------------------------------------------------------------------

    @property
    def expected(self) -> str:
        """The outcome the README's rules give this case."""
        return self.fault.outcomes(self.mode)[self.op.name]

    def new_uid(self) -> str:
        return f"{self.op.name}-{next(self._uids)}"

    def new_key(self) -> int:
        """A row id the caller chooses (``mid_txn_replay``)."""
        return next(self._keys)

    def expect(self, what: str, got: object, wanted: object) -> None:
        if got != wanted:
            self.problems.append(f"{what}: got {got!r}, expected {wanted!r}")

    def idle_until(self, seconds: float) -> None:
        """Sleep until the connection has been idle for ``seconds``."""
        wait = self.last_used + seconds - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def fail(self, what: str) -> None:
        self.broken = True
        self.outcome = self.outcome or "harness error"
        self.problems.append(what)

    def _replaced(self) -> int:
        stats = self.conn.stats
        return int(stats.reconnects + stats.connect_retries)

    def _read_back(self, sql: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(
            **self.server.connect_kwargs(
                database=self.database, autocommit=True, **tls_kwargs(self.server)
            )
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def block_commits(self, seconds: float) -> None:
        """Hold every COMMIT on the server for ``seconds`` (a global read lock)."""
        admin = open_admin(self.server)
        cur = admin.cursor()
        cur.execute("SET SESSION lock_wait_timeout = 5")
        cur.execute("FLUSH TABLES WITH READ LOCK")

        def release() -> None:
            time.sleep(seconds)
            try:
                cur.execute("UNLOCK TABLES")
            except Exception as exc:  # recorded, never raised in a thread
                self.problems.append(f"UNLOCK TABLES failed: {exc!r}")
            with contextlib.suppress(Exception):
                admin.close()

        self.blocker = threading.Thread(target=release, daemon=True)
        self.blocker.start()

    # -- steps (each in a thread of its own, see each) -------------------------------------

    def create(self) -> None:
        """The case's database: table ``t`` with a seed row, procedure ``p``."""
        db = self.database
        admin = open_admin(self.server)
        try:
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(
                    f"CREATE TABLE {db}.t (id INT AUTO_INCREMENT PRIMARY KEY, "
                    "uid VARCHAR(64) NOT NULL, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB"
                )
                cur.execute(f"INSERT INTO {db}.t (uid) VALUES ('seed')")
                cur.execute(
                    f"CREATE PROCEDURE {db}.p(IN u VARCHAR(64), IN s DOUBLE) "
                    "SQL SECURITY INVOKER INSERT INTO t (uid, v) SELECT u, SLEEP(s)"
                )
                if self.fault.app_user:
                    cur.execute(f"GRANT ALL ON {db}.* TO '{APP_USER}'@'%'")
        finally:
            admin.close()

    def open(self) -> None:
        """Connect (through the fault's proxy, if any), then the fault's and the
        operation's set-up."""
        fault = self.fault
        if fault.needs_admin:
            self.admin = open_admin(self.server)
        kwargs = self.server.connect_kwargs(
            database=self.database, **tls_kwargs(self.server), **fault.client_kwargs
        )
        if fault.app_user:
            kwargs.update(user=APP_USER, password=APP_PASSWORD)
        self.proxy = fault.make_proxy(kwargs["port"], kwargs["host"])
        if self.proxy is not None:
            kwargs.update(host="127.0.0.1", port=self.proxy.port)
        self.conn = resilient_dbapi.connect(
            pymysql.connect,
            **kwargs,
            autocommit=self.op.autocommit,
            policies=self.op.policies(fault),
            listeners=[self.events.append],
        )
        for sql in fault.session_sql:
            cur = self.conn.cursor()
            cur.execute(sql)
            cur.close()
        self.op.setup(self, fault.slow)
        self.last_used = time.monotonic()
        if not fault.at_connect:
            self.baseline = self._replaced()
            self.events_from = len(self.events)

    def perform(self) -> None:
        """The fault (this connection's part of it), the operation, what it gave."""
        fault = self.fault
        fault.inject(self)
        window = fault.within_skip_recent
        if window and time.monotonic() - self.last_used >= window:
            self.problems.append("the operation came after skip_recent: the case proved nothing")
        self.thread_id = self.conn.thread_id()
        striker = None
        if fault.in_flight:
            striker = threading.Thread(target=self._strike_later, daemon=True)
            striker.start()
        started = time.monotonic()
        failure: Exception | None = None
        try:
            self.op.run(self, fault.slow)
        except Exception as exc:
            failure = exc
        ended = time.monotonic()
        self.seconds = ended - started
        for thread in (striker, self.blocker):
            if thread is not None:
                thread.join(STEP_TIMEOUT)
        if fault.in_flight and (self.struck_at is None or self.struck_at > ended):
            self.problems.append("the fault did not come while the operation was in flight")
        self._observe(failure)
        self._settle(failure)

    def _strike_later(self) -> None:
        time.sleep(self.fault.strike_after)
        self.struck_at = time.monotonic()
        try:
            self.fault.strike(self)
        except Exception as exc:  # recorded, never raised in a thread
            self.problems.append(f"the fault could not be injected: {exc!r}")

    def _observe(self, failure: Exception | None) -> None:
        if failure is None:
            replaced = self._replaced() - self.baseline
            self.outcome = RECOVERED if replaced > 0 else OK
            later = self.events[self.events_from :]
            notes = [
                f"reconnected ({e.reason})" for e in later if isinstance(e, events.Reconnected)
            ]
            retries = self.conn.stats.connect_retries
            if retries:
                notes.append(f"{retries} connect retries")
            self.detail = ", ".join(notes)
            return
        args = failure.args
        code = args[0] if args and isinstance(args[0], int) else None
        self.detail = f"{code}: {args[1]}" if code is not None and len(args) > 1 else repr(failure)
        if isinstance(failure, ResilientError):
            if isinstance(failure, TransactionLostError):
                self.outcome = LOST
            elif isinstance(failure, OutcomeUnknownError):
                self.outcome = UNKNOWN
            else:  # SessionLostError, ConcurrentUseError: not expected anywhere here
                self.outcome = type(failure).__name__
            self.check_driver_error(failure)
        elif isinstance(failure, pymysql.err.MySQLError) and code is not None:
            if MYSQL_ERRORS.kind(code) is ErrorKind.CONNECT_TRANSIENT:
                # A connect error from an open connection: replacing it failed for good.
                self.outcome = gave_up(code)
                gave = [e for e in self.events[self.events_from :] if isinstance(e, events.GaveUp)]
                attempts = gave[-1].attempts if gave else 1
                self.detail += f" (after {self.seconds:.2f} s, {attempts} attempts)"
                # No attempt starts past the deadline, so it gives up a little before it.
                deadline = self.fault.deadline
                if deadline is not None and self.seconds > deadline + 1.0:
                    self.problems.append(f"still retrying 1 s past the {deadline} s deadline")
            else:
                self.outcome = error(code)
        else:
            self.outcome = type(failure).__name__
            self.problems.append(f"unexpected exception: {failure!r}")
        limit = self.fault.time_limit(self.outcome)
        if limit is not None and self.seconds > limit:
            self.problems.append(f"took {self.seconds:.2f} s, more than {limit:.2f} s")

    def _settle(self, failure: Exception | None) -> None:
        """Book the operation's writes; commit a transaction whose statement succeeded."""
        if self._book(failure):
            try:
                self.conn.commit()
            except Exception as exc:
                self._committed(exc)
            else:
                self._committed(None)

    def _book(self, failure: BaseException | None) -> bool:
        """Book the operation's writes by what the caller was told; True if its
        transaction is to be committed now (its statement succeeded: at once, so that a
        server closing idle sessions cannot take it)."""
        attempted, self.attempted = self.attempted, set()
        if failure is None:
            if self.op.autocommit:
                self.acknowledged |= attempted
                return False
            self.pending |= attempted
            return True
        if isinstance(failure, OutcomeUnknownError) or self.outcome == timed_out(UNKNOWN):
            self.unknown |= attempted | self.pending  # a COMMIT: the whole transaction
            self.pending.clear()
        elif self.op.autocommit and self.outcome.startswith("error"):
            self.unknown |= attempted  # executemany: its first row may have been applied
        # Otherwise nothing was sent (gave up, a read), or the transaction is gone or
        # rolled back in check(): none of it may stay.
        return False

    def _committed(self, failure: Exception | None) -> None:
        """The ``commit()`` after a successful statement returned, or raised ``failure``."""
        if failure is not None:
            self.problems.append(f"commit() after the operation failed: {failure!r}")
            self.unknown |= self.pending
        else:
            self.acknowledged |= self.pending
        self.pending.clear()

    def check_driver_error(self, failure: ResilientError, *, again: bool = False) -> None:
        """Raised as the driver's own error (PyMySQL's, which aiomysql's are too), its
        code in ``args[0]``, the driver's exception as ``__cause__`` (not ``again``: a
        lost transaction reported again has no new driver exception to chain)."""
        args = failure.args
        if not isinstance(failure, pymysql.err.OperationalError):
            self.problems.append(f"not the driver's OperationalError: {failure!r}")
        if not (args and isinstance(args[0], int)):
            self.problems.append(f"no error code in args[0]: {failure!r}")
        if not again and not isinstance(failure.__cause__, pymysql.err.MySQLError):
            self.problems.append(f"the driver's error is not chained as __cause__: {failure!r}")

    def _stays_lost(self) -> bool:
        """Whether every statement and ``commit()`` must raise ``TransactionLostError``
        until ``rollback()``: the transaction was lost, or the server refused its
        ``COMMIT`` on a live connection (and rolled it back)."""
        return self.outcome in (LOST, timed_out(LOST)) or (
            self.op.name == "commit" and self.outcome.startswith("error")
        )

    def check(self) -> None:
        """Roll back after an error, show the connection still works, check the table."""
        conn = self.conn
        if self.stream is not None:
            try:
                self.stream.close()
            except Exception as exc:
                self.problems.append(f"closing the SSCursor failed: {exc!r}")
        if self._stays_lost():  # every statement raises it again until rollback()
            for again in (lambda: conn.cursor().execute("SELECT 1"), conn.commit):
                try:
                    again()
                    self.problems.append(f"after {self.outcome}, a statement went through")
                except TransactionLostError as exc:
                    self.check_driver_error(exc, again=True)
                except Exception as exc:
                    self.problems.append(f"after {self.outcome}: {exc!r}")
        if self.outcome not in (OK, RECOVERED):
            try:
                conn.rollback()
            except Exception as exc:
                self.problems.append(f"rollback() after the error failed: {exc!r}")
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            self.expect("SELECT 1 afterwards", cur.fetchone(), (1,))
            cur.close()
        except Exception as exc:
            self.problems.append(f"the connection is not usable afterwards: {exc!r}")
        self.check_table()

    def check_table(self) -> None:
        """Every acknowledged write present once, nothing else but writes of unknown
        outcome (read on a connection of its own)."""
        counts = dict(self._read_back("SELECT uid, COUNT(*) FROM t GROUP BY uid"))
        self.expect("seed rows", counts.pop("seed", 0), 1)
        twice = sorted(uid for uid, n in counts.items() if n > 1)
        missing = sorted(self.acknowledged - counts.keys())
        stray = sorted(counts.keys() - self.acknowledged - self.unknown)
        if twice:
            self.problems.append(f"applied more than once: {twice}")
        if missing:
            self.problems.append(f"acknowledged but missing: {missing}")
        if stray:
            self.problems.append(f"stored but never acknowledged nor unknown: {stray}")

    def unstick(self) -> None:
        """Free a step that hangs: drop its proxy and its server session."""
        if self.proxy is not None:
            self.proxy.close()
        with contextlib.suppress(Exception):
            admin = open_admin(self.server)
            try:
                kill(admin, self.conn.thread_id())
            finally:
                admin.close()

    def close(self) -> None:
        for conn in (self.conn, self.admin):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        if self.proxy is not None:
            self.proxy.close()  # ends blackholed sessions: their transactions roll back
        try:
            admin = open_admin(self.server)
            try:
                with admin.cursor() as cur:
                    cur.execute("SET SESSION lock_wait_timeout = 10")
                    cur.execute(f"DROP DATABASE IF EXISTS {self.database}")
            finally:
                admin.close()
        except Exception as exc:
            self.problems.append(f"dropping the case's database failed: {exc!r}")

    def observation(self) -> Observation:
        return Observation(self.outcome, self.detail, round(self.seconds, 3), list(self.problems))


def each(
    trials: Sequence[Trial], step: Callable[[Trial], None], *, broken_too: bool = False
) -> None:
    """Run ``step`` (a method of :class:`Trial`, as the trial's class defines it) for
    every trial (not broken yet), side by side, bounded in time."""
    name = step.__name__

    def guarded(trial: Trial) -> None:
        try:
            getattr(trial, name)()
        except Exception as exc:
            trial.fail(f"{name} failed: {exc!r}")

    running = []
    for trial in trials:
        if broken_too or not trial.broken:
            thread = threading.Thread(target=guarded, args=(trial,), daemon=True)
            thread.start()
            running.append((trial, thread))
    deadline = time.monotonic() + STEP_TIMEOUT
    for trial, thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            trial.fail(f"{name} still running after {STEP_TIMEOUT:g} s: a hang")
            trial.unstick()
            thread.join(5)
