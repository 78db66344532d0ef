"""The blackhole scenarios of ``tests/test_blackhole.py``, run in a child process inside
network and PID namespaces of their own (``unshare``); never collected by pytest.

It brings the namespace's loopback up, starts a throwaway MariaDB there, opens one
connection per scenario and uses it once, then makes every scenario's connection a
blackhole at the same moment: an nftables rule drops the packets of those connections
(their client ports) both ways, silently, as a dead host or a firewall that forgot the
flow does. Each scenario then sends one statement and records what it got and when,
counted from the blackhole. Meanwhile a healthy connection runs a 20-second query. The
report is one JSON line on stdout. Every wait is bounded, and the namespaces (the rule,
the server) die with the process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi import OutcomeUnknownError, aio
from resilient_dbapi.testing import MariaDBServer

WATCHED_FOR = 22.0
"""Seconds a blackholed statement is watched before it counts as hanging: more than twice
the default bound (10 s)."""
LONG_QUERY = "SELECT SLEEP(20)"
_PORT = (
    "SELECT SUBSTRING_INDEX(HOST, ':', -1) FROM information_schema.PROCESSLIST "
    "WHERE ID = CONNECTION_ID()"
)


def tool_path(name: str) -> str | None:
    """A system tool (``ip``, ``nft`` and ``unshare``), in /usr/sbin even if PATH lacks it."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


class Scenario:
    """One connection: opened and used once (its client port read), then one statement
    after the blackhole, its outcome recorded."""

    def __init__(self, name: str, run: Callable[[Scenario], None]) -> None:
        self.name = name
        self.port: int | None = None
        self.ready = threading.Event()
        self.report: dict[str, Any] = {"outcome": "hanging"}
        self.thread = threading.Thread(target=self._main, args=(run,), daemon=True)

    def _main(self, run: Callable[[Scenario], None]) -> None:
        try:
            run(self)
        except BaseException as exc:  # reported to the parent
            self.report = {"outcome": "setup failed", "error": repr(exc)}
            self.ready.set()

    def opened(self, port: Any) -> None:
        self.port = int(port)
        self.ready.set()

    def outcome(
        self, started: float, result: Any = None, error: BaseException | None = None, **extra: Any
    ) -> None:
        report: dict[str, Any] = {"seconds": time.monotonic() - started, **extra}
        if error is None:
            report.update(outcome="ok", result=result)
        else:
            report.update(
                outcome="error",
                error=type(error).__name__,
                message=str(error),
                code=error.args[0] if error.args else None,
                driver_operational=isinstance(error, DRIVER_ERRORS),
                outcome_unknown=isinstance(error, OutcomeUnknownError),
            )
        self.report = report


BLACKHOLE = threading.Event()
STARTED: list[float] = []
DRIVER_ERRORS: tuple[type[BaseException], ...] = (pymysql.err.OperationalError,)


def _blackholed() -> float:
    BLACKHOLE.wait(60)
    return STARTED[0]


def _sync(connect: Callable[[], Any], sql: str, *, rows: bool) -> Callable[[Scenario], None]:
    """A scenario on a sync connection: ``sql`` sent after the blackhole."""

    def run(scenario: Scenario) -> None:
        conn = connect()
        cur = conn.cursor()
        cur.execute(_PORT)
        scenario.opened(cur.fetchone()[0])
        started = _blackholed()
        try:
            cur.execute(sql)
            result = [list(row) for row in cur.fetchall()] if rows else None
        except Exception as exc:
            scenario.outcome(started, error=exc)
        else:
            stats = getattr(conn, "stats", None)
            scenario.outcome(started, result, reconnects=stats.reconnects if stats else None)

    return run


def _aiomysql(kwargs: dict[str, Any], sql: str) -> Callable[[Scenario], None]:
    import aiomysql

    async def story(scenario: Scenario) -> None:
        arguments = {k: v for k, v in kwargs.items() if k != "database"}
        conn = await aio.connect(aiomysql.connect, **arguments, db=kwargs["database"])
        async with conn.cursor() as cur:
            await cur.execute(_PORT)
            scenario.opened((await cur.fetchone())[0])
            started = await asyncio.to_thread(_blackholed)
            try:
                await cur.execute(sql)
            except Exception as exc:
                scenario.outcome(started, error=exc)
            else:
                scenario.outcome(started)

    return lambda scenario: asyncio.run(story(scenario))


def _long_query(connect: Callable[[], Any]) -> Callable[[Scenario], None]:
    """A healthy connection silent for 20 s while its server sleeps: it must finish."""

    def run(scenario: Scenario) -> None:
        conn = connect()
        cur = conn.cursor()
        cur.execute("SELECT 1")
        scenario.ready.set()  # never blackholed: no port
        started = time.monotonic()
        try:
            cur.execute(LONG_QUERY)
            scenario.outcome(started, [list(row) for row in cur.fetchall()])
        except Exception as exc:
            scenario.outcome(started, error=exc)

    return run


def scenarios(server: MariaDBServer) -> dict[str, Any]:
    global DRIVER_ERRORS
    import mysql.connector
    import MySQLdb

    DRIVER_ERRORS = (
        pymysql.err.OperationalError,
        MySQLdb.OperationalError,
        mysql.connector.errors.OperationalError,
    )
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE bh")
        cur.execute("CREATE TABLE bh.t (id INT AUTO_INCREMENT PRIMARY KEY, uid VARCHAR(64))")
    admin.close()
    kwargs = server.connect_kwargs(database="bh")
    auto = {**kwargs, "autocommit": True}

    def resilient(connect: Callable[..., Any], **extra: Any) -> Callable[[], Any]:
        return lambda: resilient_dbapi.connect(connect, **kwargs, **extra)

    def write(uid: str) -> str:
        return f"INSERT INTO t (uid) VALUES ('{uid}')"

    all_scenarios = [
        Scenario("long query", _long_query(resilient(pymysql.connect))),
        Scenario(
            "pymysql write",
            _sync(resilient(pymysql.connect, autocommit=True), write("pymysql"), rows=False),
        ),
        Scenario(
            "pymysql read",
            _sync(resilient(pymysql.connect), "SELECT COUNT(*) FROM t", rows=True),
        ),
        Scenario(
            "plain pymysql read",
            _sync(lambda: pymysql.connect(**kwargs), "SELECT COUNT(*) FROM t", rows=True),
        ),
        Scenario(
            "mysqlclient write",
            _sync(resilient(MySQLdb.connect, autocommit=True), write("mysqlclient"), rows=False),
        ),
        Scenario(
            "mysql-connector write",
            _sync(
                resilient(mysql.connector.connect, use_pure=True, autocommit=True),
                write("connector"),
                rows=False,
            ),
        ),
        Scenario("aiomysql write", _aiomysql(auto, write("aiomysql"))),
    ]
    for scenario in all_scenarios:
        scenario.thread.start()
    for scenario in all_scenarios:
        if not scenario.ready.wait(30):
            scenario.report = {"outcome": "setup hanging"}
    ports = sorted({s.port for s in all_scenarios if s.port is not None})
    listed = ", ".join(map(str, ports))
    rules = (
        "add table inet blackhole\n"
        "add chain inet blackhole input { type filter hook input priority 0 ; }\n"
        f"add rule inet blackhole input tcp sport {{ {listed} }} drop\n"
        f"add rule inet blackhole input tcp dport {{ {listed} }} drop\n"
    )
    nft = str(tool_path("nft"))
    subprocess.run([nft, "-f", "-"], input=rules.encode(), check=True, timeout=10)
    STARTED.append(time.monotonic())
    BLACKHOLE.set()
    deadline = STARTED[0] + WATCHED_FOR
    for scenario in all_scenarios:
        scenario.thread.join(max(0.0, deadline - time.monotonic()))
    return {scenario.name: scenario.report for scenario in all_scenarios}


def main() -> None:
    subprocess.run([str(tool_path("ip")), "link", "set", "lo", "up"], check=True, timeout=10)
    server = MariaDBServer().start()
    try:
        report = scenarios(server)
    finally:
        server.stop(kill=True)
        server.remove()
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)  # the threads of the hanging connections are blocked for good


if __name__ == "__main__":
    main()
