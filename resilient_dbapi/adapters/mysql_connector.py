"""The mysql-connector-python adapter (``mysql.connector``).

The pure-Python connection (``use_pure=True``, the default when the C extension is not
installed). The C extension's connection hides its socket: it gets the generic fallback.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import weakref
from collections.abc import Callable
from typing import Any

import mysql.connector.cursor
import mysql.connector.errors as cerrors
from mysql.connector.connection import MySQLConnection
from mysql.connector.constants import ServerCmd

from ..error_kinds import MYSQL_ERRORS
from ._frames import raised_in
from ._mysql import MySQLSession, result_digest, socket_probe
from .base import AdapterBase, AutocommitProperty, Liveness

__all__ = ["MySQLConnectorAdapter"]

_CR_SERVER_GONE_ERROR = 2006
_CR_SERVER_LOST = 2013
_STATUS_AUTOCOMMIT = 2  # SERVER_STATUS_AUTOCOMMIT

_BUFFERED = mysql.connector.cursor.MySQLCursorBuffered


def _dead() -> Liveness:
    return Liveness.DEAD


def _raised_reading_warnings(exc: BaseException) -> bool:
    """Whether ``exc`` came out of the cursor's reading of the server's warnings: after
    the statement ran."""
    return "_handle_warnings" in raised_in(exc, "mysql.connector.cursor")


def _lost_reading_warnings(exc: BaseException) -> bool:
    """The driver's error for a failed ``SHOW WARNINGS`` (asked after the statement ran),
    what failed its context (``from None``)."""
    return (
        isinstance(exc, cerrors.InterfaceError)
        and isinstance(exc.__context__, cerrors.Error)
        and str(exc.msg).startswith("Failed getting warnings")
    )


def _not_available(exc: BaseException) -> bool:
    """ "MySQL Connection not available": raised with no socket to send on, and by
    ``cursor()`` when its ping failed; nothing of the caller's was sent."""
    return isinstance(exc.__cause__, AttributeError) or str(getattr(exc, "msg", "")).startswith(
        "MySQL Connection not available"
    )


class MySQLConnectorAdapter(MySQLSession, AdapterBase):
    name = "mysql-connector"
    connect_timeout_argument = "connection_timeout"
    ping_reopens = False  # ping(reconnect=True) reconnects
    errors = MYSQL_ERRORS
    operational_error: type[Exception] = cerrors.OperationalError
    interface_error: type[Exception] = cerrors.InterfaceError
    programming_error: type[Exception] = cerrors.ProgrammingError
    gone_code = _CR_SERVER_GONE_ERROR
    surface = (AutocommitProperty,)
    opens_transactions = True  # start_transaction()

    def owns(self, raw: object) -> bool:
        return isinstance(raw, MySQLConnection)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, cerrors.Error)

    def make_error(self, cls: type[Exception], code: Any, message: str) -> Exception:
        return cls(msg=message, errno=code)  # type: ignore[call-arg]

    def error_code(self, exc: BaseException) -> int | None:
        if isinstance(exc, cerrors.ReadTimeoutError | cerrors.WriteTimeoutError):
            # The driver's own read/write timeout: it closed the connection mid-command.
            return _CR_SERVER_LOST
        if not isinstance(exc, cerrors.Error):
            return None
        code = exc.errno
        if isinstance(code, int) and code > 0:
            return code
        if isinstance(exc, cerrors.OperationalError) and _not_available(exc):
            return _CR_SERVER_GONE_ERROR
        if _lost_reading_warnings(exc):
            # The statement ran; the connection was lost as the cursor asked for its
            # warnings: judged as the statement's own loss after sending (never sent
            # again, a write's outcome unknown), not passed on as if it had failed.
            return self.error_code(exc.__context__)  # type: ignore[arg-type]
        return None

    def warned(self, exc: BaseException) -> bool:
        # Its cursor reads the server's warnings (get_warnings=True) once a statement's
        # result is read, in _handle_warnings, and raises there: its own error for the
        # first with raise_on_warnings=True, else warnings.warn (an error under a filter
        # that makes warnings errors). callproc() raises InterfaceError instead, with
        # what its statement raised as the context ("from None").
        if isinstance(exc, cerrors.InterfaceError) and exc.__context__ is not None:
            exc = exc.__context__
        return _raised_reading_warnings(exc)

    def never_sent(self, exc: BaseException) -> bool:
        # 2006 and "not available" come from a missing socket, before anything is sent.
        # 2055 wraps an OSError of a send or of a receive alike: not proof.
        if isinstance(exc, cerrors.ReadTimeoutError | cerrors.WriteTimeoutError):
            return False
        # cursor() raises "not available" (no cause) after its own ping failed.
        return isinstance(exc, cerrors.Error) and (
            exc.errno == _CR_SERVER_GONE_ERROR or (exc.__cause__ is None and _not_available(exc))
        )

    def uses_tls(self, raw: Any) -> bool:
        holder = raw._socket
        return isinstance(getattr(holder, "sock", None), ssl.SSLSocket)

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        holder = raw._socket
        sock = getattr(holder, "sock", None) if holder is not None else None
        if sock is None:
            return _dead
        return socket_probe(
            sock,
            isinstance(sock, ssl.SSLSocket),
            lambda: raw._socket is holder and holder.sock is sock,
        )

    def driver_socket(self, raw: Any) -> Any:
        holder = raw._socket
        return getattr(holder, "sock", None) if holder is not None else None

    def socket_fd(self, raw: Any) -> int | None:
        holder = raw._socket
        sock = getattr(holder, "sock", None) if holder is not None else None
        fd = -1 if sock is None else sock.fileno()
        return fd if fd >= 0 else None

    def adopt(self, raw: Any) -> None:
        """Keep the server's status flags as each reply reports them: the driver keeps
        only the transaction flag, and its ``_autocommit`` is what it last set itself
        (stale after a ``SET autocommit = 1`` the server ran)."""
        owner = weakref.ref(raw)  # no cycle between the connection and its hook
        handle = type(raw)._handle_server_status

        def remember(flags: int) -> None:
            conn = owner()
            if conn is not None:
                conn._resilient_flags = flags
                handle(conn, flags)

        raw._handle_server_status = remember

    def status(self, raw: Any) -> tuple[bool, bool]:
        # From what the driver already knows: its `autocommit` property would ask the
        # server.
        flags = raw.__dict__.get("_resilient_flags")
        autocommit = raw._autocommit if flags is None else flags & _STATUS_AUTOCOMMIT
        return raw._in_transaction is True, bool(autocommit)

    def busy(self, raw: Any) -> bool:
        return bool(raw.unread_result)

    def ping(self, raw: Any, timeout: float) -> None:
        if raw._socket is None:
            raise cerrors.OperationalError(msg="no connection", errno=_CR_SERVER_GONE_ERROR)
        ping = raw._send_cmd(ServerCmd.PING, read_timeout=timeout, write_timeout=timeout)
        raw._handle_ok(ping)

    def discard(self, raw: Any) -> None:
        # No COM_QUIT; and the driver's own shutdown() skips close() when the peer has
        # reset the socket already, leaving it open.
        holder, raw._socket = raw._socket, None
        sock = getattr(holder, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def unbuffered(self, cursor: Any) -> bool:
        return not isinstance(cursor, _BUFFERED)

    replays = True
    replay_cursor: tuple[tuple[Any, ...], dict[str, Any]] = ((), {"buffered": True})

    def result_digest(self, cursor: Any) -> object:
        if isinstance(cursor, _BUFFERED):
            return result_digest(cursor)
        if cursor.description is not None:
            return None  # its rows are still on the socket
        # No result set (a write): the same as a buffered cursor's (no rows).
        return (cursor.rowcount, cursor.lastrowid, None, cursor.warning_count, None)

    def describe(self, raw: Any) -> str:
        unix = getattr(raw, "unix_socket", None)
        if unix:
            return f"{self.name} {unix}"
        return f"{self.name} {getattr(raw, 'server_host', '?')}:{getattr(raw, 'server_port', '?')}"

    def _cursor(self, raw: Any) -> Any:
        return raw.cursor(buffered=True)

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raw.autocommit = value

    def select_db(self, raw: Any, db: str) -> None:
        raw.database = db
