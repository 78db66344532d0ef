"""The psycopg 3 adapter (sync connections), PostgreSQL.

Errors are classified by SQLSTATE. psycopg raises a connection it found broken without a
server error (the socket closed under it) as an ``OperationalError`` without SQLSTATE:
it counts as ``08006`` (connection failure). libpq reports a failed send like a failed
receive, so only psycopg's own refusals before sending prove a statement never left.
"""

from __future__ import annotations

import re
import select
from collections.abc import Callable, Generator
from typing import Any

import psycopg
from psycopg import generators, pq
from psycopg.rows import tuple_row

from ..error_kinds import POSTGRES_ERRORS
from ..hosts import Role
from .base import (
    KEPT_ROWS,
    AdapterBase,
    AutocommitProperty,
    CommitThenCloseOnExit,
    DriverSurface,
    Liveness,
    rows_digest,
)

__all__ = ["PsycopgAdapter"]

_CONNECTION_FAILURE = "08006"
_NO_CONNECTION = "08003"  # connection_does_not_exist
_IN_TRANS = frozenset({pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR})
# psycopg's refusals before anything is written to the socket.
_NOT_SENT = (
    "the connection is closed",
    "the connection is lost",
    "sending query failed: another command is already in progress",
    "sending query failed: no connection to the server",
)
# What libpq says when connecting fails, where the server sends no SQLSTATE.
_CONNECT_MESSAGES = (
    (re.compile(r"password authentication failed|no pg_hba\.conf entry"), "28P01"),
    (re.compile(r'role ".*" does not exist|fe_sendauth: no password supplied'), "28000"),
    (re.compile(r'database ".*" does not exist'), "3D000"),
    (
        re.compile(r"too many (clients|connections)|remaining connection slots are reserved"),
        "53300",
    ),
    (re.compile(r"the database system is (starting up|shutting down|in recovery)"), "57P03"),
)
# libpq's own settings for a silent server: given by the caller, they are kept.
_LIBPQ_SILENCE = frozenset(
    {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"}
)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _dead() -> Liveness:
    return Liveness.DEAD


def _empty_query(pgconn: Any) -> Generator[Any, Any, Any]:
    pgconn.send_query(b"")
    return (yield from generators.execute(pgconn))


class ConnectionExecute(DriverSurface):
    """psycopg's ``conn.execute()``: a cursor of the resilient connection, executed."""

    __slots__ = ()

    def execute(self, query: Any, params: Any = None) -> Any:
        cursor = self.cursor()  # type: ignore[attr-defined]
        cursor.execute(query, params)
        return cursor


class CursorCopy:
    """psycopg's ``cursor.copy()``: COPY streams past the proxy, so before the driver
    starts it the connection is checked out, and the COPY counts as a write: with
    autocommit off, a connection lost before the ``COMMIT`` is then a lost transaction,
    never a commit of nothing."""

    __slots__ = ()

    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        self._check_open()  # type: ignore[attr-defined]
        conn = self._conn  # type: ignore[attr-defined]
        raw = conn._start_stream("copy", self)
        return _GuardedCopy(conn, raw.copy(statement, params, **kwargs))

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        """psycopg's ``cursor.stream()``: rows read past the proxy as they come, under
        the rules of a COPY (it may be an ``INSERT ... RETURNING``), from the first row
        asked for (when the driver sends it)."""
        self._check_open()  # type: ignore[attr-defined]
        return _guarded_stream(self, query, params, kwargs)


def _guarded_stream(cursor: Any, query: Any, params: Any, kwargs: dict[str, Any]) -> Any:
    conn = cursor._conn
    raw = conn._start_stream("stream", cursor)
    try:
        yield from raw.stream(query, params, **kwargs)
    except Exception as exc:
        if conn._adapter.error_code(exc) is not None:
            conn._stream_failed(exc, "stream")
        raise


class _GuardedCopy:
    """psycopg's copy context, whose failures go through the safety rules: a COPY lost
    with the connection raises ``OutcomeUnknownError`` (autocommit) or
    ``TransactionLostError``, and the connection is replaced before the next statement."""

    __slots__ = ("_conn", "_inner")

    def __init__(self, conn: Any, inner: Any) -> None:
        self._conn = conn
        self._inner = inner

    def __enter__(self) -> Any:
        try:
            return self._inner.__enter__()
        except Exception as exc:
            self._judge(exc)
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            suppressed = self._inner.__exit__(exc_type, exc, tb)
        except Exception as error:
            self._judge(error)
            raise
        if isinstance(exc, Exception) and not suppressed:
            self._judge(exc)
        return suppressed

    def _judge(self, exc: Exception) -> None:
        """Raise what the rules make of ``exc``; return if it says nothing about the
        connection (the caller's own error, or one the driver raises as it is)."""
        conn = self._conn
        if conn._adapter.error_code(exc) is None:
            return
        conn._stream_failed(exc, "copy")


class PsycopgAdapter(AdapterBase):
    name = "psycopg"
    errors = POSTGRES_ERRORS
    operational_error: type[Exception] = psycopg.OperationalError
    interface_error: type[Exception] = psycopg.InterfaceError
    closed_cursor_error: type[Exception] | None = psycopg.InterfaceError  # "the cursor is closed"

    def carry_over(self, raw: Any) -> dict[str, Any]:
        # Types registered on the connection (hstore, composite types, a custom loader)
        # live in its adapters map: the new one starts from a copy of it.
        return {"context": raw}

    programming_error: type[Exception] = psycopg.ProgrammingError
    gone_code = _NO_CONNECTION
    postgres = True
    transactional_only = True  # every PostgreSQL table rolls back
    idle_setting = "idle_session_timeout"
    surface = (AutocommitProperty, ConnectionExecute, CommitThenCloseOnExit)
    cursor_surface = (CursorCopy,)
    opens_transactions = True  # transaction() sends BEGIN with autocommit on

    def owns(self, raw: object) -> bool:
        return isinstance(raw, psycopg.Connection)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def make_error(self, cls: type[Exception], code: Any, message: str) -> Exception:
        error = cls(message)
        if isinstance(code, str) and len(code) == 5:
            error.sqlstate = code  # type: ignore[attr-defined]
        return error

    def error_code(self, exc: BaseException) -> str | None:
        if not isinstance(exc, psycopg.Error):
            return None
        if exc.sqlstate:
            return exc.sqlstate
        if isinstance(exc, psycopg.errors.ConnectionTimeout):
            return "08001"
        if not isinstance(exc, psycopg.OperationalError):
            return None
        message = str(exc)
        if message.startswith(_NOT_SENT):
            return _NO_CONNECTION
        for pattern, code in _CONNECT_MESSAGES:
            if pattern.search(message):
                return code
        return _CONNECTION_FAILURE

    def never_sent(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, psycopg.OperationalError)
            and not exc.sqlstate
            and str(exc).startswith(_NOT_SENT)
        )

    def uses_tls(self, raw: Any) -> bool:
        return bool(raw.pgconn.ssl_in_use)

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        pgconn = raw.pgconn
        try:
            fd = pgconn.socket
        except psycopg.OperationalError:
            return _dead
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)

        def probe() -> Liveness:
            if raw.pgconn is not pgconn or pgconn.status != pq.ConnStatus.OK:
                return Liveness.DEAD
            if not poller.poll(0):
                return Liveness.ALIVE
            # Readable while idle: a FATAL before the server hung up, or something harmless
            # (a NOTIFY, a parameter change). Let libpq read it, without sending anything.
            try:
                pgconn.consume_input()
                pgconn.is_busy()
                pgconn.consume_input()
            except psycopg.OperationalError:
                return Liveness.DEAD
            return Liveness.ALIVE if pgconn.status == pq.ConnStatus.OK else Liveness.DEAD

        return probe

    def socket_fd(self, raw: Any) -> int | None:
        try:
            fd: int = raw.pgconn.socket
        except psycopg.OperationalError:  # no connection
            return None
        return fd

    def set_dead_peer_timeout(self, raw: Any, seconds: float) -> None:
        # The connection is the caller's to make: keepalives or tcp_user_timeout given to
        # libpq there are the caller's choice. Otherwise the same settings, on the socket.
        if _LIBPQ_SILENCE.isdisjoint(raw.info.get_parameters()):
            super().set_dead_peer_timeout(raw, seconds)

    def status(self, raw: Any) -> tuple[bool, bool]:
        # With autocommit off psycopg opens a transaction before any statement, reads
        # included: the proxy knows from the statements whether it wrote. With autocommit
        # on, an open transaction means someone sent BEGIN (conn.transaction() included).
        # Read twice per statement: libpq's integer, not the ConnectionInfo enum wrapper.
        autocommit = bool(raw.autocommit)
        return autocommit and raw.pgconn.transaction_status in _IN_TRANS, autocommit

    def ping(self, raw: Any, timeout: float) -> None:
        # An empty query: a round trip that opens no transaction.
        pgconn = raw.pgconn
        try:
            results = raw.wait(_empty_query(pgconn), timeout=timeout)
        except psycopg.errors._WaitTimeout:
            pgconn.finish()  # the reply may still come: never use it again
            raise psycopg.OperationalError(
                f"ping timed out after {timeout} s: the connection is lost"
            ) from None
        if pgconn.status != pq.ConnStatus.OK or any(
            r.status == pq.ExecStatus.FATAL_ERROR for r in results
        ):
            raise psycopg.OperationalError("ping failed: the connection is lost")

    def discard(self, raw: Any) -> None:
        raw.pgconn.finish()  # never raises; sends a Terminate at most

    def unbuffered(self, cursor: Any) -> bool:
        return isinstance(cursor, psycopg.ServerCursor)

    replays = True

    def result_digest(self, cursor: Any) -> object:
        # The server's answer as libpq holds it (the values' bytes, whatever the cursor's
        # row factory), the command tag ("UPDATE 3") and the columns.
        result = cursor.pgresult
        rows: object = None
        if result is not None and result.ntuples:
            fields = range(result.nfields)
            value = result.get_value
            values = tuple(tuple(value(r, c) for c in fields) for r in range(result.ntuples))
            kept = rows_digest(values) if len(values) > KEPT_ROWS else values
            rows = (tuple(result.fformat(c) for c in fields), kept)
        description = cursor.description
        columns = None if description is None else tuple((c.name, c.type_code) for c in description)
        return (cursor.rowcount, cursor.statusmessage, columns, rows)

    def describe(self, raw: Any) -> str:
        info = raw.info
        try:
            host, port = info.host, info.port
        except psycopg.Error:
            return self.name
        return f"{self.name} {host}:{port}"

    def in_driver_block(self, raw: Any) -> bool:
        return bool(getattr(raw, "_num_transactions", 1))  # unknown: the weaker claim

    def ended_unseen(self, raw: Any) -> bool:
        # libpq's own word: no transaction (a lost connection is UNKNOWN, not IDLE).
        return bool(raw.pgconn.transaction_status == pq.TransactionStatus.IDLE)

    def _fresh_transaction(self, raw: Any) -> bool:
        return not raw.autocommit and raw.info.transaction_status == pq.TransactionStatus.IDLE

    def completion_chains(self, raw: Any) -> bool:
        return False  # PostgreSQL chains only on COMMIT AND CHAIN, which the text shows

    def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        return False  # every PostgreSQL table rolls back (never asked)

    def last_insert_id(self, raw: Any) -> None:
        return None  # no such history: a question about it is refused on a new session

    def wait_timeout(self, raw: Any) -> float | None:
        """``idle_session_timeout`` in seconds; None inside a transaction (psycopg would
        need a statement of its own there) or when it is off."""
        if raw.info.transaction_status != pq.TransactionStatus.IDLE:
            return None
        opened = self._fresh_transaction(raw)
        try:
            with raw.cursor(row_factory=tuple_row) as cursor:
                cursor.execute("SHOW idle_session_timeout")
                row = cursor.fetchone()
        finally:
            if opened:
                raw.rollback()  # the transaction psycopg opened held only the SHOW
        return _seconds(row[0]) if row else None

    def role(self, raw: Any) -> Role:
        """Read-only: a standby, or read-only by its configuration (not by a ``SET`` of
        this session: ``reset_val`` ignores those); else writable."""
        opened = self._fresh_transaction(raw)
        try:
            with raw.cursor(row_factory=tuple_row) as cursor:
                cursor.execute(
                    "SELECT pg_is_in_recovery() OR (SELECT reset_val = 'on' FROM pg_settings "
                    "WHERE name = 'default_transaction_read_only')"
                )
                row = cursor.fetchone()
        finally:
            if opened:
                raw.rollback()  # the transaction psycopg opened held only the question
        return Role.READ_ONLY if row and row[0] else Role.WRITABLE

    def execute(self, raw: Any, query: str, args: Any) -> None:
        # Only on a new connection (on_connect, the journal): a transaction psycopg opens
        # for it holds nothing else, and is committed so that the settings stay.
        opened = self._fresh_transaction(raw)
        with raw.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(query, args)
        if opened and raw.info.transaction_status == pq.TransactionStatus.INTRANS:
            raw.commit()

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raw.autocommit = value

    def select_db(self, raw: Any, db: str) -> None:
        raise psycopg.NotSupportedError("PostgreSQL cannot change database on a connection")


def _seconds(setting: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", setting)
    if match is None:
        return None
    value = float(match.group(1)) * _UNITS.get(match.group(2) or "ms", 1e-3)
    return value or None
