"""The hook a tracing integration plugs into (OpenTelemetry's: see
:mod:`resilient_dbapi.contrib.opentelemetry`), free of any tracing package.

A connection opened while an integration is installed gets proxy classes with the
mixins below in front (its own classes: see ``forwarding_class``), which open one
operation per logical call around the whole of it, resends and reconnects included. A
connection opened without one has none of this on its path: not even a check.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .events import Event

__all__ = ["Telemetry", "active", "install", "namespace", "pool_name", "uninstall"]


class Telemetry(Protocol):
    """What a tracing integration provides."""

    def operation(
        self, conn: Any, name: str, query: Any = None, batch: int | None = None
    ) -> AbstractContextManager[object]:
        """The span (or whatever records it) of one logical operation on ``conn``:
        ``name`` is ``execute``, ``executemany``, ``callproc``, ``commit`` or
        ``rollback``; ``query`` the caller's text (or procedure name)."""

    def listener(self, pool: str) -> Callable[[Event], object]:
        """The listener of the connections opened for ``pool`` (their events)."""

    def track(self, conn: Any, pool: str, namespace: str | None) -> None:
        """A connection opened for ``pool`` (on database ``namespace``), counted until it
        is closed or collected."""


_active: Telemetry | None = None


def install(telemetry: Telemetry) -> None:
    """Trace the connections opened from now on with ``telemetry``."""
    global _active
    _active = telemetry


def uninstall() -> None:
    """Open connections without tracing from now on (open ones keep theirs)."""
    global _active
    _active = None


def active() -> Telemetry | None:
    return _active


class TracedConnection:
    """In front of a connection proxy: ``begin``, ``commit`` and ``rollback`` as
    operations (``begin`` stays hidden where the driver has none)."""

    _telemetry: Telemetry

    def begin(self) -> None:
        with self._telemetry.operation(self, "begin"):
            super().begin()  # type: ignore[misc]

    def commit(self) -> None:
        with self._telemetry.operation(self, "commit"):
            super().commit()  # type: ignore[misc]

    def rollback(self) -> None:
        with self._telemetry.operation(self, "rollback"):
            super().rollback()  # type: ignore[misc]


class AsyncTracedConnection:
    """:class:`TracedConnection` for the asyncio proxy."""

    _telemetry: Telemetry

    async def begin(self) -> None:
        with self._telemetry.operation(self, "begin"):
            await super().begin()  # type: ignore[misc]

    async def commit(self) -> None:
        with self._telemetry.operation(self, "commit"):
            await super().commit()  # type: ignore[misc]

    async def rollback(self) -> None:
        with self._telemetry.operation(self, "rollback"):
            await super().rollback()  # type: ignore[misc]


def _size(args: Any) -> int | None:
    try:
        return len(args)
    except TypeError:  # an iterator: not counted (that would consume it)
        return None


class TracedCursor:
    """In front of a cursor proxy: each statement an operation."""

    _conn: Any

    _raw: Any

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        conn = self._conn
        with conn._telemetry.operation(conn, "execute", query):
            if conn._in_process:
                # Straight to the driver, as untraced (with its own signature).
                return self._raw.execute(query, *args, **kwargs)
            return super().execute(query, *args, **kwargs)  # type: ignore[misc]

    def executemany(self, query: Any, args: Any) -> Any:
        conn = self._conn
        with conn._telemetry.operation(conn, "executemany", query, _size(args)):
            return super().executemany(query, args)  # type: ignore[misc]

    def callproc(self, procname: str, args: Any = ()) -> Any:
        conn = self._conn
        with conn._telemetry.operation(conn, "callproc", procname):
            return super().callproc(procname, args)  # type: ignore[misc]


class AsyncTracedCursor:
    """:class:`TracedCursor` for the asyncio proxy."""

    _conn: Any

    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        conn = self._conn
        with conn._telemetry.operation(conn, "execute", query):
            return await super().execute(query, *args, **kwargs)  # type: ignore[misc]

    async def executemany(self, query: Any, args: Any) -> Any:
        conn = self._conn
        with conn._telemetry.operation(conn, "executemany", query, _size(args)):
            return await super().executemany(query, args)  # type: ignore[misc]

    async def callproc(self, procname: str, args: Any = ()) -> Any:
        conn = self._conn
        with conn._telemetry.operation(conn, "callproc", procname):
            return await super().callproc(procname, args)  # type: ignore[misc]


def pool_name(request: Any) -> str:
    """The name of the connections of one ``connect()`` or ``creator()``, as the
    database conventions ask of a pool without one: the driver, its hosts and database
    (``pymysql db1:3306,db2:3306/shop``); never another argument."""
    name: str = request.where
    memory = request.memory
    if memory is not None:
        driver = name.split(" ")[0]
        name = f"{driver} {','.join(str(host) for host in memory.failover.hosts)}"
    database = namespace(request)
    return f"{name}/{database}" if database else name


def namespace(request: Any) -> str | None:
    """The database the connections of ``request`` open on, if it says."""
    kwargs = request.kwargs
    database = kwargs.get("database") or kwargs.get("db") or kwargs.get("dbname")
    if isinstance(database, bytes):
        database = database.decode(errors="replace")
    return database if isinstance(database, str) and database else None
