"""Run a unit of work in a transaction, and again when the server rolled it back.

The asyncio source; ``transaction.py`` is generated from it by ``tools/async_to_sync.py``.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._unit_of_work import Failure, UnitOfWork
from .policies import RetryOnError

__all__ = ["run_transaction"]

T = TypeVar("T")
_monotonic = time.monotonic


async def run_transaction(
    conn: Any,
    fn: Callable[[Any], Awaitable[T]],
    *,
    retry: RetryOnError | None = None,
    already_applied: Callable[[Any], Any] | None = None,
) -> T:
    """Run ``fn(conn)`` inside a transaction and commit; return what ``fn`` returned.

    When the transaction is lost (``TransactionLostError``), rolled back by the server
    (deadlock 1213, PostgreSQL ``40P01``; serialization failure ``40001``) or a statement
    waited too long for a lock (1205: rolled back here first, since MySQL keeps the
    transaction open after it), it is rolled back and ``fn`` runs again, whole, with
    ``retry``'s backoff until its attempts or deadline run out (then the last error is
    raised). ``fn`` may run several times: it must not have effects outside the
    transaction.

    ``OutcomeUnknownError`` at ``COMMIT`` is raised as it is, unless ``already_applied``
    is given: it is called with the connection (on a new physical connection) and says
    whether the commit went through (return) or not (run again). Any other error rolls
    back and is raised as it is.
    """
    if not callable(fn):
        raise TypeError(f"run_transaction: fn must be callable with the connection, got {fn!r}")
    if already_applied is not None and not callable(already_applied):
        raise TypeError(
            f"run_transaction: already_applied must be callable with the connection, "
            f"got {already_applied!r}"
        )
    plan = UnitOfWork(retry or RetryOnError(), conn._adapter, conn._engine.errors)
    started = _monotonic()
    while True:
        await _begin(conn)
        committing = False
        try:
            result = await fn(conn)
            committing = True
            await conn.commit()
            return result
        except Exception as exc:
            failure = plan.classify(exc)
            if failure is Failure.UNKNOWN:
                if not committing or already_applied is None:
                    raise
                # The unknown outcome is acknowledged before the question (until then
                # the connection refuses everything).
                with contextlib.suppress(Exception):
                    await conn.rollback()
                if await _applied(conn, already_applied):
                    return result
            else:
                with contextlib.suppress(Exception):  # a lost transaction is acknowledged
                    await conn.rollback()
                if failure is Failure.OTHER:
                    raise
            wait = plan.again_after(_monotonic() - started)
            if wait is None:
                raise  # the policy's attempts or deadline are used up: the last error
        if True:  # ASYNC
            import asyncio

            await asyncio.sleep(wait)
        else:
            time.sleep(wait)


async def _begin(conn: Any) -> None:
    """Open a transaction: the driver's ``begin()`` (PyMySQL, aiomysql), else ``BEGIN``
    when the connection is in autocommit mode (psycopg, mysql-connector), else nothing:
    PEP 249 connections open one implicitly."""
    begin = getattr(conn, "begin", None)
    if begin is not None:
        await begin()
        return
    if getattr(conn, "autocommit", None) is True:
        if True:  # ASYNC
            async with conn.cursor() as cur:
                await cur.execute("BEGIN")
        else:
            cur = conn.cursor()
            try:
                cur.execute("BEGIN")
            finally:
                cur.close()


async def _applied(conn: Any, already_applied: Callable[[Any], Any]) -> bool:
    """The caller's answer: did the COMMIT of unknown outcome go through?"""
    answer = already_applied(conn)
    if inspect.isawaitable(answer):
        answer = await answer
    if isinstance(answer, bool):
        return answer
    raise TypeError(f"already_applied must return True or False, got {answer!r}")
