"""The PyMySQL adapter."""

from __future__ import annotations

import contextlib
import select
import ssl
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.cursors
import pymysql.err

from ..error_kinds import MYSQL_ERRORS
from . import Liveness
from .base import AdapterBase, MySQLSession

__all__ = ["PyMySQLAdapter"]

_IN_TRANS = 0x0001  # SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = 0x0002  # SERVER_STATUS_AUTOCOMMIT
_CR_SERVER_GONE_ERROR = 2006  # PyMySQL raises it only when sending failed
_POLL_ANY = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
    if hasattr(select, "poll")
    else 0
)


def _dead() -> Liveness:
    return Liveness.DEAD


def socket_probe(sock: Any, tls: bool, current: Callable[[], bool]) -> Callable[[], Liveness]:
    """A zero-timeout check of an idle connection's socket (a socket object or a file
    descriptor), after ``current()`` says the driver still uses it.

    An idle MySQL connection has nothing to read: any event means the server closed it,
    reset it, or sent a goodbye packet (MySQL 8's error 4031). Under TLS the server may
    also have sent session tickets nobody read yet, so a readable TLS socket is only a
    reason to ask the server.
    """
    fd = sock if isinstance(sock, int) else sock.fileno()
    if fd < 0:  # closed before anyone looked
        return _dead
    if _POLL_ANY:
        poller = select.poll()
        poller.register(fd, _POLL_ANY)

        def probe() -> Liveness:
            if not current():
                return Liveness.DEAD
            events = poller.poll(0)
            if not events:
                return Liveness.ALIVE
            if tls and events[0][1] & ~(select.POLLIN | select.POLLPRI) == 0:
                return Liveness.UNSURE
            return Liveness.DEAD

        return probe

    def probe_select() -> Liveness:  # platforms without poll()
        if not current():
            return Liveness.DEAD
        readable, _, errored = select.select([fd], [], [fd], 0)
        if not readable and not errored:
            return Liveness.ALIVE
        return Liveness.UNSURE if tls and not errored else Liveness.DEAD

    return probe_select


class MySQLProtocol(AdapterBase):
    """What PyMySQL and aiomysql share: PyMySQL's error classes and the server's
    status flags."""

    name = "mysql"
    errors = MYSQL_ERRORS
    operational_error: type[Exception] = pymysql.err.OperationalError
    interface_error: type[Exception] = pymysql.err.InterfaceError
    programming_error: type[Exception] = pymysql.err.ProgrammingError
    gone_code = _CR_SERVER_GONE_ERROR

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.MySQLError)

    def status(self, raw: Any) -> tuple[bool, bool]:
        flags = raw.server_status
        return bool(flags & _IN_TRANS), bool(flags & _AUTOCOMMIT)

    def busy(self, raw: Any) -> bool:
        result = raw._result
        return result is not None and bool(result.unbuffered_active)

    def error_code(self, exc: BaseException) -> int | None:
        if not isinstance(exc, pymysql.err.MySQLError):
            return None
        code = exc.args[0] if exc.args else None
        return code if isinstance(code, int) else None

    def describe(self, raw: Any) -> str:
        host = getattr(raw, "host", "?")
        port = getattr(raw, "port", "?")
        unix = getattr(raw, "unix_socket", None)
        return f"{self.name} {unix}" if unix else f"{self.name} {host}:{port}"


class PyMySQLAdapter(MySQLSession, MySQLProtocol):
    name = "pymysql"

    def owns(self, raw: object) -> bool:
        return isinstance(raw, pymysql.connections.Connection)

    def uses_tls(self, raw: Any) -> bool:
        return isinstance(raw._sock, ssl.SSLSocket)

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        sock = raw._sock
        if sock is None:
            return _dead
        return socket_probe(sock, isinstance(sock, ssl.SSLSocket), lambda: raw._sock is sock)

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

    def discard(self, raw: Any) -> None:
        result = raw._result
        if result is not None:
            # An unfinished unbuffered result would try to drain the closed socket when
            # its cursor is garbage-collected.
            result.unbuffered_active = False
        with contextlib.suppress(Exception):  # a broken socket may fail to close: gone anyway
            raw._force_close()

    def never_sent(self, exc: BaseException) -> bool:
        # InterfaceError(0, ''): there was no socket to send on. 2006: sendall() failed,
        # and a command the server did not receive whole is never executed.
        if isinstance(exc, pymysql.err.InterfaceError):
            return self.error_code(exc) == 0
        return isinstance(exc, pymysql.err.OperationalError) and self.error_code(exc) == (
            _CR_SERVER_GONE_ERROR
        )

    def unbuffered(self, cursor: Any) -> bool:
        return isinstance(cursor, pymysql.cursors.SSCursor)

    def _cursor(self, raw: Any) -> Any:
        return raw.cursor(pymysql.cursors.Cursor)

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raw.autocommit(value)

    def select_db(self, raw: Any, db: str) -> None:
        raw.select_db(db)
