"""What a verified replay costs the caller when a connection dies before ``COMMIT``,
against what the caller does without it: roll back and run the unit again.

The unit is the 10-statement transaction of the overhead section (``begin()``, 4 point
selects, 4 ``UPDATE``s, ``commit()``) on PyMySQL. Its connection is killed (``KILL
CONNECTION``, waited for) after the third ``UPDATE``; the clock runs from the fourth
``UPDATE``, which finds it dead, until ``commit()`` returned: with
``ReplayTransaction()`` the proxy reconnects, runs the 8 statements before it again,
compares their results, then sends it and the ``COMMIT``; without it the ``UPDATE``
raises ``TransactionLostError``, and the caller rolls back and runs the unit again
(which reconnects). The two alternate, trial by
trial; medians. The server judges each trial: every committed unit moved 8 units once.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi import ReplayTransaction
from resilient_dbapi.policies import default_policies
from resilient_dbapi.testing import kill_connection

from .common import Context, Section

__all__ = ["run", "steps"]

ROWS = 8
_WARM_UP = 3
VARIANTS = ("replay (ReplayTransaction)", "run the unit again (replay off)")


def _trials(ctx: Context) -> int:
    return 5 if ctx.quick else 40


def steps(ctx: Context) -> int:
    return 1


_UPDATE = "UPDATE bench_replay SET n = n + 1 WHERE id = %s"


def _statements(conn: Any, cur: Any) -> None:
    """The unit up to its last UPDATE: begin(), 4 point selects, 3 UPDATEs."""
    conn.begin()
    for key in range(1, 5):
        cur.execute("SELECT n FROM bench_replay WHERE id = %s", (key,))
        cur.fetchall()
    for key in range(5, 8):
        cur.execute(_UPDATE, (key,))


def _rest(conn: Any, cur: Any) -> None:
    cur.execute(_UPDATE, (8,))
    conn.commit()


def _total(admin: Any) -> int:
    with admin.cursor() as cur:
        cur.execute("SELECT SUM(n) FROM bench_replay")
        return int(cur.fetchone()[0])


def _trial(variant: str, kwargs: dict[str, Any], admin: Any) -> float:
    replay = variant == VARIANTS[0]
    policies = [*default_policies(), ReplayTransaction()] if replay else None
    conn = resilient_dbapi.connect(pymysql.connect, policies=policies, **kwargs)
    try:
        cur = conn.cursor()
        _statements(conn, cur)
        kill_connection(admin, conn.thread_id())
        started = time.perf_counter()
        try:
            _rest(conn, cur)
        except resilient_dbapi.TransactionLostError:
            if replay:
                raise
            conn.rollback()
            _statements(conn, cur)
            _rest(conn, cur)
        elapsed = time.perf_counter() - started
        if replay and conn.stats.transactions_replayed != 1:
            raise RuntimeError("the replay variant did not replay")
        return elapsed
    finally:
        conn.close()


def run(ctx: Context) -> list[Section]:
    title = "Verified replay vs running the unit again"
    kwargs = dict(ctx.mysql)
    admin = pymysql.connect(**{**kwargs, "autocommit": True})
    data: dict[str, Any] = {}
    try:
        with admin.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_replay")
            cur.execute(
                "CREATE TABLE bench_replay (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB"
            )
            cur.executemany(
                "INSERT INTO bench_replay VALUES (%s, 0)", [(i,) for i in range(1, ROWS + 1)]
            )
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        ctx.progress.note("replay: killed before COMMIT, replayed or run again")
        for trial in range(_WARM_UP + _trials(ctx)):
            for variant in VARIANTS:
                seconds = _trial(variant, kwargs, admin)
                if trial >= _WARM_UP:  # the first connects and replays warm caches up
                    times[variant].append(seconds)
        committed = _total(admin)
        ctx.progress.step()
        with admin.cursor() as cur:
            cur.execute("DROP TABLE bench_replay")
    finally:
        with contextlib.suppress(Exception):
            admin.close()
    trials = _trials(ctx)
    for variant, seconds in times.items():
        data[variant] = {
            "median_ms": round(statistics.median(seconds) * 1000, 2),
            "min_ms": round(min(seconds) * 1000, 2),
            "max_ms": round(max(seconds) * 1000, 2),
        }
    data["ratio"] = round(data[VARIANTS[0]]["median_ms"] / data[VARIANTS[1]]["median_ms"], 3)
    data["trials"] = trials
    # Every trial of both variants committed its 4 increments once.
    data["safe"] = committed == 4 * (_WARM_UP + trials) * len(VARIANTS)
    lines = ["| after the kill | median ms | min ms | max ms |", "|---|---:|---:|---:|"]
    for variant in VARIANTS:
        r = data[variant]
        lines.append(f"| {variant} | {r['median_ms']} | {r['min_ms']} | {r['max_ms']} |")
    markdown = "\n".join(
        [
            __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
            "",
            f"{trials} trials per variant, loopback, PyMySQL.",
            "",
            "\n".join(lines),
            "",
            f"Replay / run again: {data['ratio']}x. Both reconnect once and send the "
            "statements before the loss again; the replay also compares each result "
            "with the first run's, and spares the caller the error and its own code. "
            "Both are mostly the reconnect (PyMySQL builds a TLS context for each new "
            "connection to a server that offers TLS, about 30 ms here). "
            f"Committed: {'each unit once' if data['safe'] else '**not each unit once**'}.",
        ]
    )
    return [Section("replay", title, markdown, data)]
