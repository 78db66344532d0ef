"""The asyncio half of the fault matrix: the same faults and operations, through
``resilient_dbapi.aio.connect(aiomysql.connect, ...)``.

An :class:`AsyncTrial` is a :class:`~.trials.Trial` whose steps run as coroutines on the
row's event loop (:class:`LoopThread`): every asyncio case of a fault shares that loop,
side by side with the fault's sync cases. The fault's own hooks are synchronous (kills,
sleeps, a blackhole, a server restart); they run in worker threads, so the loop keeps
reading its sockets meanwhile, as it does in a service: what the README calls "what the
event loop already knows". aiomysql has no read timeout: where the sync cases give
PyMySQL ``read_timeout``, the asyncio ones put the operation under ``asyncio.timeout``
(:attr:`~.faults.Fault.async_timeout`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any

import aiomysql

from resilient_dbapi import TransactionLostError, aio, events

from .common import (
    APP_PASSWORD,
    APP_USER,
    ASYNC,
    LOST,
    OK,
    PAUSED_STREAM_ROWS,
    RECOVERED,
    STEP_TIMEOUT,
    STREAM_ROWS,
    TIMEOUT,
    UNKNOWN,
    open_admin,
    timed_out,
)
from .trials import Fault, Operation, Trial

__all__ = ["ASYNC_STEPS", "AsyncTrial", "LoopThread"]

# PyMySQL's arguments aiomysql does not take (it has neither read timeouts nor TLS unless
# asked for with ssl=).
_SYNC_ONLY = frozenset({"read_timeout", "write_timeout", "ssl_disabled"})


class LoopThread:
    """An event loop running in a thread of its own, for one row of the matrix.

    Its default executor has a thread for every case's blocking step: the default
    (``min(32, cpus + 4)`` threads) would queue the cases' sleeps and kills behind each
    other on a small machine, and a fault struck late proves nothing."""

    def __init__(self, workers: int = 64) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="matrix-async"
        )
        self.loop.set_default_executor(self.executor)
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="matrix-loop", daemon=True
        )

    def __enter__(self) -> asyncio.AbstractEventLoop:
        self.thread.start()
        return self.loop

    def __exit__(self, *exc_info: object) -> None:
        async def wind_down() -> None:
            current = asyncio.current_task()
            rest = [task for task in asyncio.all_tasks() if task is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await asyncio.get_running_loop().shutdown_asyncgens()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(wind_down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if not self.thread.is_alive():
            self.loop.close()


# -- operations (the asyncio twins of .operations') ------------------------------------------


async def _nothing(trial: AsyncTrial, slow: float) -> None:
    """No set-up."""


async def _read(trial: AsyncTrial, slow: float) -> None:
    cur = await trial.conn.cursor()
    if slow:
        await cur.execute("SELECT SLEEP(%s), COUNT(*) FROM t WHERE uid = 'seed'", (slow,))
        value = (await cur.fetchone())[1]
    else:
        await cur.execute("SELECT COUNT(*) FROM t WHERE uid = 'seed'")
        value = (await cur.fetchone())[0]
    await cur.close()
    trial.expect("the seed rows read", value, 1)


async def _insert(trial: AsyncTrial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = await trial.conn.cursor()
    if slow:
        await cur.execute("INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)", (uid, slow))
    else:
        await cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
    await cur.close()


async def _write_first(trial: AsyncTrial, slow: float) -> None:
    """A write acknowledged inside the open transaction, not committed yet."""
    uid = trial.new_uid()
    cur = await trial.conn.cursor()
    await cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
    await cur.close()
    trial.pending.add(uid)


async def _insert_keyed(trial: AsyncTrial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = await trial.conn.cursor()
    if slow:
        sql = "INSERT INTO t (id, uid, v) SELECT %s, %s, SLEEP(%s)"
        await cur.execute(sql, (trial.new_key(), uid, slow))
    else:
        await cur.execute("INSERT INTO t (id, uid) VALUES (%s, %s)", (trial.new_key(), uid))
    await cur.close()


async def _write_first_keyed(trial: AsyncTrial, slow: float) -> None:
    uid = trial.new_uid()
    cur = await trial.conn.cursor()
    await cur.execute("INSERT INTO t (id, uid) VALUES (%s, %s)", (trial.new_key(), uid))
    await cur.close()
    trial.pending.add(uid)


async def _commit(trial: AsyncTrial, slow: float) -> None:
    if slow:  # FLUSH TABLES WITH READ LOCK holds the COMMIT
        await asyncio.to_thread(trial.block_commits, slow)
    await trial.conn.commit()


async def _executemany(trial: AsyncTrial, slow: float) -> None:
    uids = [trial.new_uid(), trial.new_uid()]
    trial.attempted.update(uids)
    cur = await trial.conn.cursor()
    # Not a VALUES list: aiomysql sends the rows one by one, as PyMySQL does.
    await cur.executemany(
        "INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)", [(uids[0], 0), (uids[1], slow)]
    )
    await cur.close()


async def _open_stream(trial: AsyncTrial, slow: float) -> None:
    """An unbuffered result half read (``aiomysql.SSCursor``): executed, its first row
    fetched."""
    cur = await trial.conn.cursor(aiomysql.SSCursor)
    if slow:
        trial.stream_rows = PAUSED_STREAM_ROWS
        await cur.execute(
            "SELECT seq, REPEAT('x', 1000), IF(seq = 1000, SLEEP(%s), 0) "
            f"FROM seq_1_to_{PAUSED_STREAM_ROWS}",
            (slow,),
        )
    else:
        trial.stream_rows = STREAM_ROWS
        await cur.execute(f"SELECT seq, REPEAT('x', 1000) FROM seq_1_to_{STREAM_ROWS}")
    trial.stream = cur
    trial.expect("the first streamed row", (await cur.fetchone())[0], 1)


async def _fetch_stream(trial: AsyncTrial, slow: float) -> None:
    rows = await trial.stream.fetchall()
    trial.expect("the rest of the stream", len(rows), trial.stream_rows - 1)


async def _callproc(trial: AsyncTrial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = await trial.conn.cursor()
    await cur.callproc("p", (uid, slow))
    await cur.close()


AsyncStep = Callable[["AsyncTrial", float], Awaitable[None]]

ASYNC_STEPS: Mapping[str, tuple[AsyncStep, AsyncStep]] = MappingProxyType(
    {
        "autocommit_read": (_nothing, _read),
        "autocommit_write": (_nothing, _insert),
        "txn_first": (_nothing, _insert),
        "mid_txn": (_write_first, _insert),
        "mid_txn_replay": (_write_first_keyed, _insert_keyed),
        "commit": (_write_first, _commit),
        "executemany": (_nothing, _executemany),
        "sscursor_fetch": (_open_stream, _fetch_stream),
        "callproc": (_nothing, _callproc),
    }
)
"""Each operation's (set-up, run), by :class:`~.operations.Operation` name."""


# -- one case -------------------------------------------------------------------------------


class AsyncTrial(Trial):
    """One case through the asyncio proxy over aiomysql. Its steps (``open``,
    ``perform``, ``check``, ``close``) are called from a thread each, as the sync
    trial's are, and run as coroutines on ``loop``; ``create`` is the sync trial's."""

    mode = ASYNC

    def __init__(
        self, fault: Fault, op: Operation, server: Any, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(fault, op, server)
        self.loop = loop
        self.step: concurrent.futures.Future[None] | None = None
        self.timed_out = False

    def _call(self, step: Coroutine[Any, Any, None]) -> None:
        """Run ``step`` on the row's event loop and wait for it."""
        self.step = asyncio.run_coroutine_threadsafe(step, self.loop)
        self.step.result()

    # -- steps, called by .trials.each -----------------------------------------------------

    def open(self) -> None:
        self._call(self._open())

    def perform(self) -> None:
        self._call(self._perform())

    def check(self) -> None:
        self._call(self._check())

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                self._call(self._close(conn))
        super().close()

    def unstick(self) -> None:
        super().unstick()
        if self.step is not None:
            self.step.cancel()

    # -- the coroutines ------------------------------------------------------------------

    async def _open(self) -> None:
        fault = self.fault
        if fault.needs_admin:
            self.admin = await asyncio.to_thread(open_admin, self.server)
        client = {k: v for k, v in fault.client_kwargs.items() if k not in _SYNC_ONLY}
        kwargs = self.server.connect_kwargs(db=self.database, **client)
        if fault.app_user:
            kwargs.update(user=APP_USER, password=APP_PASSWORD)
        self.proxy = fault.make_proxy(kwargs["port"], kwargs["host"])
        if self.proxy is not None:
            kwargs.update(host="127.0.0.1", port=self.proxy.port)
        self.conn = await aio.connect(
            aiomysql.connect,
            **kwargs,
            autocommit=self.op.autocommit,
            policies=self.op.policies(fault),
            listeners=[self.events.append],
        )
        for sql in fault.session_sql:
            cur = await self.conn.cursor()
            await cur.execute(sql)
            await cur.close()
        setup, _ = ASYNC_STEPS[self.op.name]
        await setup(self, fault.slow)
        self.last_used = time.monotonic()
        if not fault.at_connect:
            self.baseline = self._replaced()
            self.events_from = len(self.events)

    async def _perform(self) -> None:
        """The fault (this connection's part of it, from a worker thread), the operation
        under the fault's ``async_timeout``, what it gave."""
        fault = self.fault
        await asyncio.to_thread(fault.inject, self)
        if fault.async_until_eof and self.stream is None:
            # (A stream half read fills the reader: the loop stops reading its socket.)
            await self._until_eof()
        window = fault.within_skip_recent
        if window and time.monotonic() - self.last_used >= window:
            self.problems.append("the operation came after skip_recent: the case proved nothing")
        self.thread_id = self.conn.thread_id()
        striker = None
        if fault.in_flight:
            striker = threading.Thread(target=self._strike_later, daemon=True)
            striker.start()
        _, run = ASYNC_STEPS[self.op.name]
        started = time.monotonic()
        failure: Exception | None = None
        limit = asyncio.timeout(fault.async_timeout)
        try:
            async with limit:
                await run(self, fault.slow)
        except Exception as exc:
            failure = exc
        ended = time.monotonic()
        self.seconds = ended - started
        self.timed_out = limit.expired()
        for thread in (striker, self.blocker):
            if thread is not None:
                await asyncio.to_thread(thread.join, STEP_TIMEOUT)
        if fault.in_flight and (self.struck_at is None or self.struck_at > ended):
            self.problems.append("the fault did not come while the operation was in flight")
        self._observe(failure)
        if self._book(failure):
            try:
                await self.conn.commit()
            except Exception as exc:
                self._committed(exc)
            else:
                self._committed(None)

    async def _until_eof(self, limit: float = 2.0) -> None:
        """Wait until the event loop has read the end of the connection's stream."""
        reader = self.conn.raw._reader  # aiomysql's asyncio.StreamReader
        deadline = time.monotonic() + limit
        while reader is not None and not reader.at_eof() and reader.exception() is None:
            if time.monotonic() > deadline:
                self.problems.append(f"the event loop saw no end of stream in {limit:g} s")
                return
            await asyncio.sleep(0.001)

    def _observe(self, failure: Exception | None) -> None:
        if not (self.timed_out and isinstance(failure, TimeoutError)):
            super()._observe(failure)
            return
        # The cancellation propagated: what it cost is in the events (README, asyncio).
        later = self.events[self.events_from :]
        losses = [
            (LOST if isinstance(e, events.TransactionLost) else UNKNOWN, e.code)
            for e in later
            if isinstance(e, events.TransactionLost | events.OutcomeUnknown)
        ]
        lost = [name for name, _ in losses]
        self.outcome = timed_out(LOST if LOST in lost else lost[0]) if lost else TIMEOUT
        self.detail = f"TimeoutError after {self.seconds:.2f} s" + "".join(
            f", {name} event ({code})" for name, code in losses
        )
        limit = self.fault.time_limit(self.outcome)
        if limit is not None and self.seconds > limit:
            self.problems.append(f"took {self.seconds:.2f} s, more than {limit:.2f} s")

    async def _check(self) -> None:
        """Roll back after an error, show the connection still works, check the table."""
        conn = self.conn
        if self.stream is not None:
            try:
                await self.stream.close()
            except Exception as exc:
                self.problems.append(f"closing the SSCursor failed: {exc!r}")

        async def statement() -> None:
            cur = await conn.cursor()
            await cur.execute("SELECT 1")

        if self._stays_lost():  # every statement raises it again until rollback()
            for again in (statement, conn.commit):
                try:
                    await again()
                    self.problems.append(f"after {self.outcome}, a statement went through")
                except TransactionLostError as exc:
                    self.check_driver_error(exc, again=True)
                except Exception as exc:
                    self.problems.append(f"after {self.outcome}: {exc!r}")
        if self.outcome not in (OK, RECOVERED):
            try:
                await conn.rollback()
            except Exception as exc:
                self.problems.append(f"rollback() after the error failed: {exc!r}")
        try:
            cur = await conn.cursor()
            await cur.execute("SELECT 1")
            self.expect("SELECT 1 afterwards", await cur.fetchone(), (1,))
            await cur.close()
        except Exception as exc:
            self.problems.append(f"the connection is not usable afterwards: {exc!r}")
        await asyncio.to_thread(self.check_table)

    @staticmethod
    async def _close(conn: Any) -> None:
        conn.close()  # on the loop's thread: it closes the transport
        await asyncio.sleep(0)  # let the transport finish closing
