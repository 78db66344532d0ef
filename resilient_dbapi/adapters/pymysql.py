"""The PyMySQL adapter."""

from __future__ import annotations

import contextlib
import inspect
import math
import ssl
import weakref
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.cursors
import pymysql.err

from ._mysql import (
    CR_SERVER_GONE_ERROR,
    MySQLProtocol,
    MySQLSession,
    dead,
    kept_digest,
    record_kept,
    result_digest,
    result_kept,
    socket_probe,
)
from .base import Liveness

__all__ = ["PyMySQLAdapter"]


class PyMySQLAdapter(MySQLSession, MySQLProtocol):
    name = "pymysql"
    rows_module = "pymysql.connections"
    # PyMySQL 1.1's ping() reconnects by default, 1.2's only when asked.
    ping_reopens = bool(
        inspect.signature(pymysql.connections.Connection.ping).parameters["reconnect"].default
    )

    reconnects_itself = True

    def owns(self, raw: object) -> bool:
        return isinstance(raw, pymysql.connections.Connection)

    def uses_tls(self, raw: Any) -> bool:
        return isinstance(raw._sock, ssl.SSLSocket)

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        sock = raw._sock
        if sock is None:
            return dead
        return socket_probe(sock, isinstance(sock, ssl.SSLSocket), lambda: raw._sock is sock)

    def driver_socket(self, raw: Any) -> Any:
        return raw._sock

    def socket_fd(self, raw: Any) -> int | None:
        sock = raw._sock
        fd = -1 if sock is None else sock.fileno()
        return fd if fd >= 0 else None

    def known_dead(self, raw: Any) -> None:
        return None  # PyMySQL learns nothing without a system call

    def ping(self, raw: Any, timeout: float) -> None:
        if raw._sock is None:
            raise pymysql.err.InterfaceError(0, "")
        saved = raw._read_timeout, raw._write_timeout
        raw._read_timeout = raw._write_timeout = timeout
        try:
            raw.ping(False)  # never let the driver reconnect on its own
        finally:
            # PyMySQL re-applies its own timeouts at the next read or write.
            raw._read_timeout, raw._write_timeout = saved

    def drain(self, raw: Any) -> None:
        while self.pending(raw):
            raw.next_result()

    def discard(self, raw: Any) -> None:
        result = raw._result
        if result is not None:
            # An unfinished unbuffered result would try to drain the closed socket when
            # its cursor is garbage-collected.
            result.unbuffered_active = False
        with contextlib.suppress(Exception):  # a broken socket may fail to close: gone anyway
            raw._force_close()

    def probe_arguments(self, timeout: float) -> dict[str, Any] | None:
        # PyMySQL reads the server's greeting under read_timeout, not connect_timeout.
        seconds = max(1, math.ceil(timeout))
        return {
            "connect_timeout": seconds,
            "read_timeout": seconds,
            "write_timeout": seconds,
            # A login is the question: the caller's set-up statements would only add load
            # (and a slow one would look like a frozen server).
            "init_command": None,
            "sql_mode": None,
        }

    def never_sent(self, exc: BaseException) -> bool:
        # InterfaceError(0, ''): there was no socket to send on. 2006: sendall() failed,
        # and a command the server did not receive whole is never executed.
        if isinstance(exc, pymysql.err.InterfaceError):
            return self.error_code(exc) == 0
        return isinstance(exc, pymysql.err.OperationalError) and self.error_code(exc) == (
            CR_SERVER_GONE_ERROR
        )

    def unbuffered(self, cursor: Any) -> bool:
        return isinstance(cursor, pymysql.cursors.SSCursor)

    replays = True
    replay_cursor = ((pymysql.cursors.Cursor,), {})
    result_digest = staticmethod(result_digest)  # one frame less per statement
    result_kept = staticmethod(result_kept)
    kept_digest = staticmethod(kept_digest)

    def watch_writes(self, raw: Any) -> None:
        read = type(raw)._read_query_result
        ref = weakref.ref(raw)  # no cycle: a dropped connection is freed at once

        def read_query_result(unbuffered: bool = False) -> Any:
            conn = ref()
            rows = read(conn, unbuffered)
            record_kept(conn)
            return rows

        raw._read_query_result = read_query_result

    def last_insert_id(self, raw: Any) -> int | None:
        # What the caller reads of the last reply (affected_rows(), insert_id()) stays
        # its own statement's, should the question it came before be refused.
        kept = raw._result, raw._affected_rows
        try:
            return super().last_insert_id(raw)
        finally:
            raw._result, raw._affected_rows = kept

    def execute(self, raw: Any, query: str, args: Any) -> None:
        if args is None:  # the proxy's set-up and replay: no cursor to make and read
            raw.query(query)
            self.drain(raw)  # several statements in one text, as a cursor's close() reads
        else:
            super().execute(raw, query, args)

    def _cursor(self, raw: Any) -> Any:
        return raw.cursor(pymysql.cursors.Cursor)

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raw.autocommit(value)

    def select_db(self, raw: Any, db: str) -> None:
        raw.select_db(db)
