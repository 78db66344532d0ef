"""The resilient cursor.

``_cursor_async.py`` (asyncio) is the source of ``cursor.py`` (sync), which
``tools/async_to_sync.py`` generates from it; a test checks that it is current. Code
under ``if True:  # ASYNC`` is the asyncio version, its ``else:`` branch the sync one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._forwarding import forwarding_class
from ._proxy import new_error
from .engine import Op
from .statements import READ_OP, STATEMENTS, WRITE_OP, remember, statement

if TYPE_CHECKING:
    from ._connection_async import AsyncResilientConnection

if True:  # ASYNC
    from collections.abc import AsyncIterator
else:
    from collections.abc import Iterator

__all__ = ["AsyncResilientCursor"]

_FETCHES = ("fetchone", "fetchmany", "fetchall")
_CALLPROC_STATE = frozenset({"user variables (callproc arguments)"})
# Set by a driver cursor only once it has executed something. Tortoise-ORM reads
# ``_result`` (for the column names) from aiomysql's cursors.
_LATE_ATTRIBUTES = ("description", "rowcount", "lastrowid", "rownumber", "messages", "_result")


class AsyncResilientCursor:
    """A DB-API 2.0 cursor on a resilient connection.

    A cursor made before the connection was replaced moves to the new connection at its
    next ``execute``. Other attributes of the driver's cursor pass through.
    """

    _raw: Any
    # PEP 249's optional methods, and PyMySQL's: hidden where the driver has none.
    _driver_methods = ("callproc", "nextset", "scroll", "fetchall_unbuffered", "read_next")

    @classmethod
    async def create(
        cls, conn: AsyncResilientConnection, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncResilientCursor:
        """A cursor made by the driver's ``cursor(*args, **kwargs)``, and made again the
        same way on every new physical connection."""
        raw = await conn._raw.cursor(*args, **kwargs)
        mixins = getattr(conn._adapter, "cursor_surface", ())
        made = forwarding_class(cls, raw, _LATE_ATTRIBUTES, mixins)
        return made(conn, args, kwargs, raw)

    def __init__(
        self,
        conn: AsyncResilientConnection,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        raw: Any,
    ) -> None:
        self._conn = conn
        self._cursor_args = args
        self._cursor_kwargs = kwargs
        self._arraysize: int | None = None
        self._attributes: dict[str, Any] | None = None  # driver attributes set through us
        self._closed = False
        self._bind(raw)

    def _bind(self, raw: Any) -> Any:
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
        names = vars(self)
        if conn._adapter.unbuffered(raw):
            for name in _FETCHES:
                names.pop(name, None)
        else:
            for name in _FETCHES:
                names[name] = getattr(raw, name)
        if getattr(conn._adapter, "in_process", False):
            # An in-process database is never replaced and loses nothing: its statements
            # go straight to the driver, at the driver's cost, with the driver's errors.
            names["execute"] = raw.execute
        return raw

    def _attribute_set(self, name: str, value: Any) -> None:
        setattr(self._raw, name, value)
        if self._attributes is None:
            self._attributes = {}
        self._attributes[name] = value

    async def _current(self) -> Any:
        """The driver cursor on the connection's current physical connection."""
        if self._gen == self._conn._gen:
            return self._raw
        return self._bind(await self._conn._raw.cursor(*self._cursor_args, **self._cursor_kwargs))

    def _check_open(self) -> None:
        if self._closed:
            adapter = self._conn._adapter
            raise new_error(
                adapter,
                adapter.interface_error,
                0,
                "resilient_dbapi: this cursor was closed; make a new one with cursor()",
            )

    # -- PEP 249 ------------------------------------------------------------------

    @property
    def connection(self) -> AsyncResilientConnection:
        return self._conn

    async def execute(self, query: Any, args: Any = None) -> Any:
        if self._closed:
            self._check_open()
        try:
            stmt = STATEMENTS.get(query)
        except TypeError:  # not hashable (psycopg's sql.Composed): never cached
            stmt = None
        if stmt is None:
            stmt = remember(query)
        return await self._conn._execute(self, stmt, query, args)

    async def executemany(self, query: Any, args: Any) -> Any:
        self._check_open()
        conn = self._conn
        stmt = statement(query)
        conn._enter("executemany")
        try:
            result = await conn._run(Op.EXECUTEMANY, stmt, _send_executemany, self, query, args)
            await conn._note(stmt, query, args)
            return result
        finally:
            conn._leave()

    async def callproc(self, procname: str, args: Any = ()) -> Any:
        self._check_open()
        conn = self._conn
        conn._enter("callproc")
        try:
            result = await conn._run(Op.CALLPROC, WRITE_OP, _send_callproc, self, procname, args)
            # The driver passes the arguments through user variables (@_proc_0, ...).
            conn._engine.state_made(_CALLPROC_STATE)
            return result
        finally:
            conn._leave()

    async def _reading(self, read: Callable[..., Any], *args: Any) -> Any:
        """A read of results that may touch the network (unbuffered rows, next result)."""
        self._check_open()
        conn = self._conn
        conn._enter("fetch")
        try:
            return await read(*args)
        except Exception as exc:
            if self._gen != conn._gen:
                raise  # a result of a connection replaced since: nothing else is affected
            conn._failed(exc, Op.FETCH, READ_OP, resends=0)
            raise  # _failed returns only to resend, which a fetch never is
        except BaseException:
            if self._gen == conn._gen:
                conn._interrupted(Op.FETCH, READ_OP)
            raise
        finally:
            conn._leave()

    async def fetchone(self) -> Any:
        return await self._reading(self._raw.fetchone)

    async def fetchmany(self, size: int | None = None) -> Any:
        if size is None:
            return await self._reading(self._raw.fetchmany)
        return await self._reading(self._raw.fetchmany, size)

    async def fetchall(self) -> Any:
        return await self._reading(self._raw.fetchall)

    async def nextset(self) -> Any:
        return await self._reading(self._raw.nextset)

    async def scroll(self, value: int, mode: str = "relative") -> Any:
        return await self._reading(self._raw.scroll, value, mode)

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

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._gen != self._conn._gen:
            return  # its physical connection is gone already
        conn = self._conn
        conn._enter("cursor close")
        try:
            await self._raw.close()  # an unbuffered cursor reads its remaining rows here
        except Exception as exc:
            code = conn._adapter.error_code(exc)
            if code is None or not conn._engine.is_dead(code):
                raise
            # The connection died while the cursor drained rows nobody wanted. _failed
            # records it: the connection is replaced at the next checkout, and a lost
            # transaction is reported by the next statement on the connection.
            with contextlib.suppress(Exception):
                conn._failed(exc, Op.FETCH, READ_OP, resends=0)
        except BaseException:
            conn._interrupted(Op.FETCH, READ_OP)
            raise
        finally:
            conn._leave()

    if True:  # ASYNC

        def __aiter__(self) -> AsyncIterator[Any]:
            return self

        async def __anext__(self) -> Any:
            row = await self.fetchone()
            if row is None:
                raise StopAsyncIteration
            return row

    else:

        def fetchall_unbuffered(self) -> Iterator[Any]:
            """PyMySQL's lazy row iterator, each row read under the rules of ``fetchone``."""
            return iter(self.fetchone, None)

        def read_next(self) -> Any:
            return self._reading(self._raw.read_next)

        def __iter__(self) -> Iterator[Any]:
            return iter(self.fetchone, None)

    async def __aenter__(self) -> AsyncResilientCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<resilient_dbapi.{type(self).__name__} {type(self._raw).__name__} {state}>"


async def _send_executemany(
    conn: AsyncResilientConnection, cursor: AsyncResilientCursor, query: Any, args: Any
) -> Any:
    return await (await cursor._current()).executemany(query, args)


async def _send_callproc(
    conn: AsyncResilientConnection, cursor: AsyncResilientCursor, name: str, args: Any
) -> Any:
    return await (await cursor._current()).callproc(name, args)
