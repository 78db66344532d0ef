"""What every part of the fault matrix shares: the outcome labels, the limits and sizes of
the cases, the two proxies (modes), where the cases run, and the admin helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from resilient_dbapi.testing import MariaDBServer, kill_connection

__all__ = [
    "APP_PASSWORD",
    "APP_USER",
    "ASYNC",
    "LOST",
    "MODES",
    "OK",
    "PAST_SKIP_RECENT",
    "PAUSED_STREAM_ROWS",
    "RECOVERED",
    "STEP_TIMEOUT",
    "STREAM_ROWS",
    "SYNC",
    "TIMEOUT",
    "UNKNOWN",
    "Servers",
    "error",
    "gave_up",
    "kill",
    "open_admin",
    "timed_out",
    "tls_kwargs",
]

# -- outcomes -------------------------------------------------------------------------------

OK = "ok"
"""Succeeded on the same connection: the fault did not touch it."""
RECOVERED = "recovered"
"""Succeeded after the proxy replaced the connection or retried the connect."""
LOST = "TransactionLost"
UNKNOWN = "OutcomeUnknown"
TIMEOUT = "timeout"
"""asyncio only: the ``asyncio.timeout`` around the operation expired and the
cancellation propagated (TimeoutError); nothing was lost (a read)."""


def timed_out(lost: str) -> str:
    """asyncio only: the operation's timeout expired, and the cancellation cost ``lost``
    (``TransactionLost``: raised by the next statement until ``rollback()``;
    ``OutcomeUnknown``: an ``OutcomeUnknown`` event)."""
    return f"{TIMEOUT}, {lost}"


def error(code: int) -> str:
    """The driver's own error ``code``, unchanged; the connection works afterwards."""
    return f"error {code}"


def gave_up(code: int) -> str:
    """The driver's error ``code`` once the retry policy's deadline ran out."""
    return f"gave up {code}"


PAST_SKIP_RECENT = 0.6  # PingOnCheckout's default skip_recent is 0.5 s
STREAM_ROWS = 20_000  # of 1 kB: more than the loopback socket buffers hold
PAUSED_STREAM_ROWS = 2_000  # the in-flight stream pauses on the server at row 1000
APP_USER, APP_PASSWORD = "fm_app", "fm-app-pw"  # no SUPER: read_only applies to it
STEP_TIMEOUT = 30.0  # a step of a case still running after this is a hang

SYNC, ASYNC = "sync", "async"
MODES = (SYNC, ASYNC)
"""The proxies: ``sync`` (``resilient_dbapi.connect`` over PyMySQL) and ``async``
(``resilient_dbapi.aio.connect`` over aiomysql)."""


# -- servers --------------------------------------------------------------------------------


@dataclass
class Servers:
    """Where the cases run: ``shared`` takes the faults that touch one connection (any
    server with ``connect_kwargs()`` and ``admin()``); ``own`` those that restart, stop or
    reconfigure the server."""

    shared: Any
    own: MariaDBServer


def tls_kwargs(server: Any) -> dict[str, Any]:
    """No TLS to a server we started: PyMySQL builds a TLS context at every connect
    (about 40 ms of CPU), which would make the cases slow, not different."""
    return {"ssl_disabled": True} if isinstance(server, MariaDBServer) else {}


def open_admin(server: Any) -> Any:
    """An admin connection to ``server`` (autocommit on), without TLS to one we started."""
    return server.admin(**tls_kwargs(server))


def kill(admin: Any, thread_id: int, *, query: bool = False) -> None:
    """``KILL [QUERY]`` through ``admin``; for a connection, wait until it is gone."""
    if not query:
        kill_connection(admin, thread_id)
        return
    with admin.cursor() as cur:
        try:
            cur.execute(f"KILL QUERY {int(thread_id)}")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1094:  # unknown thread: gone already
                raise
