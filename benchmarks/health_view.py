"""The shared health view in a pool: what one connection learns about a host, the others
of the same ``creator()`` know.

Two MariaDB servers, both writable, in ``hosts=``; the first behind a loopback
``FaultProxy``. A pool of connections, all on the first host, serves writers that take a
connection at random for each write. The first host is then blackholed (its open sockets
hear nothing; new connections to it are refused), and the writers go on until every
pooled connection served a write after it. Counted: the writes that raised, and the time
until every connection wrote again. Side by side: the pool made by one ``creator()``
(one health view) and one made by a ``connect()`` each (each finds out for itself, by
its own read timeout). Every write is checked against both servers.
"""

from __future__ import annotations

import contextlib
import functools
import random
import statistics
import threading
import time
from collections import Counter
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi.testing import (
    FaultProxy,
    MariaDBServer,
    ServerUnavailable,
    WriteLedger,
    find_mariadbd,
)
from resilient_dbapi.testing.ledger import error_key

from .common import Context, Section

__all__ = ["run", "steps"]

POOL = 16
WRITERS = 4
READ_TIMEOUT = 1
VARIANTS = ("one creator() (shared health view)", "a connect() each (no shared view)")


def _trials(ctx: Context) -> int:
    return 1 if ctx.quick else 3


def steps(ctx: Context) -> int:
    return len(VARIANTS) * _trials(ctx)


def _app(server: MariaDBServer) -> None:
    with contextlib.closing(server.admin()) as admin, admin.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS app")
        cur.execute("CREATE TABLE IF NOT EXISTS app.t (uid VARCHAR(64) PRIMARY KEY)")
        cur.execute("DELETE FROM app.t")


def _uids(server: MariaDBServer) -> list[str]:
    with contextlib.closing(server.admin()) as admin, admin.cursor() as cur:
        cur.execute("SELECT uid FROM app.t")
        return [row[0] for row in cur.fetchall()]


def _trial(variant: str, a: MariaDBServer, b: MariaDBServer) -> dict[str, Any]:
    for server in (a, b):
        _app(server)
    front = FaultProxy(a.port)
    hosts = [("127.0.0.1", front.port), ("127.0.0.1", b.port)]
    kwargs = {
        **a.connect_kwargs(autocommit=True, read_timeout=READ_TIMEOUT, connect_timeout=2),
        "database": "app",
    }
    del kwargs["host"], kwargs["port"]
    if variant == VARIANTS[0]:
        make: Any = resilient_dbapi.creator(pymysql.connect, hosts=hosts, **kwargs)
    else:
        make = functools.partial(resilient_dbapi.connect, pymysql.connect, hosts=hosts, **kwargs)
    pool: list[Any] = []
    try:
        pool += [make() for _ in range(POOL)]
    except BaseException:
        for conn in pool:
            conn.close()
        front.close()
        raise
    locks = [threading.Lock() for _ in pool]
    used_after = [False] * POOL
    ledger = WriteLedger()
    errors: Counter[str] = Counter()
    counted = threading.Lock()
    struck = threading.Event()
    stop = threading.Event()
    everyone_at = [0.0]
    struck_at = [0.0]

    def write() -> None:
        rng = random.Random()
        while not stop.is_set():
            index = rng.randrange(POOL)
            if not locks[index].acquire(blocking=False):
                time.sleep(0.001)  # another writer has it
                continue
            try:
                after = struck.is_set()
                failed = ledger.insert(pool[index], "app.t", ledger.new_id())
                if failed is not None:
                    with counted:
                        errors[error_key(failed)] += 1
                    continue
                if after:
                    with counted:
                        used_after[index] = True
                        if all(used_after) and not everyone_at[0]:
                            everyone_at[0] = time.monotonic()
                            stop.set()
            finally:
                locks[index].release()
            time.sleep(0.002)

    threads = [threading.Thread(target=write, daemon=True) for _ in range(WRITERS)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        with counted:
            before = sum(errors.values())
        front.blackhole()
        front.refuse_new()
        struck_at[0] = time.monotonic()
        struck.set()
        stop.wait(60)
        stop.set()
        for thread in threads:
            thread.join(30)  # a write may wait out one read timeout; then none is running
    finally:
        for conn in pool:
            with contextlib.suppress(Exception):
                conn.close()
        front.close()
    check = ledger.check(_uids(a) + _uids(b))
    return {
        "failed_writes": sum(errors.values()) - before,
        "errors": dict(errors),
        "every_connection_s": round(everyone_at[0] - struck_at[0], 3) if everyone_at[0] else None,
        "safe": check.ok,
        "stored": check.stored,
    }


def run(ctx: Context) -> list[Section]:
    title = "The shared health view: a pool on a blackholed host"
    try:
        find_mariadbd()
    except ServerUnavailable as missing:
        return [Section("health_view", title, f"Skipped: {missing}", {"skipped": str(missing)})]
    data: dict[str, Any] = {}
    with MariaDBServer() as a, MariaDBServer() as b:
        for variant in VARIANTS:
            trials = []
            for _ in range(_trials(ctx)):
                ctx.progress.note(f"health_view: {variant}")
                trials.append(_trial(variant, a, b))
                ctx.progress.step()
            done = [t["every_connection_s"] for t in trials if t["every_connection_s"] is not None]
            data[variant] = {
                "unfinished_trials": len(trials) - len(done),
                "failed_writes_median": statistics.median(t["failed_writes"] for t in trials),
                "failed_writes_max": max(t["failed_writes"] for t in trials),
                "every_connection_median_s": round(statistics.median(done), 3) if done else None,
                "safe": all(t["safe"] for t in trials),
                "trials": trials,
            }
    lines = [
        "| pool made by | failed writes, median (max) | every connection wrote again, "
        "median s | lost / doubled |",
        "|---|---:|---:|---|",
    ]
    for variant, r in data.items():
        every = r["every_connection_median_s"]
        lines.append(
            f"| {variant} | {r['failed_writes_median']} ({r['failed_writes_max']}) | "
            f"{'-' if every is None else f'{every:.3f}'} | "
            f"{'0 / 0' if r['safe'] else '**not safe**'} |"
        )
    markdown = "\n".join(
        [
            f"A pool of {POOL} PyMySQL connections (`hosts=[a, b]`, both writable, "
            f"`read_timeout={READ_TIMEOUT}`) on host a, {WRITERS} writers taking one at "
            "random per autocommit INSERT; then a is blackholed (its open sockets hear "
            "nothing, new connections are refused) until every pooled connection wrote "
            f"again. {_trials(ctx)} trial(s) per variant, loopback.",
            "",
            "\n".join(lines),
            "",
            "With one `creator()`, the first write to time out on a marks it (silent "
            "past the read timeout), and every other connection leaves it at its next "
            "checkout, before sending: the writes that fail are those sent to a before the "
            "first timeout, about one per writer. With a `connect()` each, every pooled "
            "connection waits out its own read timeout on its next write, which fails "
            "(`OutcomeUnknownError`, never sent again): one per connection. A trial that "
            "did not finish within 60 s is counted in `unfinished_trials`.",
        ]
    )
    return [Section("health_view", title, markdown, data)]
