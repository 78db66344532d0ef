"""The benchmark suite: ``python -m benchmarks`` (or ``./dev bench``).

Against a throwaway local MariaDB it starts itself (or ``--dsn mysql://user:pw@host:port``)
and, for psycopg, a throwaway PostgreSQL when Debian's is installed: our overhead per
driver, workload and policy; the peers doing the same protective job; recovery after
faults; memory over a million statements; scaling over threads; where the time goes;
failover from a killed replicated primary to its promoted replica, and on a Galera
cluster and behind a proxy (HAProxy); the shared health view in a pool.
Every figure is a median over interleaved rounds, every comparison a ratio measured in
the same run. Writes ``report.md``, ``results.json`` and PNG charts to ``--out``, and
prints the report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pymysql

from . import (
    costs,
    failover,
    failover_galera,
    failover_proxy,
    health_view,
    memory,
    overhead,
    peers,
    recovery,
    replay,
    scaling,
)
from .charts import draw
from .common import Context, Progress, Section

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS: dict[str, ModuleType] = {
    "overhead": overhead,
    "peers": peers,
    "recovery": recovery,
    "scaling": scaling,
    "memory": memory,
    "costs": costs,
    "failover": failover,
    "failover_galera": failover_galera,
    "failover_proxy": failover_proxy,
    "health_view": health_view,
    "replay": replay,
}
_DATABASE = "resilient_bench"


@contextlib.contextmanager
def _mariadb(dsn: str | None) -> Iterator[tuple[dict[str, Any], Any]]:
    """PyMySQL kwargs for a database of the benchmark's own, and the server we started
    (None for ``--dsn``)."""
    if dsn:
        url = urllib.parse.urlsplit(dsn)
        if url.scheme not in ("mysql", "mariadb"):
            raise SystemExit(f"--dsn: expected mysql://user:password@host:port, got {dsn!r}")
        kwargs = {
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 3306,
            "user": urllib.parse.unquote(url.username or "root"),
            "password": urllib.parse.unquote(url.password or ""),
        }
        yield _with_database(kwargs), None
        return
    from resilient_dbapi.testing import MariaDBServer

    with MariaDBServer() as server:
        yield _with_database(server.connect_kwargs()), server


def _with_database(kwargs: dict[str, Any]) -> dict[str, Any]:
    admin = pymysql.connect(**kwargs, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {_DATABASE}")
    finally:
        admin.close()
    return {**kwargs, "database": _DATABASE}


@contextlib.contextmanager
def _postgres(wanted: bool) -> Iterator[dict[str, Any] | None]:
    if not wanted:
        yield None
        return
    from resilient_dbapi.testing import PostgresServer, ServerUnavailable

    try:
        server = PostgresServer().start()
    except (ServerUnavailable, OSError) as exc:
        print(f"no PostgreSQL for the psycopg figures: {exc}", file=sys.stderr)
        yield None
        return
    try:
        yield server.connect_kwargs()
    finally:
        server.remove()


def _server_version(kwargs: dict[str, Any]) -> str:
    conn = pymysql.connect(**kwargs)
    try:
        return str(conn.get_server_info())
    finally:
        conn.close()


def _summary(sections: list[Section]) -> str:
    lines = ["| target | measured | |", "|---|---:|---|"]
    for section in sections:
        for t in section.targets:
            mark = "met" if t.met else "**missed**"
            lines.append(f"| {t.what}: at most {t.limit:g} | {t.figure:.3f} | {mark} |")
    return "\n".join(lines) if len(lines) > 2 else "(no targets measured in this run)"


def _missed(sections: list[Section]) -> str:
    """Each missed target: by how much, and why, from the profiles of the same run."""
    costs = next((s.data for s in sections if s.key == "costs"), {})
    in_process: dict[str, list[dict[str, Any]]] = costs.get("in_process", {})
    by_driver: dict[str, list[dict[str, Any]]] = costs.get("by_driver", {})
    lines = []
    for section in sections:
        for t in section.targets:
            if t.met:
                continue
            by = t.figure - t.limit
            lines.append(
                f"- {t.what}: {t.figure:.4g} against at most {t.limit:g}, missed by {by:.2g} "
                f"({by / t.limit * 100:.2g} %). {_why(section.key, t.what, in_process, by_driver)}"
            )
    if not lines:
        return ""
    return "\n\n### Missed: by how much, and why\n\n" + "\n".join(lines) + "\n"


def _why(
    key: str,
    what: str,
    in_process: dict[str, list[dict[str, Any]]],
    by_driver: dict[str, list[dict[str, Any]]],
) -> str:
    if "ReplayTransaction" in what:
        return (
            "With replay on, each statement of the transaction keeps its text, parameters and "
            "what its result shows (2.3 us per statement measured without the network; "
            "several times that after a round trip), and commit() checks the socket first."
        )
    if key.startswith("overhead_"):
        unit = what.rsplit(", ", 1)[-1]
        driver = key.removeprefix("overhead_")
        for row in in_process.get(driver, ()):
            if row["unit"] == unit:
                return (
                    f"No round trip is added: it is the proxy's own work, +{row['overhead_us']} "
                    f"us per unit on the driver's {row['raw_us']} us measured without the "
                    f'network, mostly {"; ".join(row["top"][:3])} (see "Where the time goes").'
                )
        for row in by_driver.get(driver, ()):
            if row["unit"] == unit:
                return (
                    "No round trip is added: it is the proxy's own work, "
                    f"{row['ours_share']:.1%} of the unit's time profiled against the server "
                    f"({row['ours_us']} of {row['profiled_us']} profiled us), mostly "
                    f'{"; ".join(row["top"][:3])} (see "Where the time goes").'
                )
        return (
            "No round trip is added: it is the proxy's per-statement work (the checks, the "
            "engine's bookkeeping, the driver's status read); this run did not profile it."
        )
    if key == "recovery":
        return (
            "The first statement after a fault pays a fresh connect and, besides, the failed "
            "send or the socket check, the exception path and the replaced session's set-up "
            "(the breakdown per fault is in its section)."
        )
    return "See its section."


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dsn", help="an existing MariaDB/MySQL: mysql://user:password@host:port")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the psycopg figures (no PostgreSQL)"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run (default: all): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 15; quick 4)")
    parser.add_argument(
        "--per-round", type=int, help="units per variant per round (default 1000; quick 200)"
    )
    parser.add_argument(
        "--statements", type=int, help="the memory run's length (default 1000000; quick 100000)"
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about 2 minutes)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    rounds = _given(args.rounds, 4 if args.quick else 15)
    per_round = _given(args.per_round, 200 if args.quick else 1000)
    statements = _given(args.statements, 100_000 if args.quick else 1_000_000)
    if rounds < 1 or per_round < 1 or statements < 20_000:
        parser.error("--rounds and --per-round must be >= 1, --statements >= 20000")
    chosen = list(SECTIONS)
    if args.only:
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in SECTIONS]
        if unknown:
            parser.error(f"--only: unknown section(s) {unknown}; allowed: {', '.join(SECTIONS)}")
    wants_postgres = not args.no_postgres and "overhead" in chosen

    # The faults the benchmark makes on purpose would log a warning each: its report
    # counts them instead.
    logging.getLogger("resilient_dbapi").setLevel(logging.ERROR)
    started = time.monotonic()
    progress = Progress(not args.quiet)
    print("connecting..." if args.dsn else "starting a throwaway MariaDB...", file=sys.stderr)
    sections: list[Section] = []
    with _mariadb(args.dsn) as (mysql, mysql_server), _postgres(wants_postgres) as postgres:
        ctx = Context(
            mysql=mysql,
            mysql_server=mysql_server,
            postgres=postgres,
            rounds=rounds,
            per_round=per_round,
            quick=args.quick,
            progress=progress,
            statements=statements,
            no_postgres=args.no_postgres,
        )
        version = _server_version(mysql)
        for name in chosen:
            progress.expect(SECTIONS[name].steps(ctx))
        try:
            for name in chosen:
                sections.extend(SECTIONS[name].run(ctx))
        finally:
            progress.close()
    elapsed = time.monotonic() - started

    args.out.mkdir(parents=True, exist_ok=True)
    charts: list[str] = []
    for section in sections:
        for chart in section.charts:
            charts.append(draw(chart, args.out).name)
    header = (
        f"# resilient_dbapi benchmarks\n\n"
        f"{datetime.date.today().isoformat()}; MariaDB {version}"
        f"{'' if postgres is None else ', PostgreSQL (throwaway)'}; Python "
        f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{rounds} rounds x {per_round}{' (quick)' if args.quick else ''}; "
        f"{elapsed / 60:.1f} min.\n\n## Targets\n\n{_summary(sections)}\n{_missed(sections)}"
    )
    body = "\n".join(f"\n## {s.title}\n\n{s.markdown}\n" for s in sections)
    report = header + body
    (args.out / "report.md").write_text(report)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "server": version,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "rounds": rounds,
                "per_round": per_round,
                "quick": args.quick,
                "elapsed_s": round(elapsed, 1),
                "targets": [
                    {"what": t.what, "figure": t.figure, "limit": t.limit, "met": t.met}
                    for s in sections
                    for t in s.targets
                ],
                "sections": {s.key: s.data for s in sections},
                "charts": charts,
            },
            indent=2,
        )
    )
    print(report)
    print(
        f"written: {args.out / 'report.md'}, {args.out / 'results.json'} and "
        f"{len(charts)} charts in {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
