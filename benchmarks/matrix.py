"""The fault matrix (issue 7): every fault x every operation, through the synchronous
proxy over PyMySQL and the asyncio proxy over aiomysql, against a real MariaDB.

Each case gets a database of its own (table ``t`` with one seed row, a procedure ``p``)
and a resilient connection to it. The operation's context is put in place (autocommit on
or off, a write already in the transaction, a row stream half read), the fault is
injected while the connection is idle or while the operation is in flight, and what the
caller saw is recorded: ``ok``, ``recovered`` (the proxy replaced the connection or
retried the connect, transparently), ``TransactionLost``, ``OutcomeUnknown``,
``error N`` (the driver's own error, the connection usable afterwards), ``gave up N``
(the driver's error once the retry deadline passed) or, on the asyncio side,
``timeout`` (the ``asyncio.timeout`` around the operation expired: the cancellation
propagated, with what it cost). The table is then checked: every acknowledged write
present once, nothing of a lost or rolled-back transaction, a write of unknown outcome
applied at most once.

The cases of one fault run side by side, sync and asyncio together, one thread each (the
asyncio cases share one event loop, see ``benchmarks/matrix_async.py``), so a row costs
about one fault's time. ``python -m benchmarks.matrix`` starts throwaway MariaDB servers,
runs every case, writes ``benchmarks/results/fault_matrix.md`` (a table per proxy) and
prints it; ``tests/test_fault_matrix.py`` asserts every observed outcome against the
expected one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import logging
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pymysql
import pymysql.cursors

import resilient_dbapi
from resilient_dbapi import (
    MYSQL_ERRORS,
    ErrorKind,
    MaxAge,
    OutcomeUnknownError,
    PingOnCheckout,
    ResilientError,
    RetryOnError,
    TransactionLostError,
    events,
)
from resilient_dbapi.policies import Policy
from resilient_dbapi.testing import FaultProxy, MariaDBServer, kill_connection

__all__ = [
    "ASYNC",
    "DIFFERS",
    "FAULTS",
    "MODES",
    "OPERATIONS",
    "SYNC",
    "Fault",
    "LatencyProxy",
    "Observation",
    "Operation",
    "Row",
    "Servers",
    "Trial",
    "main",
    "render",
    "run_case",
    "run_matrix",
    "run_row",
]

RESULTS = Path(__file__).resolve().parent / "results"

# -- outcomes -------------------------------------------------------------------------------

OK = "ok"
"""Succeeded on the same connection: the fault did not touch it."""
RECOVERED = "recovered"
"""Succeeded after the proxy replaced the connection or retried the connect."""
LOST = "TransactionLost"
UNKNOWN = "OutcomeUnknown"
TIMEOUT = "timeout"
"""asyncio only: the ``asyncio.timeout`` around the operation expired and the
cancellation propagated (TimeoutError); nothing was lost (a read)."""


def timed_out(lost: str) -> str:
    """asyncio only: the operation's timeout expired, and the cancellation cost ``lost``
    (``TransactionLost``: raised by the next statement until ``rollback()``;
    ``OutcomeUnknown``: an ``OutcomeUnknown`` event)."""
    return f"{TIMEOUT}, {lost}"


def error(code: int) -> str:
    """The driver's own error ``code``, unchanged; the connection works afterwards."""
    return f"error {code}"


def gave_up(code: int) -> str:
    """The driver's error ``code`` once the retry policy's deadline ran out."""
    return f"gave up {code}"


PAST_SKIP_RECENT = 0.6  # PingOnCheckout's default skip_recent is 0.5 s
STREAM_ROWS = 20_000  # of 1 kB: more than the loopback socket buffers hold
PAUSED_STREAM_ROWS = 2_000  # the in-flight stream pauses on the server at row 1000
APP_USER, APP_PASSWORD = "fm_app", "fm-app-pw"  # no SUPER: read_only applies to it
STEP_TIMEOUT = 30.0  # a step of a case still running after this is a hang

SYNC, ASYNC = "sync", "async"
MODES = (SYNC, ASYNC)
"""The proxies: ``sync`` (``resilient_dbapi.connect`` over PyMySQL) and ``async``
(``resilient_dbapi.aio.connect`` over aiomysql)."""


# -- servers --------------------------------------------------------------------------------


@dataclass
class Servers:
    """Where the cases run: ``shared`` takes the faults that touch one connection (any
    server with ``connect_kwargs()`` and ``admin()``); ``own`` those that restart, stop or
    reconfigure the server."""

    shared: Any
    own: MariaDBServer


def _tls(server: Any) -> dict[str, Any]:
    """No TLS to a server we started: PyMySQL builds a TLS context at every connect
    (about 40 ms of CPU), which would make the cases slow, not different."""
    return {"ssl_disabled": True} if isinstance(server, MariaDBServer) else {}


def _admin(server: Any) -> Any:
    return server.admin(**_tls(server))


def _kill(admin: Any, thread_id: int, *, query: bool = False) -> None:
    """``KILL [QUERY]`` through ``admin``; for a connection, wait until it is gone."""
    if not query:
        kill_connection(admin, thread_id)
        return
    with admin.cursor() as cur:
        try:
            cur.execute(f"KILL QUERY {int(thread_id)}")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1094:  # unknown thread: gone already
                raise


class LatencyProxy(FaultProxy):
    """A :class:`FaultProxy` that delays every chunk by ``delay`` seconds each way.

    A delay line, not a throttle: chunks queue up with their due time, so throughput is
    kept and only latency is added."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, delay: float):
        self.delay = delay  # set before the parent starts accepting
        super().__init__(target_port, target_host)

    def _client_to_server(self, pair: Any) -> None:
        self._relay(pair.client, pair.upstream, pair)

    def _server_to_client(self, pair: Any) -> None:
        self._relay(pair.upstream, pair.client, pair)

    def _relay(self, source: Any, target: Any, pair: Any) -> None:
        line: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        threading.Thread(target=self._deliver, args=(line, target, pair), daemon=True).start()
        try:
            while data := source.recv(65536):
                line.put((time.monotonic() + self.delay, data))
        except OSError:
            pass
        line.put(None)

    @staticmethod
    def _deliver(
        line: queue.SimpleQueue[tuple[float, bytes] | None], target: Any, pair: Any
    ) -> None:
        try:
            while (item := line.get()) is not None:
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                target.sendall(data)
        except OSError:
            pass
        pair.close()


# -- operations -----------------------------------------------------------------------------


def _nothing(trial: Trial, slow: float) -> None:
    """No set-up."""


def _read(trial: Trial, slow: float) -> None:
    cur = trial.conn.cursor()
    if slow:
        cur.execute("SELECT SLEEP(%s), COUNT(*) FROM t WHERE uid = 'seed'", (slow,))
        value = cur.fetchone()[1]
    else:
        cur.execute("SELECT COUNT(*) FROM t WHERE uid = 'seed'")
        value = cur.fetchone()[0]
    cur.close()
    trial.expect("the seed rows read", value, 1)


def _insert(trial: Trial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = trial.conn.cursor()
    if slow:
        cur.execute("INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)", (uid, slow))
    else:
        cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
    cur.close()


def _write_first(trial: Trial, slow: float) -> None:
    """A write acknowledged inside the open transaction, not committed yet."""
    uid = trial.new_uid()
    cur = trial.conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
    cur.close()
    trial.pending.add(uid)


def _commit(trial: Trial, slow: float) -> None:
    if slow:
        trial.block_commits(slow)  # FLUSH TABLES WITH READ LOCK holds the COMMIT
    trial.conn.commit()


def _executemany(trial: Trial, slow: float) -> None:
    uids = [trial.new_uid(), trial.new_uid()]
    trial.attempted.update(uids)
    cur = trial.conn.cursor()
    # Not a VALUES list: PyMySQL sends the rows one by one, so the first is applied
    # before the second (the slow one) is sent.
    cur.executemany("INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)", [(uids[0], 0), (uids[1], slow)])
    cur.close()


def _open_stream(trial: Trial, slow: float) -> None:
    """An unbuffered result half read: executed, its first row fetched."""
    cur = trial.conn.cursor(pymysql.cursors.SSCursor)
    if slow:
        trial.stream_rows = PAUSED_STREAM_ROWS
        cur.execute(
            "SELECT seq, REPEAT('x', 1000), IF(seq = 1000, SLEEP(%s), 0) "
            f"FROM seq_1_to_{PAUSED_STREAM_ROWS}",
            (slow,),
        )
    else:
        trial.stream_rows = STREAM_ROWS
        cur.execute(f"SELECT seq, REPEAT('x', 1000) FROM seq_1_to_{STREAM_ROWS}")
    trial.stream = cur
    trial.expect("the first streamed row", cur.fetchone()[0], 1)


def _fetch_stream(trial: Trial, slow: float) -> None:
    rows = trial.stream.fetchall()
    trial.expect("the rest of the stream", len(rows), trial.stream_rows - 1)


def _callproc(trial: Trial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = trial.conn.cursor()
    cur.callproc("p", (uid, slow))
    cur.close()


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


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "autocommit_read", "autocommit read", "`SELECT COUNT(*)` of the seed row, autocommit on",
        autocommit=True, run=_read,
    ),
    Operation(
        "autocommit_write", "autocommit write", "one-row `INSERT`, autocommit on",
        autocommit=True, run=_insert,
    ),
    Operation(
        "txn_first", "first statement of a transaction",
        "autocommit off, nothing written yet: one-row `INSERT`, then `commit()`",
        autocommit=False, run=_insert,
    ),
    Operation(
        "mid_txn", "statement mid-transaction",
        "autocommit off, after an acknowledged `INSERT`: a second `INSERT`, then `commit()`",
        autocommit=False, run=_insert, setup=_write_first,
    ),
    Operation(
        "commit", "`COMMIT`",
        "`commit()` of a transaction with one `INSERT`; in flight, held by "
        "`FLUSH TABLES WITH READ LOCK` from another session",
        autocommit=False, run=_commit, setup=_write_first, blocks_commits=True,
    ),
    Operation(
        "executemany", "`executemany`",
        "two rows of `INSERT ... SELECT` (both drivers send them one by one), autocommit on",
        autocommit=True, run=_executemany,
    ),
    Operation(
        "sscursor_fetch", "`SSCursor` fetch",
        f"`fetchall()` of an unbuffered result of {STREAM_ROWS} rows of 1 kB (more than the "
        "socket buffers hold) whose first row was read before the fault; in flight, the "
        "server pauses at row 1000",
        autocommit=True, run=_fetch_stream, setup=_open_stream,
    ),
    Operation(
        "callproc", "`callproc`",
        "`callproc()` of a procedure that inserts one row, autocommit on",
        autocommit=True, run=_callproc,
    ),
)  # fmt: skip
OPERATION_NAMES = tuple(op.name for op in OPERATIONS)


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
    transaction). ``benchmarks.matrix_async.AsyncTrial`` is its asyncio twin."""

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

    # -- helpers ------------------------------------------------------------------------

    @property
    def expected(self) -> str:
        """The outcome the README's rules give this case."""
        return self.fault.outcomes(self.mode)[self.op.name]

    def new_uid(self) -> str:
        return f"{self.op.name}-{next(self._uids)}"

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
                database=self.database, autocommit=True, **_tls(self.server)
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
        admin = _admin(self.server)
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

    # -- steps (each in a thread of its own, see _each) ------------------------------------

    def create(self) -> None:
        """The case's database: table ``t`` with a seed row, procedure ``p``."""
        db = self.database
        admin = _admin(self.server)
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
            self.admin = _admin(self.server)
        kwargs = self.server.connect_kwargs(
            database=self.database, **_tls(self.server), **fault.client_kwargs
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
            policies=fault.policies,
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
            admin = _admin(self.server)
            try:
                _kill(admin, self.conn.thread_id())
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
            admin = _admin(self.server)
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


def _each(
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


# -- faults ---------------------------------------------------------------------------------


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


def outcomes(base: Mapping[str, str] | str, **changes: str) -> Mapping[str, str]:
    """An expected row: ``base`` (a row, or one outcome for every operation), changed."""
    row = dict.fromkeys(OPERATION_NAMES, base) if isinstance(base, str) else dict(base)
    row.update(changes)
    return MappingProxyType(row)


# What the README's safety rules give for a connection found dead at checkout (the socket
# check, or the ping after `idle`): replaced before sending, except inside a transaction
# with writes (no check runs there: the statement finds it) and for a stream half read.
FOUND_BEFORE_SENDING = outcomes(RECOVERED, mid_txn=LOST, commit=UNKNOWN, sscursor_fetch=error(2013))
# Lost after sending: a plain read is sent again; a write in autocommit is of unknown
# outcome; a write with autocommit off loses the transaction; a fetch raises.
LOST_AFTER_SENDING = outcomes(
    UNKNOWN, autocommit_read=RECOVERED, txn_first=LOST, mid_txn=LOST, sscursor_fetch=error(2013)
)


CANCELLED_COMMIT = (
    "a `COMMIT` cancelled in flight may have been applied: `OutcomeUnknown`, the README's "
    "rule for a `COMMIT` lost after sending (its asyncio paragraph on cancellation names "
    "the lost transaction and the write of unknown outcome, not the `COMMIT`)"
)


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


class IdleTimeout(Fault):
    name = "idle-timeout"
    title = "idle timeout"
    how = "`SET SESSION wait_timeout = 1`, then 1.5 s idle"
    session_sql = ("SET SESSION wait_timeout = 1",)
    expected = outcomes(FOUND_BEFORE_SENDING, commit=LOST, sscursor_fetch=OK)
    # aiomysql writes to a reset connection without an error: only its InterfaceError(0)
    # proves a command was never sent, so a COMMIT lost this way is of unknown outcome.
    expected_async = outcomes(FOUND_BEFORE_SENDING, sscursor_fetch=OK)
    notes = MappingProxyType(
        {
            "commit": "MariaDB resets a session it times out (RST, where `KILL` sends a FIN), "
            "so sending the `COMMIT` fails (2006): provably never sent, hence "
            "`TransactionLost`, not `OutcomeUnknown`",
            "sscursor_fetch": "`wait_timeout` applies to a session waiting for a command; "
            "one blocked writing a result waits `net_write_timeout` (60 s)",
        }
    )
    notes_async = MappingProxyType(
        {
            "commit": "aiomysql writes into a reset connection without an error and fails "
            "reading the reply (2013); only its `InterfaceError(0)` proves a command was "
            "never sent (README, Drivers), so the `COMMIT` is of unknown outcome",
        }
    )

    def inject(self, trial: Trial) -> None:
        trial.idle_until(1.5)


class KillIdle(Fault):
    name = "kill-idle"
    title = "`KILL CONNECTION` while idle"
    how = "`KILL CONNECTION` from another session, then idle past `skip_recent` (0.6 s)"
    needs_admin = True
    expected = FOUND_BEFORE_SENDING

    def inject(self, trial: Trial) -> None:
        _kill(trial.admin, trial.conn.thread_id())
        trial.idle_until(PAST_SKIP_RECENT)


class KillRecent(Fault):
    name = "kill-recent"
    title = "`KILL CONNECTION`, used within `skip_recent`"
    how = (
        "`KILL CONNECTION`, the operation at once, within `skip_recent` of the last use "
        "(`PingOnCheckout(skip_recent=5)`, so that a slow machine stays inside it)"
    )
    within_skip_recent = 5.0
    policies = (PingOnCheckout(skip_recent=within_skip_recent), MaxAge(), RetryOnError())
    needs_admin = True
    how_async = (
        "the `KILL` from a worker thread while the event loop runs, as in a service; the "
        "operation starts once the loop has read the end of the stream (a few ms, well "
        "inside `skip_recent`: the server may drop the session from its process list "
        "before the client receives the FIN)"
    )
    async_until_eof = True
    # Only cursor.execute() skips the socket check: executemany() and callproc() check
    # first, find the connection dead and send on a new one.
    expected = outcomes(LOST_AFTER_SENDING, executemany=RECOVERED, callproc=RECOVERED)
    # The asyncio proxy looks at what the event loop knows (the reader at EOF) before
    # every statement, inside the skip window too: found before sending.
    expected_async = FOUND_BEFORE_SENDING
    notes_async = MappingProxyType(
        {
            op: "the asyncio proxy reads what the event loop already knows (the reader at "
            "EOF) before a statement, inside `skip_recent` too (README, asyncio: Liveness): "
            f"the {what} goes out on a new connection instead of raising `{was}`"
            for op, what, was in (
                ("autocommit_write", "write", UNKNOWN),
                ("txn_first", "transaction's first write", LOST),
            )
        }
    )

    def inject(self, trial: Trial) -> None:
        _kill(trial.admin, trial.conn.thread_id())


class KillInFlight(Fault):
    name = "kill-in-flight"
    title = "`KILL CONNECTION` in flight"
    how = "`KILL CONNECTION` 0.3 s into an operation that takes 1 s on the server"
    in_flight = True
    slow = 1.0
    needs_admin = True
    expected = LOST_AFTER_SENDING

    def strike(self, trial: Trial) -> None:
        _kill(trial.admin, trial.thread_id)


class KillQuery(Fault):
    name = "kill-query"
    title = "`KILL QUERY` in flight"
    how = "`KILL QUERY` 0.3 s into an operation that takes 1 s on the server"
    in_flight = True
    slow = 1.0
    needs_admin = True
    expected = outcomes(error(1317))
    notes = MappingProxyType(
        {
            "commit": "MariaDB rolls the whole transaction back when it kills a `COMMIT` "
            "waiting for the global read lock; 1317 passes through unchanged, then every "
            "statement and `commit()` raise `TransactionLostError` until `rollback()` "
            "(checked), so a retried `commit()` cannot report success",
        }
    )

    def strike(self, trial: Trial) -> None:
        _kill(trial.admin, trial.thread_id, query=True)


class RestartIdle(Fault):
    name = "restart-idle"
    title = "server restart while idle"
    how = "the server restarted (SIGTERM, start), then idle past `skip_recent`"
    own_server = True
    expected = FOUND_BEFORE_SENDING

    def inject_all(self, row: Row) -> None:
        row.server.restart()

    def inject(self, trial: Trial) -> None:
        trial.idle_until(PAST_SKIP_RECENT)


class DownAtConnect(Fault):
    name = "down-at-connect"
    title = "server down at connect"
    how = "the server stopped; `connect()`; the server started again 1 s later"
    own_server = True
    at_connect = True
    expected = outcomes(RECOVERED)

    def before_connect(self, row: Row) -> None:
        row.server.stop()
        row.later(1.0, row.server.start, "starting the server again")

    def after_all(self, row: Row) -> None:
        row.join()


class DownPastDeadline(Fault):
    name = "down-past-deadline"
    title = "server down past the retry deadline"
    how = (
        "the server stopped while idle; `RetryOnError(deadline=0.5)`; started again "
        "after the operation"
    )
    own_server = True
    deadline = 0.5
    policies = (PingOnCheckout(), MaxAge(), RetryOnError(deadline=deadline, max_backoff=0.1))
    expected = outcomes(gave_up(2003), mid_txn=LOST, commit=UNKNOWN, sscursor_fetch=error(2013))

    def inject_all(self, row: Row) -> None:
        row.server.stop()

    def inject(self, trial: Trial) -> None:
        trial.idle_until(PAST_SKIP_RECENT)

    def after_all(self, row: Row) -> None:
        row.server.start()


class MaxConnections(Fault):
    name = "max-connections"
    title = "`max_connections` exhausted"
    how = (
        "the connection killed, `SET GLOBAL max_connections` and every slot taken "
        "(error 1040), freed 1 s later"
    )
    own_server = True
    expected = FOUND_BEFORE_SENDING

    def inject_all(self, row: Row) -> None:
        admin = _admin(row.server)
        try:
            for trial in row.trials:
                if not trial.broken:
                    _kill(admin, trial.conn.thread_id())
            with admin.cursor() as cur:
                cur.execute("SELECT @@max_connections")
                row.saved["max_connections"] = cur.fetchone()[0]
                cur.execute("SHOW STATUS LIKE 'Threads_connected'")
                connected = int(cur.fetchone()[1])
                # Room for every case's reconnect once the holders are gone.
                cur.execute(f"SET GLOBAL max_connections = {connected + len(row.trials) + 1}")
        finally:
            admin.close()
        while len(row.holders) < 200:
            try:
                row.holders.append(_admin(row.server))
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1040:
                    raise
                break
        else:
            raise RuntimeError("max_connections: 200 connections and no error 1040")
        row.later(1.0, lambda: self._free(row), "freeing the connections")

    @staticmethod
    def _free(row: Row) -> None:
        holders, row.holders = row.holders, []
        for conn in holders:
            with contextlib.suppress(Exception):
                conn.close()

    def inject(self, trial: Trial) -> None:
        trial.idle_until(PAST_SKIP_RECENT)

    def after_all(self, row: Row) -> None:
        row.join()
        self._free(row)
        if "max_connections" in row.saved:
            admin = _admin(row.server)
            try:
                with admin.cursor() as cur:
                    cur.execute(f"SET GLOBAL max_connections = {row.saved['max_connections']}")
            finally:
                admin.close()


class BlackholeIdle(Fault):
    name = "blackhole-idle"
    title = "network blackhole while idle"
    how = (
        "a loopback proxy drops all traffic, sockets stay open; "
        "`PingOnCheckout(idle=0.3, timeout=0.5, skip_recent=0.1)`, `read_timeout=1`; "
        "0.4 s idle"
    )
    how_async = "aiomysql has no `read_timeout`: `asyncio.timeout(1)` around the operation"
    policies = (PingOnCheckout(idle=0.3, timeout=0.5, skip_recent=0.1), MaxAge(), RetryOnError())
    client_kwargs = MappingProxyType({"read_timeout": 1, "write_timeout": 1})
    async_timeout = 1.0
    expected = FOUND_BEFORE_SENDING
    # No check inside a transaction with writes, nor on a stream half read: the
    # operation waits for the blackhole until its timeout cancels it.
    expected_async = outcomes(
        FOUND_BEFORE_SENDING,
        mid_txn=timed_out(LOST),
        commit=timed_out(UNKNOWN),
        sscursor_fetch=TIMEOUT,
    )
    notes_async = MappingProxyType(
        {
            "commit": CANCELLED_COMMIT,
        }
    )

    def make_proxy(self, port: int, host: str) -> FaultProxy | None:
        return FaultProxy(port, host)

    def inject(self, trial: Trial) -> None:
        assert trial.proxy is not None
        trial.proxy.blackhole()
        trial.idle_until(0.4)

    def time_limit(self, outcome: str) -> float | None:
        # Found by the ping within its timeout + 10 %, else by the read timeout + 10 %
        # (0.2 s more for the reconnect and a busy machine).
        return (0.5 if outcome == RECOVERED else 1.0) * 1.1 + 0.2


class BlackholeInFlight(Fault):
    name = "blackhole-in-flight"
    title = "network blackhole in flight"
    how = (
        "the proxy starts dropping all traffic 0.2 s into an operation that takes 0.6 s "
        "on the server; `read_timeout=1`"
    )
    how_async = "aiomysql has no `read_timeout`: `asyncio.timeout(1)` around the operation"
    in_flight = True
    slow = 0.6
    strike_after = 0.2
    client_kwargs = MappingProxyType({"read_timeout": 1, "write_timeout": 1})
    async_timeout = 1.0
    expected = LOST_AFTER_SENDING
    # A cancellation in flight (README, asyncio): it propagates, the connection is never
    # used again, a transaction with writes is lost, a write's outcome unknown; a read
    # is not sent again (the caller asked to stop).
    expected_async = outcomes(
        timed_out(UNKNOWN),
        autocommit_read=TIMEOUT,
        txn_first=timed_out(LOST),
        mid_txn=timed_out(LOST),
        sscursor_fetch=TIMEOUT,
    )
    notes_async = MappingProxyType(
        {
            "autocommit_read": "a read cancelled in flight is not sent again, unlike one "
            "lost to a read timeout: the cancellation propagates (README, asyncio)",
            "commit": CANCELLED_COMMIT,
        }
    )

    def make_proxy(self, port: int, host: str) -> FaultProxy | None:
        return FaultProxy(port, host)

    def strike(self, trial: Trial) -> None:
        assert trial.proxy is not None
        trial.proxy.blackhole()


class Latency(Fault):
    name = "latency"
    title = "added latency"
    how = "a loopback proxy delays every chunk by 20 ms each way"
    expected = outcomes(OK)

    def make_proxy(self, port: int, host: str) -> FaultProxy | None:
        return LatencyProxy(port, host, delay=0.02)

    def inject(self, trial: Trial) -> None:
        trial.idle_until(PAST_SKIP_RECENT)  # the socket check runs, through the delay


class ReadOnly(Fault):
    name = "read-only"
    title = "read-only server"
    how = "`SET GLOBAL read_only = 1`; the client has no SUPER (`GRANT ALL ON db.*`)"
    own_server = True
    app_user = True
    expected = outcomes(error(1290), autocommit_read=OK, sscursor_fetch=OK)
    notes = MappingProxyType(
        {
            "commit": "a `COMMIT` refused by `read_only` rolls the transaction back too "
            "(MariaDB); 1290 passes through unchanged, then every statement and "
            "`commit()` raise `TransactionLostError` until `rollback()` (checked)",
        }
    )

    def inject_all(self, row: Row) -> None:
        self._set(row, 1)

    def after_all(self, row: Row) -> None:
        self._set(row, 0)

    @staticmethod
    def _set(row: Row, value: int) -> None:
        admin = _admin(row.server)
        try:
            with admin.cursor() as cur:
                cur.execute(f"SET GLOBAL read_only = {value}")
        finally:
            admin.close()


FAULTS: tuple[Fault, ...] = (
    IdleTimeout(),
    KillIdle(),
    KillRecent(),
    KillInFlight(),
    KillQuery(),
    RestartIdle(),
    DownAtConnect(),
    DownPastDeadline(),
    MaxConnections(),
    BlackholeIdle(),
    BlackholeInFlight(),
    Latency(),
    ReadOnly(),
)

# Cases whose observed behaviour differs from what the README says, in the outcome or in
# a follow-up check: (mode, fault, operation) -> what happens instead. The tests mark
# them xfail(strict=True).
DIFFERS: dict[tuple[str, str, str], str] = {}


# -- running --------------------------------------------------------------------------------


def _ensure_app_user(server: Any) -> None:
    admin = _admin(server)
    try:
        with admin.cursor() as cur:
            cur.execute(
                f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'"
            )
    finally:
        admin.close()


def run_row(
    fault: Fault,
    servers: Servers,
    ops: Sequence[Operation] = OPERATIONS,
    modes: Sequence[str] = MODES,
) -> dict[str, dict[str, Observation]]:
    """Run ``fault`` against each of ``ops`` through the proxy of each of ``modes``, all
    side by side (each case on its own database, the fault injected once for all); the
    observations by mode, then operation name."""
    server = servers.own if fault.own_server else servers.shared
    with contextlib.ExitStack() as stack:
        trials: list[Trial] = []
        for mode in modes:
            if mode == SYNC:
                trials += [Trial(fault, op, server) for op in ops]
            elif mode == ASYNC:
                from benchmarks import matrix_async  # it builds on this module

                loop = stack.enter_context(matrix_async.LoopThread())
                trials += [matrix_async.AsyncTrial(fault, op, server, loop) for op in ops]
            else:
                raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        _run_trials(Row(fault, server, trials))
    return {
        mode: {trial.op.name: trial.observation() for trial in trials if trial.mode == mode}
        for mode in modes
    }


def _run_trials(row: Row) -> None:
    fault, server, trials = row.fault, row.server, row.trials
    try:
        if fault.app_user:
            _ensure_app_user(server)
        _each(trials, Trial.create)
        try:
            fault.before_connect(row)
            _each(trials, Trial.open)
            fault.inject_all(row)
            # An operation that holds a global lock in flight runs after the others.
            alone = [t for t in trials if fault.in_flight and t.op.blocks_commits]
            _each([t for t in trials if t not in alone], Trial.perform)
            _each(alone, Trial.perform)
        except Exception as exc:
            row.problems.append(f"the fault failed: {exc!r}")
        finally:
            try:
                fault.after_all(row)
            except Exception as exc:
                row.problems.append(f"undoing the fault failed: {exc!r}")
        _each(trials, Trial.check)
    finally:
        _each(trials, Trial.close, broken_too=True)
        for trial in trials:
            trial.problems.extend(row.problems)
            if not trial.outcome:
                trial.fail("the case did not run")


def run_case(fault: Fault, op: Operation, servers: Servers, mode: str = SYNC) -> Observation:
    """One case alone: ``fault`` under ``op`` through the ``mode`` proxy."""
    return run_row(fault, servers, [op], [mode])[mode][op.name]


def run_matrix(
    servers: Servers,
    faults: Sequence[Fault] = FAULTS,
    progress: Callable[[str], None] | None = None,
    modes: Sequence[str] = MODES,
) -> dict[str, dict[str, dict[str, Observation]]]:
    """Every fault x every operation through each of ``modes``: observations by mode,
    then fault name, then operation name."""
    results: dict[str, dict[str, dict[str, Observation]]] = {mode: {} for mode in modes}
    for fault in faults:
        started = time.monotonic()
        row = run_row(fault, servers, modes=modes)
        for mode in modes:
            results[mode][fault.name] = row[mode]
        if progress is not None:
            progress(f"{fault.name}: {time.monotonic() - started:.1f} s")
    return results


# -- the report -----------------------------------------------------------------------------

SIDES = MappingProxyType(
    {
        SYNC: "sync: `resilient_dbapi.connect(pymysql.connect, ...)`",
        ASYNC: "asyncio: `await resilient_dbapi.aio.connect(aiomysql.connect, ...)`",
    }
)


def differs(fault: Fault, op: str, observed: Observation, mode: str = SYNC) -> bool:
    return observed.outcome != fault.outcomes(mode)[op]


def render(
    results: Mapping[str, Mapping[str, Mapping[str, Observation]]],
    *,
    seconds: float,
    versions: str,
    faults: Sequence[Fault] = FAULTS,
) -> str:
    """The Markdown report: a matrix per proxy (``results`` by mode, fault name and
    operation name), what each outcome, fault and operation means, the differences from
    the README and any broken invariant."""
    by_name = {f.name: f for f in faults}
    cases = sum(len(row) for side in results.values() for row in side.values())
    lines = [
        "# Fault matrix: the sync proxy over PyMySQL, the asyncio proxy over aiomysql",
        "",
        f"Every fault x every operation, through each proxy, against a real MariaDB "
        f"({versions}); {cases} cases in {seconds:.0f} s, generated by "
        "`python -m benchmarks.matrix`. A cell is what the caller saw; **✗** marks one that "
        "differs from the README's safety rules (what they say follows it), **!** one "
        "whose table check or follow-up failed (listed below). After every case the "
        "connection ran `SELECT 1` and its table was checked: every acknowledged write "
        "present once, nothing of a lost or rolled-back transaction, a write of unknown "
        "outcome at most once. No cell is n/a: each operation brings its own context (the "
        "`COMMIT` always has a write to commit). The cases of a fault run at once, both "
        "proxies side by side; the asyncio ones share an event loop, and the fault's "
        "steps run in worker threads so that the loop keeps reading its sockets.",
    ]
    diffs: list[str] = []
    broken: list[str] = []
    for mode, side in results.items():
        lines += [
            "",
            f"## {SIDES.get(mode, mode)}",
            "",
            "| fault | " + " | ".join(op.title for op in OPERATIONS) + " |",
            "|---|" + "---|" * len(OPERATIONS),
        ]
        for name, row in side.items():
            fault = by_name[name]
            expected = fault.outcomes(mode)
            cells = []
            for op in OPERATIONS:
                observed = row.get(op.name)
                if observed is None:
                    cells.append("")
                    continue
                cell = observed.outcome
                case = f"{mode}-{name}-{op.name}"
                known = DIFFERS.get((mode, name, op.name))
                if differs(fault, op.name, observed, mode):
                    cell = f"**{cell}** ✗ ({expected[op.name]})"
                    diffs.append(
                        f"- `{case}`: {observed.outcome} ({observed.detail}) where the "
                        f"README says {expected[op.name]}: {known or 'not explained yet'}."
                    )
                elif known and observed.problems:
                    diffs.append(f"- `{case}` (**!**): {known}.")
                if observed.problems:
                    cell += " **!**"
                    broken.append(f"- `{case}`: " + "; ".join(observed.problems))
                cells.append(cell)
            lines.append(f"| {fault.title} | " + " | ".join(cells) + " |")
    names = list(dict.fromkeys(name for side in results.values() for name in side))
    lines += [
        "",
        "**Outcomes.** `ok`: succeeded on the same connection (the fault did not touch it). "
        "`recovered`: succeeded after the proxy replaced the connection or retried the "
        "connect, transparently. `TransactionLost`: `TransactionLostError`, nothing of the "
        "transaction committed. `OutcomeUnknown`: `OutcomeUnknownError`, the write applied "
        "at most once, never sent twice. `error N`: the driver's own error N, unchanged; "
        "the connection works afterwards. `gave up N`: the driver's error N once the "
        "retry deadline ran out. asyncio only: `timeout`: the `asyncio.timeout` around the "
        "operation expired and the cancellation propagated (`TimeoutError`); "
        "`timeout, TransactionLost`: the next statement and `commit()` raised "
        "`TransactionLostError` until `rollback()`; `timeout, OutcomeUnknown`: an "
        "`OutcomeUnknown` event, the write applied at most once.",
        "",
        "**Faults** (loopback only, every wait bounded):",
        "",
        *(
            f"- {by_name[name].title}: {by_name[name].how}."
            + (f" asyncio: {by_name[name].how_async}." if by_name[name].how_async else "")
            for name in names
        ),
        "",
        "**Operations** (each on a database of its own; aiomysql's cursors for the asyncio "
        "proxy, `aiomysql.SSCursor` for the stream):",
        "",
        *(f"- {op.title}: {op.description}." for op in OPERATIONS),
        "",
        "**Notes on the expected outcomes:**",
        "",
        *(
            f"- `{mode}-{name}-{op}`: {note}."
            for mode in results
            for name in names
            for op, note in (
                by_name[name].notes_async if mode == ASYNC else by_name[name].notes
            ).items()
        ),
        "",
        "**Differences from the README:**",
        "",
        *(diffs or ["None."]),
        "",
        "**Broken invariants and failed follow-ups:**",
        "",
        *(broken or ["None."]),
        "",
    ]
    return "\n".join(lines)


def _versions(server: Any) -> str:
    import aiomysql

    admin = _admin(server)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = str(cur.fetchone()[0]).split("-")[0]
    finally:
        admin.close()
    return (
        f"MariaDB {mariadb}, PyMySQL {pymysql.__version__}, aiomysql {aiomysql.__version__}, "
        f"Python {platform.python_version()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.matrix``: run every case on throwaway servers, write the
    report and print it; exit status 1 if a case broke an invariant or differs from the
    README in a way not listed in :data:`DIFFERS`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matrix", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "fault_matrix.md")
    parser.add_argument("--only", help="comma-separated fault names (default: all)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated proxies (default: sync,async)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show resilient_dbapi's log of the faults"
    )
    args = parser.parse_args(argv)
    if not args.verbose:  # every case makes the proxy log a reconnect or a loss
        logging.getLogger("resilient_dbapi").setLevel(logging.ERROR)
    faults = FAULTS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {f.name for f in FAULTS}
        if unknown:
            parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
        faults = tuple(f for f in FAULTS if f.name in wanted)
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    if not modes or set(args.modes.split(",")) - set(MODES):
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    started = time.monotonic()
    with MariaDBServer() as shared, MariaDBServer() as own:
        versions = _versions(shared)
        results = run_matrix(
            Servers(shared, own), faults, lambda note: print(note, file=sys.stderr), modes
        )
    report = render(results, seconds=time.monotonic() - started, versions=versions, faults=faults)
    report += f"\n_Run on {datetime.date.today().isoformat()}._\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    by_name = {f.name: f for f in faults}
    failed = any(
        (obs.problems or differs(by_name[name], op, obs, mode)) and (mode, name, op) not in DIFFERS
        for mode, side in results.items()
        for name, row in side.items()
        for op, obs in row.items()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    # Run as the module benchmarks.matrix, not as __main__: benchmarks.matrix_async
    # builds on that module, and one copy of it must count the cases' databases.
    from benchmarks.matrix import main as _main

    raise SystemExit(_main())
