"""The aiomysql adapter (asyncio): PyMySQL's errors and flags, asyncio's transport."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import aiomysql
import pymysql.err

from ..hosts import Role
from ._mysql import (
    COMPLETION_TYPE,
    INSERT_ID_QUESTION,
    READY_QUESTION,
    ROLE_QUESTION,
    TABLE_QUESTION,
    UNREADY_ANSWERS,
    MySQLProtocol,
    answer_code,
    chains,
    clustered,
    kept_digest,
    record_kept,
    result_digest,
    result_kept,
    role_of,
    rolls_back_whole,
    settings,
    socket_probe,
    table_args,
)
from .base import Liveness

__all__ = ["AiomysqlAdapter"]

_CR_SERVER_LOST = 2013


def _dead() -> Liveness:
    return Liveness.DEAD


class AiomysqlAdapter(MySQLProtocol):
    name = "aiomysql"
    rows_module = "aiomysql.connection"
    ping_reopens = True

    def probe_arguments(self, timeout: float) -> dict[str, Any] | None:
        # The greeting is bounded by the probe's own deadline; a login is the question.
        arguments = super().probe_arguments(timeout) or {}
        return {**arguments, "init_command": None, "sql_mode": None}

    def owns(self, raw: object) -> bool:
        return isinstance(raw, aiomysql.Connection)

    def uses_tls(self, raw: Any) -> bool:
        writer = raw._writer
        return writer is not None and writer.get_extra_info("ssl_object") is not None

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        reader, writer = raw._reader, raw._writer
        if reader is None or writer is None:
            return _dead
        transport = writer.transport
        sock = transport.get_extra_info("socket")

        gone = self.known_dead(raw)
        assert gone is not None

        def current() -> bool:
            return not gone()

        if sock is None:
            return lambda: Liveness.DEAD if gone() else Liveness.ALIVE
        tls = transport.get_extra_info("sslcontext") is not None
        # Bytes still in the kernel (what the event loop has not read yet) need a poll.
        return socket_probe(sock, tls, current)

    def driver_socket(self, raw: Any) -> Any:
        writer = raw._writer
        return None if writer is None else writer.transport.get_extra_info("socket")

    def socket_fd(self, raw: Any) -> int | None:
        writer = raw._writer
        sock = None if writer is None else writer.transport.get_extra_info("socket")
        fd = -1 if sock is None else sock.fileno()
        return fd if fd >= 0 else None

    def known_dead(self, raw: Any) -> Callable[[], bool]:
        # The event loop reads for the connection all the time: what it has learned (end
        # of stream, a reset, bytes nobody asked for, such as MySQL 8's goodbye packet)
        # is in the reader, free to look at. An unbuffered result mid-stream has bytes
        # in the reader that are rows, not news: not dead.
        reader, writer = raw._reader, raw._writer
        if reader is None or writer is None:
            return lambda: True
        transport = writer.transport

        # Run before every statement: the reader's fields, not its methods (its
        # exception(), at_eof() and aiomysql's eof_received read the same fields).
        def gone() -> bool:
            if raw._reader is not reader or reader._exception is not None:
                return True
            if transport.is_closing():
                return True
            if reader._buffer or reader._eof:
                return not self.busy(raw)
            return False

        return gone

    async def ping(self, raw: Any, timeout: float) -> None:
        if raw._writer is None:
            raise pymysql.err.InterfaceError(0, "")
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a
            # cancellation that arrives as the ping completes.
            async with asyncio.timeout(timeout):
                await raw.ping(False)  # never let the driver reconnect on its own
        except TimeoutError:
            self.discard(raw)  # the reply may still come: the connection cannot be reused
            raise pymysql.err.OperationalError(
                _CR_SERVER_LOST,
                f"Lost connection to MySQL server: no reply to a ping in {timeout} s",
            ) from None

    async def drain(self, raw: Any) -> None:
        while self.pending(raw):
            await raw.next_result()

    def discard(self, raw: Any) -> None:
        result = raw._result
        if result is not None:
            result.unbuffered_active = False
        with contextlib.suppress(Exception):  # closing a broken transport: gone anyway
            raw.close()

    def error_code(self, exc: BaseException) -> int | None:
        code = super().error_code(exc)
        if code is None and isinstance(exc, pymysql.err.InterfaceError):
            # aiomysql says "not connected" (or "Cancelled during execution") with a
            # message only, before sending anything.
            return 0
        return code

    def never_sent(self, exc: BaseException) -> bool:
        # aiomysql checks for a connection before it writes a command; a write to a dead
        # transport fails silently, so only the "not connected" error proves anything.
        return isinstance(exc, pymysql.err.InterfaceError) and self.error_code(exc) == 0

    def unbuffered(self, cursor: Any) -> bool:
        return isinstance(cursor, aiomysql.SSCursor)

    # Raised by its cursors' _show_warnings only, after the statement's result was read.
    warned_after = (pymysql.err.Warning,)
    replays = True
    replay_cursor = ((aiomysql.Cursor,), {})
    result_digest = staticmethod(result_digest)  # one frame less per statement
    result_kept = staticmethod(result_kept)
    kept_digest = staticmethod(kept_digest)

    def watch_writes(self, raw: Any) -> None:
        read = type(raw)._read_query_result
        ref = weakref.ref(raw)  # no cycle: a dropped connection is freed at once

        async def read_query_result(unbuffered: bool = False) -> None:
            conn = ref()
            await read(conn, unbuffered)
            record_kept(conn)

        raw._read_query_result = read_query_result

    async def _row(self, raw: Any, query: str, args: Any = None) -> Any:
        cursor = await raw.cursor(aiomysql.Cursor)
        try:
            await cursor.execute(query, args)
            return await cursor.fetchone()
        finally:
            await cursor.close()

    async def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        row = await self._row(raw, TABLE_QUESTION, table_args(database, name))
        return rolls_back_whole(row)

    async def last_insert_id(self, raw: Any) -> int | None:
        kept = raw._result, raw._affected_rows  # the caller's, as for PyMySQL
        try:
            return int((await self._row(raw, INSERT_ID_QUESTION))[0])
        finally:
            raw._result, raw._affected_rows = kept

    async def wait_timeout(self, raw: Any) -> float | None:
        row = await self._row(raw, "SELECT @@SESSION.wait_timeout")
        return float(row[0]) if row and row[0] else None

    async def completion_chains(self, raw: Any) -> bool:
        return chains((await self._row(raw, COMPLETION_TYPE))[0])

    async def _rows(self, raw: Any, query: str) -> Any:
        cursor = await raw.cursor(aiomysql.Cursor)
        try:
            await cursor.execute(query)
            return await cursor.fetchall()
        finally:
            await cursor.close()

    async def role(self, raw: Any) -> Role:
        try:
            variables = settings(await self._rows(raw, ROLE_QUESTION))
            galera = clustered(variables)
            status = settings(await self._rows(raw, READY_QUESTION)) if galera else None
        except Exception as exc:
            if answer_code(exc) in UNREADY_ANSWERS:
                return Role.NOT_READY
            raise
        return role_of(variables, status)

    async def execute(self, raw: Any, query: str, args: Any) -> None:
        if args is None:  # the proxy's set-up and replay: no cursor to make and read
            await raw.query(query)
            await self.drain(raw)  # several statements in one text, as a cursor's close()
            return
        cursor = await raw.cursor(aiomysql.Cursor)
        try:
            await cursor.execute(query, args)
        finally:
            await cursor.close()

    async def set_autocommit(self, raw: Any, value: bool) -> None:
        await raw.autocommit(value)

    async def select_db(self, raw: Any, db: str) -> None:
        await raw.select_db(db)
