"""Failover behind a proxy: HAProxy (TCP mode, a MySQL health check every 0.2 s) in front
of two MariaDB servers; the first is killed and HAProxy moves to the backup. Four writers
through ``creator()`` on the proxy's one address with the ``behind_proxy`` profile; timed
from the kill to every writer's next acknowledged write, and every write checked on both
servers.
"""

from __future__ import annotations

import statistics
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi.testing import ServerUnavailable
from resilient_dbapi.testing.haproxy import ProxiedPair, find_haproxy, proxy_drill

from .common import Context, Section

__all__ = ["run", "steps"]

WRITERS = 4


def _trials(ctx: Context) -> int:
    return 1 if ctx.quick else 5


def steps(ctx: Context) -> int:
    return _trials(ctx)


def run(ctx: Context) -> list[Section]:
    title = "Failover behind a proxy: HAProxy moves to the backup server"
    try:
        find_haproxy()
    except ServerUnavailable as missing:
        return [Section("failover_proxy", title, f"Skipped: {missing}", {"skipped": str(missing)})]
    trials: list[dict[str, Any]] = []
    for _ in range(_trials(ctx)):
        ctx.progress.note("failover_proxy")
        with ProxiedPair() as pair:
            make = resilient_dbapi.creator(
                pymysql.connect,
                host="127.0.0.1",
                port=pair.port,
                policies="behind_proxy",
                **pair.app_kwargs(autocommit=True, read_timeout=5),
            )
            drill = proxy_drill(pair, make, writers=WRITERS, before=100, after=20)
        check = drill.check
        trials.append(
            {
                "every_writer_s": round(drill.every_writer, 3),
                "failed_writes": sum(drill.errors.values()),
                "errors": dict(drill.errors),
                "stored": check.stored,
                "safe": check.ok,
            }
        )
        ctx.progress.step()
    every = [t["every_writer_s"] for t in trials]
    data = {
        "every_writer_median_s": round(statistics.median(every), 3),
        "every_writer_max_s": max(every),
        "failed_writes_max": max(t["failed_writes"] for t in trials),
        "safe": all(t["safe"] for t in trials),
        "trials": trials,
    }
    markdown = "\n".join(
        [
            f"{WRITERS} writers (PyMySQL, autocommit INSERTs of unique ids) through "
            '`creator(pymysql.connect, host=<proxy>, policies="behind_proxy")`; HAProxy '
            "2.6 in TCP mode, `option mysql-check` every 0.2 s, a server down after two "
            "failed checks (`on-marked-down shutdown-sessions`), the second server a "
            "backup. The first server is killed (SIGKILL); timed from the kill to every "
            f"writer's next acknowledged write. {_trials(ctx)} trial(s), loopback.",
            "",
            "| every writer again, median (max) | failed writes, max (of 4) | lost / doubled |",
            "|---:|---:|---|",
            f"| {data['every_writer_median_s']:.3f} s ({data['every_writer_max_s']:.3f}) | "
            f"{data['failed_writes_max']} | {'0 / 0' if data['safe'] else '**not safe**'} |",
            "",
            "Most of it is HAProxy's own detection (two checks 0.2 s apart); meanwhile a "
            "new connection through the proxy is cut in its handshake (2013) and retried "
            "with backoff. The writes in flight at the kill raised `OutcomeUnknownError` "
            "(never sent again); every trial checked both servers.",
        ]
    )
    return [Section("failover_proxy", title, markdown, data)]
