"""A drop-in for the ``aiomysql`` module whose connections are resilient.

``from resilient_dbapi import aiomysql`` instead of ``import aiomysql``: ``connect()`` and
the connections of ``create_pool()`` are :class:`~resilient_dbapi.aio.AsyncResilientConnection`
objects with the default policies (or the profile named by the ``RESILIENT_DBAPI_POLICY``
environment variable); both also take ``policies=``, ``on_connect=`` and ``listeners=``.
Every other name is aiomysql's own. :class:`Pool` is a subclass of ``aiomysql.Pool``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

import aiomysql as _aiomysql
from aiomysql import (
    Connection,
    Cursor,
    DatabaseError,
    DataError,
    DictCursor,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MySQLError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    SSCursor,
    SSDictCursor,
    Warning,
    cursors,
    escape_dict,
    escape_sequence,
    escape_string,
)

from ._connection_async import AsyncResilientConnection
from ._connection_async import creator as _creator
from ._dropin import POLICY_ENV as POLICY_ENV  # the name callers set
from ._dropin import chosen_policies, driver_connect
from .events import Listener
from .policies import Policy

__all__ = [
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "DictCursor",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "MySQLError",
    "NotSupportedError",
    "OperationalError",
    "Pool",
    "ProgrammingError",
    "SSCursor",
    "SSDictCursor",
    "Warning",
    "connect",
    "create_pool",
    "cursors",
    "escape_dict",
    "escape_sequence",
    "escape_string",
]

__version__ = _aiomysql.__version__
T = TypeVar("T")
_driver_connect = _aiomysql.connect


class _Opening(Generic[T]):
    """Awaitable, or an async context manager that closes what it opened on exit (the
    shape of aiomysql's ``connect()`` and ``create_pool()``)."""

    __slots__ = ("_close", "_coro", "_obj")

    def __init__(self, coro: Awaitable[T], close: Callable[[T, bool], Awaitable[None]]) -> None:
        self._coro = coro
        self._close = close
        self._obj: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._coro.__await__()

    async def __aenter__(self) -> T:
        self._obj = await self._coro
        return self._obj

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        if self._obj is not None:
            await self._close(self._obj, exc_type is not None)
            self._obj = None


def _factory(
    policies: Sequence[Policy] | str | None,
    on_connect: Sequence[str] | None,
    listeners: Sequence[Listener] | None,
    kwargs: dict[str, Any],
) -> Callable[[], Awaitable[AsyncResilientConnection]]:
    return _creator(
        driver_connect(_aiomysql.connect, connect, _driver_connect),
        policies=chosen_policies(policies),
        on_connect=on_connect,
        listeners=listeners,
        **kwargs,
    )


async def _close_connection(conn: AsyncResilientConnection, failed: bool) -> None:
    if failed:
        conn.close()
    else:
        await conn.ensure_closed()


def connect(
    *,
    policies: Sequence[Policy] | str | None = None,
    on_connect: Sequence[str] | None = None,
    listeners: Sequence[Listener] | None = None,
    **kwargs: Any,
) -> _Opening[AsyncResilientConnection]:
    """``aiomysql.connect`` with resilient connections: ``await`` it or ``async with`` it."""
    return _Opening(_factory(policies, on_connect, listeners, kwargs)(), _close_connection)


class Pool(_aiomysql.Pool):  # type: ignore[misc]  # aiomysql has no type hints
    """aiomysql's pool with resilient connections.

    Unlike aiomysql's own, it does not drop free connections whose socket has closed:
    a resilient connection checks itself before its next statement and replaces its
    physical connection when that is safe. ``pool_recycle`` still closes connections
    idle for longer than that many seconds.
    """

    def __init__(
        self,
        minsize: int,
        maxsize: int,
        echo: bool,
        pool_recycle: int,
        loop: asyncio.AbstractEventLoop,
        *,
        policies: Sequence[Policy] | str | None = None,
        on_connect: Sequence[str] | None = None,
        listeners: Sequence[Listener] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(minsize, maxsize, echo, pool_recycle, loop, **kwargs)
        self._open = _factory(policies, on_connect, listeners, {"echo": echo, **kwargs})

    async def _fill_free_pool(self, override_min: bool) -> None:
        # Called by aiomysql's acquire() with the pool's condition held.
        for conn in list(self._free):
            idle = self._loop.time() - conn.last_usage
            if conn.closed or -1 < self._recycle < idle:
                self._free.remove(conn)
                conn.close()
        while self.size < self.minsize:
            await self._add()
        if self._free:
            return
        if override_min and (not self.maxsize or self.size < self.maxsize):
            await self._add()

    async def _add(self) -> None:
        # Connect without the pool's lock: a connect retried with backoff must not keep
        # the connections other tasks release from the tasks waiting for them.
        self._acquiring += 1
        self._cond.release()
        try:
            conn = await self._open()
        finally:
            await _take_back(self._cond)
            self._acquiring -= 1
        self._free.append(conn)
        self._cond.notify()


async def _take_back(cond: asyncio.Condition) -> None:
    """Acquire ``cond`` again even if cancelled meanwhile (the caller's ``async with``
    releases it), then let the cancellation go on."""
    cancelled: BaseException | None = None
    while True:
        try:
            await cond.acquire()
            break
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


async def _create_pool(
    minsize: int, maxsize: int, echo: bool, pool_recycle: int, **kwargs: Any
) -> Pool:
    pool = Pool(minsize, maxsize, echo, pool_recycle, asyncio.get_running_loop(), **kwargs)
    if minsize > 0:
        async with pool._cond:
            await pool._fill_free_pool(False)
    return pool


async def _close_pool(pool: Pool, failed: bool) -> None:
    pool.close()
    await pool.wait_closed()


def create_pool(
    minsize: int = 1,
    maxsize: int = 10,
    echo: bool = False,
    pool_recycle: int = -1,
    loop: object = None,
    **kwargs: Any,
) -> _Opening[Pool]:
    """``aiomysql.create_pool`` whose connections are resilient (``loop`` is ignored:
    the running loop is used)."""
    return _Opening(_create_pool(minsize, maxsize, echo, pool_recycle, **kwargs), _close_pool)
