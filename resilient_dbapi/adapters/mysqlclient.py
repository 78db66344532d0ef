"""The mysqlclient (``MySQLdb``) adapter: libmariadb/libmysqlclient under a C extension."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import MySQLdb
import MySQLdb.cursors

from ..error_kinds import MYSQL_ERRORS
from . import _sockets
from ._frames import raised_in
from ._mysql import MySQLSession, result_digest, socket_probe
from .base import AdapterBase, Liveness

__all__ = ["MySQLdbAdapter"]

_CR_SERVER_GONE_ERROR = 2006  # the C library sets it when sending failed (or no socket)


def _dead() -> Liveness:
    return Liveness.DEAD


class MySQLdbAdapter(MySQLSession, AdapterBase):
    name = "mysqlclient"
    errors = MYSQL_ERRORS
    operational_error: type[Exception] = MySQLdb.OperationalError
    interface_error: type[Exception] = MySQLdb.InterfaceError
    programming_error: type[Exception] = MySQLdb.ProgrammingError
    gone_code = _CR_SERVER_GONE_ERROR
    sets_through_cursor = True

    def owns(self, raw: object) -> bool:
        return isinstance(raw, MySQLdb.connections.Connection)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, MySQLdb.MySQLError)

    def error_code(self, exc: BaseException) -> int | None:
        if not isinstance(exc, MySQLdb.MySQLError):
            return None
        code = exc.args[0] if exc.args else None
        return code if isinstance(code, int) else None

    def warned(self, exc: BaseException) -> bool:
        # Not a warning, but as late: a row its cursor could not decode (a converter of
        # the caller's failing), raised once the whole result was stored. The statement
        # ran, and the connection is in step.
        if isinstance(exc, MySQLdb.MySQLError):
            return False
        return "_post_get_result" in raised_in(exc, "MySQLdb.cursors")

    def never_sent(self, exc: BaseException) -> bool:
        # The C library reports 2006 when writing the command failed or there was no
        # socket: a command the server did not receive whole is never executed. A failed
        # read is 2013.
        return self.error_code(exc) == _CR_SERVER_GONE_ERROR

    def uses_tls(self, raw: Any) -> bool:
        # The C library says nothing of its TLS: ask the server (once per connection).
        row = self._row(raw, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return bool(row and row[1])

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        try:
            fd = raw.fileno()
        except Exception:  # closed: the C library has no socket any more
            return _dead

        def current() -> bool:
            try:
                return bool(raw.open) and raw.fileno() == fd
            except Exception:
                return False

        # The library may use TLS without telling Python: a readable socket is only a
        # reason to ask the server (a TLS 1.3 session ticket is no goodbye).
        return socket_probe(fd, True, current)

    def adopt(self, raw: Any) -> None:
        # mysqlclient refuses every call, fileno() included, while another thread runs
        # a query on the connection: its socket is remembered now, for close() then.
        fd = self.socket_fd(raw)
        raw._resilient_socket = None if fd is None else (fd, _sockets.identity(fd))

    def shut_down(self, raw: Any) -> None:
        known = raw.__dict__.get("_resilient_socket")
        if known is None:
            super().shut_down(raw)  # not adopted: looked up now
        else:
            _sockets.shut_down(*known)

    def socket_fd(self, raw: Any) -> int | None:
        try:
            fd = raw.fileno()
        except Exception:  # closed: the C library has no socket any more
            return None
        return fd if isinstance(fd, int) and fd >= 0 else None

    def status(self, raw: Any) -> tuple[bool, bool]:
        # mysqlclient shows no server status flags beyond autocommit: a transaction is
        # known from the statements sent (BEGIN, writes with autocommit off).
        try:
            return False, bool(raw.get_autocommit())
        except MySQLdb.Error:  # closed: unknown, so a write's outcome counts as unknown
            return False, True

    def pending(self, raw: Any) -> bool:
        try:
            return bool(raw.more_results())
        except MySQLdb.Error:  # closed: nothing to read
            return False

    def drain(self, raw: Any) -> None:
        while self.pending(raw):
            if raw.next_result() != 0:
                return
            raw.discard_result()

    def ping(self, raw: Any, timeout: float) -> None:
        # The C library waits for the reply as long as its own read_timeout, which can be
        # set only when connecting (none by default): pass read_timeout= and
        # write_timeout= to mysqlclient's connect() to bound it.
        raw.ping()

    def discard(self, raw: Any) -> None:
        # Shut the socket first: the COM_QUIT that close() sends then goes nowhere (the
        # connection may be mid-result or half-open).
        self.shut_down(raw)
        with contextlib.suppress(Exception):
            raw.close()

    def unbuffered(self, cursor: Any) -> bool:
        return isinstance(cursor, MySQLdb.cursors.CursorUseResultMixIn)

    replays = True
    replay_cursor = ((MySQLdb.cursors.Cursor,), {})
    result_digest = staticmethod(result_digest)  # one frame less per statement

    def describe(self, raw: Any) -> str:
        try:
            return f"{self.name} {raw.get_host_info()}"
        except Exception:
            return f"{self.name} (closed)"

    def _cursor(self, raw: Any) -> Any:
        return raw.cursor(MySQLdb.cursors.Cursor)

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raw.autocommit(value)

    def select_db(self, raw: Any, db: str) -> None:
        raw.select_db(db)
