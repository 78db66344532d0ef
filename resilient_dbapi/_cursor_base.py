"""What the two cursor twins share that never waits: their state, binding to the
current driver cursor, and the PEP 249 members that touch no network.
``_cursor_async.py`` and its generated sync twin hold only what awaits.
"""

from __future__ import annotations

from typing import Any

from ._error_factories import new_error
from ._forwarding import forwarding_class, wraps

__all__ = ["FETCHES", "LATE_ATTRIBUTES", "CursorBase", "cursor_kind"]

FETCHES = ("fetchone", "fetchmany", "fetchall")
# Set by a driver cursor only once it has executed something. Tortoise-ORM reads
# ``_result`` (for the column names) from aiomysql's cursors; ``_executed`` and
# ``_last_executed`` hold the SQL sent, which Django's debug log and the logging tools
# of the MySQLdb era read.
LATE_ATTRIBUTES = (
    "description",
    "rowcount",
    "lastrowid",
    "rownumber",
    "messages",
    "_result",
    "_executed",
    "_last_executed",
)


def cursor_kind(cls: type, conn: Any, raw: Any) -> tuple[type, bool]:
    """The proxy class for the driver cursor ``raw`` and whether it is unbuffered, both
    decided by its class: kept by ``conn`` for its next cursors, unless ``raw`` wraps
    another (one wrapper class serves every driver cursor class)."""
    adapter = conn._adapter
    kind: tuple[type, bool] = (
        forwarding_class(cls, raw, LATE_ATTRIBUTES, conn._cursor_mixins + adapter.cursor_surface),
        adapter.unbuffered(raw),
    )
    if not wraps(raw):
        conn._cursor_kinds[type(raw)] = kind
    return kind


class CursorBase:
    """The state of a resilient cursor and its I/O-free members."""

    _raw: Any
    _conn: Any
    # PEP 249's optional methods, and PyMySQL's: hidden where the driver has none.
    _driver_methods = ("callproc", "nextset", "scroll", "fetchall_unbuffered", "read_next")
    # Until set (a cursor per request pays for no more than it uses).
    _arraysize: int | None = None
    _attributes: dict[str, Any] | None = None  # driver attributes set through us
    _closed = False

    def __init__(
        self,
        conn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        raw: Any,
        unbuffered: bool,
    ) -> None:
        self._conn = conn
        self._cursor_args = args
        self._cursor_kwargs = kwargs
        # _bind(), less what a new cursor has not set yet.
        self._raw = raw
        self._gen = conn._gen
        self._unbuffered = unbuffered
        if not unbuffered:
            names = self.__dict__
            names["fetchone"] = raw.fetchone
            names["fetchmany"] = raw.fetchmany
            names["fetchall"] = raw.fetchall
        if conn._in_process and conn._telemetry is None:
            self.__dict__["execute"] = raw.execute

    def _bind(self, raw: Any, unbuffered: bool) -> Any:
        """Use the driver cursor ``raw`` (``unbuffered``: fetching reads the network)."""
        conn = self._conn
        self._raw = raw
        self._gen = conn._gen
        if self._arraysize is not None:
            raw.arraysize = self._arraysize
        if self._attributes:
            for name, value in self._attributes.items():
                setattr(raw, name, value)
        # Fetching from a buffered cursor reads a buffer, not the network: the driver's own
        # methods stand in for the class's checked ones (they hold no reference to self,
        # so an abandoned cursor is still freed at once, as the driver's would be).
        names = self.__dict__
        self._unbuffered = unbuffered
        if unbuffered:
            for name in FETCHES:
                names.pop(name, None)
        else:
            names["fetchone"] = raw.fetchone
            names["fetchmany"] = raw.fetchmany
            names["fetchall"] = raw.fetchall
        if conn._in_process and conn._telemetry is None:
            # An in-process database is never replaced and loses nothing: its statements
            # go straight to the driver, at the driver's cost, with the driver's errors
            # (unless traced: then through the tracing mixin's execute).
            names["execute"] = raw.execute
        return raw

    def _attribute_set(self, name: str, value: Any) -> None:
        setattr(self._raw, name, value)
        if self._attributes is None:
            self._attributes = {}
        self._attributes[name] = value

    def _check_open(self) -> None:
        if self._closed:
            adapter = self._conn._adapter
            raise new_error(
                adapter,
                adapter.closed_cursor_error or adapter.programming_error,
                0,
                "Cursor closed (resilient_dbapi: make a new one with cursor())",
            )

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

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<resilient_dbapi.{type(self).__name__} {type(self._raw).__name__} {state}>"
