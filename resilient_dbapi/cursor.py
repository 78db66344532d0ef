"""The synchronous resilient cursor."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ._forwarding import forwarding_class
from .classify import ErrorKind
from .connection import ResilientConnection
from .engine import Op
from .statements import StatementKind, classify

__all__ = ["ResilientCursor"]

# The statements an application sends are few and repeated: their kinds are looked up
# in a plain dict, cheaper than calling classify() (and its LRU cache) every time.
_kinds: dict[Any, StatementKind] = {}
_KINDS_MAX = 4096
_FETCHES = ("fetchone", "fetchmany", "fetchall")
# Set by a driver cursor only once it has executed something.
_PEP249_ATTRIBUTES = ("description", "rowcount", "lastrowid", "rownumber", "messages")


def _remember(query: Any) -> StatementKind:
    kind = classify(query)
    if isinstance(query, str):
        if len(_kinds) >= _KINDS_MAX:
            _kinds.clear()
        _kinds[query] = kind
    return kind


class ResilientCursor:
    """A DB-API 2.0 cursor on a :class:`ResilientConnection`.

    A cursor made before the connection was replaced moves to the new connection at its
    next ``execute``. Other attributes of the driver's cursor pass through.
    """

    _raw: Any

    @classmethod
    def create(cls, conn: ResilientConnection, cursor_class: Any) -> ResilientCursor:
        raw = conn._raw.cursor(cursor_class) if cursor_class is not None else conn._raw.cursor()
        return forwarding_class(cls, raw, _PEP249_ATTRIBUTES)(conn, cursor_class, raw)

    def __init__(self, conn: ResilientConnection, cursor_class: Any, raw: Any) -> None:
        self._conn = conn
        self._cursor_class = cursor_class
        self._arraysize: int | None = None
        self._closed = False
        self._bind(raw)

    def _bind(self, raw: Any) -> Any:
        conn = self._conn
        self._raw = raw
        self._gen = conn._gen
        if self._arraysize is not None:
            raw.arraysize = self._arraysize
        # Fetching from a buffered cursor reads a buffer, not the network: the driver's own
        # methods stand in for the class's checked ones (they hold no reference to self,
        # so an abandoned cursor is still freed at once, as the driver's would be).
        names = vars(self)
        if conn._adapter.unbuffered(raw):
            for name in _FETCHES:
                names.pop(name, None)
        else:
            for name in _FETCHES:
                names[name] = getattr(raw, name)
        return raw

    def _current(self) -> Any:
        """The driver cursor on the connection's current physical connection."""
        if self._gen == self._conn._gen:
            return self._raw
        conn = self._conn
        cursor_class = self._cursor_class
        raw = conn._raw.cursor(cursor_class) if cursor_class is not None else conn._raw.cursor()
        return self._bind(raw)

    def _check_open(self) -> None:
        if self._closed:
            raise self._conn._adapter.interface_error(
                0, "resilient_dbapi: this cursor was closed; make a new one with cursor()"
            )

    # -- PEP 249 ------------------------------------------------------------------

    @property
    def connection(self) -> ResilientConnection:
        return self._conn

    def execute(self, query: Any, args: Any = None) -> Any:
        if self._closed:
            self._check_open()
        kind = _kinds.get(query)
        if kind is None:
            kind = _remember(query)
        return self._conn._execute(self, kind, query, args)

    def executemany(self, query: Any, args: Any) -> Any:
        self._check_open()
        conn = self._conn
        kind = classify(query)
        conn._enter("executemany")
        try:
            result = conn._run(
                Op.EXECUTEMANY, kind, _send_executemany, self, query, args, query=query
            )
            conn._note(kind, query, args)
            return result
        finally:
            conn._leave()

    def callproc(self, procname: str, args: Any = ()) -> Any:
        self._check_open()
        conn = self._conn
        conn._enter("callproc")
        try:
            result = conn._run(
                Op.CALLPROC, StatementKind.WRITE, _send_callproc, self, procname, args
            )
            # The driver passes the arguments through user variables (@_proc_0, ...).
            conn._engine.unrestorable.add("user variables (callproc arguments)")
            return result
        finally:
            conn._leave()

    def _reading(self, read: Callable[..., Any], *args: Any) -> Any:
        """A read of results that may touch the network (unbuffered rows, next result)."""
        self._check_open()
        conn = self._conn
        conn._enter("fetch")
        try:
            return read(*args)
        except Exception as exc:
            if self._gen != conn._gen:
                raise  # a result of a connection replaced since: nothing else is affected
            conn._failed(exc, Op.FETCH, StatementKind.READ, resends=0)
            raise  # _failed returns only to resend, which a fetch never is
        finally:
            conn._leave()

    def fetchone(self) -> Any:
        return self._reading(self._raw.fetchone)

    def fetchmany(self, size: int | None = None) -> Any:
        if size is None:
            return self._reading(self._raw.fetchmany)
        return self._reading(self._raw.fetchmany, size)

    def fetchall(self) -> Any:
        return self._reading(self._raw.fetchall)

    def fetchall_unbuffered(self) -> Iterator[Any]:
        """PyMySQL's lazy row iterator, each row read under the rules of ``fetchone``."""
        return iter(self.fetchone, None)

    def read_next(self) -> Any:
        return self._reading(self._raw.read_next)

    def nextset(self) -> Any:
        return self._reading(self._raw.nextset)

    def scroll(self, value: int, mode: str = "relative") -> Any:
        return self._reading(self._raw.scroll, value, mode)

    @property
    def arraysize(self) -> int:
        return int(self._raw.arraysize)

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value
        self._raw.arraysize = value

    def setinputsizes(self, *args: Any) -> None:
        """PEP 249 lets a driver ignore this; passed on when the driver has it."""
        method = getattr(self._raw, "setinputsizes", None)
        if method is not None:
            method(*args)

    def setoutputsize(self, *args: Any) -> None:
        """PEP 249 lets a driver ignore this (PyMySQL names it ``setoutputsizes``)."""
        raw = self._raw
        method = getattr(raw, "setoutputsize", None) or getattr(raw, "setoutputsizes", None)
        if method is not None:
            method(*args)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._gen != self._conn._gen:
            return  # its physical connection is gone already
        conn = self._conn
        conn._enter("cursor close")
        try:
            self._raw.close()  # an unbuffered cursor reads its remaining rows here
        except Exception as exc:
            code = conn._adapter.error_code(exc)
            if code is None or conn._engine.errors.kind(code) is not ErrorKind.DEAD:
                raise
            # The connection died while the cursor drained rows nobody wanted. _failed
            # records it: the connection is replaced at the next checkout, and a lost
            # transaction is reported by the next statement on the connection.
            with contextlib.suppress(Exception):
                conn._failed(exc, Op.FETCH, StatementKind.READ, resends=0)
        finally:
            conn._leave()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchone, None)

    def __enter__(self) -> ResilientCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<resilient_dbapi.ResilientCursor {type(self._raw).__name__} {state}>"


def _send_executemany(
    conn: ResilientConnection, cursor: ResilientCursor, query: Any, args: Any
) -> Any:
    return cursor._current().executemany(query, args)


def _send_callproc(conn: ResilientConnection, cursor: ResilientCursor, name: str, args: Any) -> Any:
    return cursor._current().callproc(name, args)
