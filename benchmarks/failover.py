"""Failover: from a replicated primary's death to the first write on the promoted replica.

Each trial starts a fresh primary and replica (``ReplicatedPair``: GTID, semi-sync), runs
four writers through ``resilient_dbapi.creator(pymysql.connect, hosts=[primary,
replica])``, kills the primary (SIGKILL), promotes the replica (at once, or after a wait
standing for an orchestrator noticing), and times the writers' first acknowledged write
on the promoted server. The PostgreSQL variants do the same with psycopg on a
``StandbyPair`` (synchronous streaming replication; an immediate shutdown, or a fast one
ending every session with 57P01; ``pg_promote()``). The time the promotion took (and the
wait before it) is excluded, as in the AWS Advanced Python Wrapper's published 1.1-6.7 s.
Every trial also checks the writes: every acknowledged one present on the promoted
server, none twice.
"""

from __future__ import annotations

import functools
import statistics
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi.policies import Policy
from resilient_dbapi.testing import (
    ReplicatedPair,
    ServerUnavailable,
    StandbyPair,
    failover_drill,
    find_mariadbd,
    find_postgres,
)

from .common import Chart, Context, Section, Target

__all__ = ["run", "steps"]

AWS_BEST = 1.1
"""The AWS Advanced Python Wrapper's documented failover time with tuned settings, low end (s)."""
WRITERS = 4
VARIANTS: list[tuple[str, list[Policy] | None, float]] = [
    ("promoted at once", None, 0.0),
    ("PostgreSQL: crash, promoted at once", None, 0.0),
    ("PostgreSQL: fast shutdown (57P01), promoted at once", None, 0.0),
    ("promoted 3 s after the kill", None, 3.0),
    ("promoted 10 s after the kill", None, 10.0),
]
"""Name, policies (None: the defaults) and the wait before the promotion, standing for an
orchestrator noticing the dead primary. A name starting "PostgreSQL" runs psycopg on a
``StandbyPair``."""


def _trials(ctx: Context) -> int:
    return 1 if ctx.quick else 5


def _variants(ctx: Context) -> list[tuple[str, list[Policy] | None, float]]:
    return VARIANTS[:3] if ctx.quick else VARIANTS


def _no_postgres(ctx: Context) -> str | None:
    """Why the PostgreSQL variants cannot run (None: they can)."""
    if ctx.no_postgres:
        return "--no-postgres"
    try:
        find_postgres()
        import psycopg  # noqa: F401
    except (ServerUnavailable, ImportError) as missing:
        return str(missing)
    return None


def steps(ctx: Context) -> int:
    skipped = _no_postgres(ctx) is not None
    return sum(
        _trials(ctx)
        for name, _, _ in _variants(ctx)
        if not (skipped and name.startswith("PostgreSQL"))
    )


def _trial(
    name: str, policies: list[Policy] | None, promote_after: float, before: int
) -> dict[str, Any]:
    postgres = name.startswith("PostgreSQL")
    driver: Any = pymysql.connect
    if postgres:
        import psycopg  # only here: the [bench] extra does not need it

        driver = psycopg.connect
    with StandbyPair() if postgres else ReplicatedPair() as pair:
        make = resilient_dbapi.creator(
            driver,
            hosts=pair.hosts(),
            policies=policies,
            **pair.app_kwargs(autocommit=True),
        )
        stop_primary = None
        if isinstance(pair, StandbyPair) and "57P01" in name:
            stop_primary = functools.partial(pair.kill_primary, fast=True)
        drill = failover_drill(
            pair,
            make,
            writers=WRITERS,
            before=before,
            after=20,
            promote_after=promote_after,
            stop_primary=stop_primary,
        )
    check = drill.check
    return {
        "first_write_s": round(drill.first_write, 4),
        "all_writers_s": round(drill.all_writers, 4),
        "promotion_s": round(drill.promotion, 4),
        "stored": check.stored,
        "acknowledged_after": drill.acknowledged_after,
        "lost_acknowledged": len(check.lost_acknowledged),
        "duplicates": len(check.duplicates),
        "unexpected": len(check.unexpected),
        "errors": dict(drill.errors),
    }


def run(ctx: Context) -> list[Section]:
    title = "Failover: a replicated primary killed, the replica promoted (MariaDB, PostgreSQL)"
    try:
        find_mariadbd()
    except ServerUnavailable as missing:
        return [Section("failover", title, f"Skipped: {missing}", {"skipped": str(missing)})]
    before = 50 if ctx.quick else 200
    data: dict[str, Any] = {}
    no_postgres = _no_postgres(ctx)
    for name, policies, promote_after in _variants(ctx):
        if no_postgres and name.startswith("PostgreSQL"):
            continue
        trials = []
        for _ in range(_trials(ctx)):
            ctx.progress.note(f"failover: {name}")
            trials.append(_trial(name, policies, promote_after, before))
            ctx.progress.step()
        first = [t["first_write_s"] for t in trials]
        every = [t["all_writers_s"] for t in trials]
        data[name] = {
            "first_write_median_s": round(statistics.median(first), 4),
            "first_write_max_s": round(max(first), 4),
            "all_writers_median_s": round(statistics.median(every), 4),
            "all_writers_max_s": round(max(every), 4),
            "promotion_median_s": round(statistics.median(t["promotion_s"] for t in trials), 4),
            "safe": all(
                t["lost_acknowledged"] == t["duplicates"] == t["unexpected"] == 0 for t in trials
            ),
            "trials": trials,
        }
    lines = [
        "| variant | first write, median (max) s | every writer, median (max) s | "
        "kill to promoted, median s | lost / doubled / unexpected writes |",
        "|---|---:|---:|---:|---|",
    ]
    for name, r in data.items():
        bad = [
            f"{sum(t[k] for t in r['trials'])}"
            for k in ("lost_acknowledged", "duplicates", "unexpected")
        ]
        lines.append(
            f"| {name} | {r['first_write_median_s']:.3f} ({r['first_write_max_s']:.3f}) | "
            f"{r['all_writers_median_s']:.3f} ({r['all_writers_max_s']:.3f}) | "
            f"{r['promotion_median_s']:.3f} | {' / '.join(bad)} |"
        )
    worst = max(r["all_writers_max_s"] for r in data.values())
    target = Target("failover time, slowest writer of any trial (s)", worst, AWS_BEST)
    met = "met" if worst <= AWS_BEST else "**missed**"
    markdown = "\n".join(
        [
            f"{WRITERS} writers (PyMySQL, autocommit INSERTs of unique ids) through "
            "`creator(pymysql.connect, hosts=[primary, replica])`; the primary is killed "
            "with SIGKILL and the replica promoted (`STOP SLAVE IO_THREAD`, wait for what it "
            "received, `RESET SLAVE ALL`, `SET GLOBAL read_only = 0`). Times run from the "
            "end of the promotion to a write acknowledged by the promoted server, so the "
            "promotion (and the wait before it) is excluded. The PostgreSQL variants: "
            "psycopg through `creator(psycopg.connect, hosts=[primary, standby])`, a "
            "standby streaming synchronously (`synchronous_commit = remote_apply`), the "
            "primary stopped immediately (SIGQUIT, a crash) or fast (every session ended "
            "with 57P01), `pg_promote()`. Default policies. "
            f"{_trials(ctx)} trial(s) per variant, each on fresh servers, loopback.",
            "",
            "\n".join(lines),
            "",
            f"Beat the AWS Advanced Python Wrapper's documented {AWS_BEST}-6.7 s: the slowest "
            f"writer of any trial resumed {worst:.3f} s after the promotion: {met}. While "
            "a host is up with the wrong role (the replica, before its promotion), rounds "
            "over the hosts come at most 0.25 s apart, whatever the retry policy's "
            "backoff, so a late promotion is seen as soon as an early one; the retry "
            "policy bounds the wait (by default 20 rounds, about 5 s: the connection then "
            "raises `NoSuitableHostError`, nothing sent, and the writer's next statement "
            "starts over; the `replicated` profile goes on for up to 60 s). Writes in "
            "flight at the kill "
            "raise `OutcomeUnknownError` (never sent again); every trial checked that no "
            "acknowledged write was lost and none was applied twice."
            + (f" PostgreSQL variants skipped: {no_postgres}." if no_postgres else ""),
        ]
    )
    return [Section("failover", title, markdown, data, charts("failover", data), targets=[target])]


def charts(key: str, data: dict[str, Any]) -> list[Chart]:
    """The section's chart, from its data (see ``python -m benchmarks.charts``)."""
    spread = {}
    for name, r in data.items():
        firsts = [t["first_write_s"] for t in r.get("trials", ()) if "first_write_s" in t]
        if firsts:
            spread[name] = (min(firsts), max(firsts))
    return [
        Chart(
            "failover.png",
            "Failover: promotion to first write (median, s)",
            {name: r["first_write_median_s"] for name, r in data.items()},
            ylabel="seconds",
            target=AWS_BEST,
            spread=spread,
            spread_label="whiskers: fastest and slowest trial",
        )
    ]
