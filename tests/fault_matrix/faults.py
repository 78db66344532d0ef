"""The faults of the matrix (each a :class:`~.trials.Fault`): how each is injected, and
the outcome each operation must have under it, through each proxy, by the documented safety
rules."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pymysql

from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError
from resilient_dbapi.testing import FaultProxy

from .common import (
    LOST,
    OK,
    PAST_SKIP_RECENT,
    RECOVERED,
    TIMEOUT,
    UNKNOWN,
    error,
    gave_up,
    kill,
    open_admin,
    timed_out,
)
from .operations import OPERATION_NAMES
from .trials import Fault, Row, Trial

__all__ = ["DIFFERS", "FAULTS", "LatencyProxy", "outcomes"]


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


def outcomes(base: Mapping[str, str] | str, **changes: str) -> Mapping[str, str]:
    """An expected row: ``base`` (a row, or one outcome for every operation), changed."""
    row = dict.fromkeys(OPERATION_NAMES, base) if isinstance(base, str) else dict(base)
    row.update(changes)
    return MappingProxyType(row)


# What the safety rules (docs/safety.md) give for a connection found dead at checkout (the socket
# check, or the ping after `idle`): replaced before sending, except inside a transaction
# with writes (no check runs there: the statement finds it) and for a stream half read.
FOUND_BEFORE_SENDING = outcomes(RECOVERED, mid_txn=LOST, commit=UNKNOWN, sscursor_fetch=error(2013))
# Lost after sending: a plain read is sent again; a write is of unknown outcome, in
# autocommit or in a transaction (a write the server has not yet shown to touch only
# tables it rolls back may have written a MyISAM table: each cell runs on a new
# connection, so it has not); a fetch raises.
LOST_AFTER_SENDING = outcomes(UNKNOWN, autocommit_read=RECOVERED, sscursor_fetch=error(2013))
IN_FLIGHT_IN_A_TRANSACTION = (
    "a write lost in flight inside a transaction is `TransactionLost` only once the server "
    "showed (session tracking) that this statement writes only tables it rolls back; the "
    "cell's connection is new, so `OutcomeUnknown` (docs/safety.md)"
)


CANCELLED_COMMIT = (
    "a `COMMIT` cancelled in flight may have been applied: `OutcomeUnknown`, the README's "
    "rule for a `COMMIT` lost after sending (its asyncio paragraph on cancellation names "
    "the lost transaction and the write of unknown outcome, not the `COMMIT`)"
)


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
        kill(trial.admin, trial.conn.thread_id())
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
    # Only a read skips the socket check inside the window (it may be sent again); a
    # write, executemany() and callproc() check first, find the connection dead and go
    # out on a new one.
    expected = FOUND_BEFORE_SENDING
    # The asyncio proxy looks at what the event loop knows (the reader at EOF) before
    # every statement, inside the skip window too: found before sending, the read too.
    expected_async = FOUND_BEFORE_SENDING

    def inject(self, trial: Trial) -> None:
        kill(trial.admin, trial.conn.thread_id())


class KillInFlight(Fault):
    name = "kill-in-flight"
    title = "`KILL CONNECTION` in flight"
    how = "`KILL CONNECTION` 0.3 s into an operation that takes 1 s on the server"
    in_flight = True
    slow = 1.0
    needs_admin = True
    expected = LOST_AFTER_SENDING
    notes = MappingProxyType(
        {"txn_first": IN_FLIGHT_IN_A_TRANSACTION, "mid_txn": IN_FLIGHT_IN_A_TRANSACTION}
    )

    def strike(self, trial: Trial) -> None:
        kill(trial.admin, trial.thread_id)


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
        kill(trial.admin, trial.thread_id, query=True)


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
    expected = outcomes(
        gave_up(2003),
        mid_txn=LOST,
        mid_txn_replay=LOST,  # the replay found no new connection
        commit=UNKNOWN,
        sscursor_fetch=error(2013),
    )

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
        admin = open_admin(row.server)
        try:
            for trial in row.trials:
                if not trial.broken:
                    kill(admin, trial.conn.thread_id())
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
                row.holders.append(open_admin(row.server))
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
            admin = open_admin(row.server)
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
        mid_txn_replay=timed_out(LOST),  # a cancelled statement is never replayed
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
        # Found by the ping within its timeout + 10 %, else by the read timeout + 10 %,
        # and 0.4 s more for the reconnect, or for reading the part of a stream already in
        # the socket buffers, on a busy machine (0.32 s seen in CI). A second ping or read
        # timeout (1.0 s, 2.0 s) still breaks the bound, which is what it is here to catch.
        return (0.5 if outcome == RECOVERED else 1.0) * 1.1 + 0.4


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
    notes = MappingProxyType(
        {"txn_first": IN_FLIGHT_IN_A_TRANSACTION, "mid_txn": IN_FLIGHT_IN_A_TRANSACTION}
    )
    # A cancellation in flight (README, asyncio): it propagates, the connection is never
    # used again, a transaction with writes is lost, a write's outcome unknown; a read
    # is not sent again (the caller asked to stop).
    expected_async = outcomes(timed_out(UNKNOWN), autocommit_read=TIMEOUT, sscursor_fetch=TIMEOUT)
    notes_async = MappingProxyType(
        {
            "autocommit_read": "a read cancelled in flight is not sent again, unlike one "
            "lost to a read timeout: the cancellation propagates (README, asyncio)",
            "commit": CANCELLED_COMMIT,
            "txn_first": IN_FLIGHT_IN_A_TRANSACTION,
            "mid_txn": IN_FLIGHT_IN_A_TRANSACTION,
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
        admin = open_admin(row.server)
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
