"""The fault matrix (issue 7): every fault x every operation, through the synchronous
proxy over PyMySQL and the asyncio proxy over aiomysql, against a real MariaDB.

Each case gets a database of its own (table ``t`` with one seed row, a procedure ``p``)
and a resilient connection to it. The operation's context is put in place (autocommit on
or off, a write already in the transaction, a row stream half read), the fault is
injected while the connection is idle or while the operation is in flight, and what the
caller saw is recorded: ``ok``, ``recovered`` (the proxy replaced the connection or
retried the connect, transparently), ``TransactionLost``, ``OutcomeUnknown``,
``error N`` (the driver's own error, the connection usable afterwards), ``gave up N``
(the driver's error once the retry deadline passed) or, on the asyncio side,
``timeout`` (the ``asyncio.timeout`` around the operation expired: the cancellation
propagated, with what it cost). The table is then checked: every acknowledged write
present once, nothing of a lost or rolled-back transaction, a write of unknown outcome
applied at most once.

The cases of one fault run side by side, sync and asyncio together, one thread each (the
asyncio cases share one event loop, see ``tests/fault_matrix/trials_async.py``), so a row
costs about one fault's time. ``python -m benchmarks.matrix`` starts throwaway MariaDB
servers, runs every case, writes ``benchmarks/results/fault_matrix.md`` (a table per
proxy) and prints it; ``tests/test_fault_matrix.py`` asserts every observed outcome
against the expected one.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymysql

from resilient_dbapi.testing import MariaDBServer

from .common import MODES, Servers, open_admin
from .faults import DIFFERS, FAULTS
from .render import differs, render
from .run import run_matrix

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _versions(server: Any) -> str:
    import aiomysql

    admin = open_admin(server)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = str(cur.fetchone()[0]).split("-")[0]
    finally:
        admin.close()
    return (
        f"MariaDB {mariadb}, PyMySQL {pymysql.__version__}, aiomysql {aiomysql.__version__}, "
        f"Python {platform.python_version()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.matrix``: run every case on throwaway servers, write the
    report and print it; exit status 1 if a case broke an invariant or differs from the
    documented safety rules in a way not listed in :data:`DIFFERS`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matrix", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "fault_matrix.md")
    parser.add_argument("--only", help="comma-separated fault names (default: all)")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated proxies (default: sync,async)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show resilient_dbapi's log of the faults"
    )
    args = parser.parse_args(argv)
    if not args.verbose:  # every case makes the proxy log a reconnect or a loss
        logging.getLogger("resilient_dbapi").setLevel(logging.ERROR)
    faults = FAULTS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {f.name for f in FAULTS}
        if unknown:
            parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
        faults = tuple(f for f in FAULTS if f.name in wanted)
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    if not modes or set(args.modes.split(",")) - set(MODES):
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    started = time.monotonic()
    with MariaDBServer() as shared, MariaDBServer() as own:
        versions = _versions(shared)
        results = run_matrix(
            Servers(shared, own), faults, lambda note: print(note, file=sys.stderr), modes
        )
    report = render(results, seconds=time.monotonic() - started, versions=versions, faults=faults)
    report += f"\n_Run on {datetime.date.today().isoformat()}._\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    by_name = {f.name: f for f in faults}
    failed = any(
        (obs.problems or differs(by_name[name], op, obs, mode)) and (mode, name, op) not in DIFFERS
        for mode, side in results.items()
        for name, row in side.items()
        for op, obs in row.items()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
