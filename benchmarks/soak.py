"""The soak: ``python -m benchmarks.soak`` (not part of CI; a 30 s version is).

N threads (sync proxy) and M asyncio tasks (asyncio proxy) write, commit and read for T
minutes against a throwaway MariaDB (or ``--dsn``) while a killer ends a random one of
their server sessions every ~100 ms. Every write carries a unique id; afterwards the
table must hold exactly the writes the clients saw acknowledged, plus any subset of those
reported of unknown outcome, each once, and nothing else. Prints what was done, what was
injected, what recovered transparently and what surfaced, by kind; exits 1 on a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiomysql
import pymysql

import resilient_dbapi
from resilient_dbapi import (
    OutcomeUnknownError,
    ReplayTransaction,
    ResilientError,
    SessionLostError,
    TransactionLostError,
    aio,
)
from resilient_dbapi.policies import default_policies
from resilient_dbapi.testing import LedgerCheck, MariaDBServer, WriteLedger

__all__ = ["SoakReport", "run"]

_TABLE = "soak"
_DATABASE = "resilient_soak"


@dataclass
class SoakReport:
    seconds: float
    threads: int
    tasks: int
    operations: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    recoveries: int = 0
    """Reconnects and statements sent again that the application never saw."""
    surfaced: Counter[str] = field(default_factory=Counter)
    """Errors the application saw, by kind."""
    check: LedgerCheck | None = None
    crashes: list[str] = field(default_factory=list)
    """Server crashes during the run (a server we started is started again)."""
    replay: bool = False
    """Whether the transactions ran with ``ReplayTransaction``."""
    replayed: int = 0
    """Transactions lost before COMMIT that went on after a verified replay."""

    @property
    def recovered_share(self) -> float | None:
        """Of the transactions lost before COMMIT, the share replayed (the rest surfaced
        as TransactionLostError); None when none was lost."""
        lost = self.replayed + self.surfaced.get("TransactionLostError", 0)
        return self.replayed / lost if lost else None

    @property
    def unexpected_errors(self) -> set[str]:
        """Errors no safety rule explains. A read may fail with the driver's own error once
        its resends are used up (``RetryOnError.resend``: killed again on each new
        connection): that is the policy's limit, shown but not a violation."""
        return {
            kind
            for kind in self.surfaced
            if kind not in _EXPECTED_ERRORS and not kind.endswith("(read)")
        }

    @property
    def ok(self) -> bool:
        return self.check is not None and self.check.ok and not self.unexpected_errors

    def markdown(self) -> str:
        check = self.check
        assert check is not None
        ops = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.operations.items()))
        errors = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.surfaced.items())) or "none"
        return "\n".join(
            [
                "| soak | |",
                "|---|---|",
                f"| run | {self.threads} threads + {self.tasks} asyncio tasks, "
                f"{self.seconds:.0f} s |",
                f"| operations done | {sum(self.operations.values()):,} ({ops}) |",
                f"| sessions killed | {self.faults:,} |",
                f"| server crashes | {len(self.crashes)}"
                + (f" ({'; '.join(self.crashes)})" if self.crashes else "")
                + " |",
                f"| transparent recoveries | {self.recoveries:,} |",
                *(
                    [
                        f"| transactions lost before COMMIT and replayed | {self.replayed:,}"
                        + (
                            f" ({self.recovered_share:.0%} of those lost)"
                            if self.recovered_share is not None
                            else ""
                        )
                        + " |"
                    ]
                    if self.replay
                    else []
                ),
                f"| errors surfaced, by kind | {errors} |",
                f"| rows stored | {check.stored:,} (of which {check.unknown_applied:,} reported "
                "of unknown outcome) |",
                f"| duplicates (must be 0) | {len(check.duplicates)} |",
                f"| lost acknowledged writes (must be 0) | {len(check.lost_acknowledged)} |",
                f"| rows nobody acknowledged (must be 0) | {len(check.unexpected)} |",
            ]
        )


# What a kill may surface, by design: a write's outcome unknown, a transaction lost.
_EXPECTED_ERRORS = {"OutcomeUnknownError", "TransactionLostError"}


def _kind(exc: BaseException) -> str:
    for kind in (TransactionLostError, OutcomeUnknownError, SessionLostError, ResilientError):
        if isinstance(exc, kind):
            return kind.__name__
    code = exc.args[0] if exc.args else ""
    return f"{type(exc).__name__} {code}".strip()


class _Worker:
    """One client's loop: autocommit writes, transactions, executemany, reads."""

    def __init__(self, ledger: WriteLedger, report: SoakReport, name: str, seed: int) -> None:
        self.ledger = ledger
        self.report = report
        self.name = name
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def count(self, what: str) -> None:
        with self.lock:
            self.report.operations[what] += 1

    def surfaced(self, exc: BaseException, what: str) -> None:
        kind = _kind(exc)
        if kind not in _EXPECTED_ERRORS:
            kind = f"{kind} ({what})"  # which operation saw it
        with self.lock:
            self.report.surfaced[kind] += 1

    def plan(self) -> tuple[str, list[str]]:
        roll = self.random.random()
        if roll < 0.35:
            return "autocommit write", [self.ledger.new_id(self.name)]
        if roll < 0.65:
            n = self.random.randint(1, 3)
            return "transaction", [self.ledger.new_id(self.name) for _ in range(n)]
        if roll < 0.75:
            return "executemany", [self.ledger.new_id(self.name) for _ in range(3)]
        return "read", []


_INSERT = f"INSERT INTO {_TABLE} (uid) VALUES (%s)"


def _sync_worker(
    kwargs: dict[str, Any], worker: _Worker, deadline: float, replay: bool = False
) -> tuple[int, int]:
    """Returns the transparent recoveries of its connections, and its replays."""
    auto = resilient_dbapi.connect(pymysql.connect, **kwargs, autocommit=True)
    txn = resilient_dbapi.connect(pymysql.connect, **kwargs, policies=_policies(replay))
    ledger = worker.ledger
    try:
        while time.monotonic() < deadline:
            what, ids = worker.plan()
            try:
                if what == "autocommit write":
                    auto.cursor().execute(_INSERT, (ids[0],))
                    ledger.acknowledge(ids)
                elif what == "executemany":
                    auto.cursor().executemany(_INSERT, [(uid,) for uid in ids])
                    ledger.acknowledge(ids)
                elif what == "transaction":
                    cur = txn.cursor()
                    for uid in ids:
                        cur.execute(_INSERT, (uid,))
                    txn.commit()
                    ledger.acknowledge(ids)
                else:
                    cur = auto.cursor()
                    cur.execute(
                        f"SELECT COUNT(*) FROM {_TABLE} WHERE uid LIKE %s", (worker.name + "-%",)
                    )
                    cur.fetchall()
                worker.count(what)
            except TransactionLostError as exc:
                ledger.rolled_back_ids(ids)
                worker.surfaced(exc, what)
                txn.rollback()
            except OutcomeUnknownError as exc:
                ledger.outcome_unknown(ids)
                worker.surfaced(exc, what)
                if what == "transaction":
                    txn.rollback()  # acknowledged: until then every use raises it again
            except Exception as exc:  # counted and shown: the report fails on any of these
                ledger.outcome_unknown(ids)
                worker.surfaced(exc, what)
                with contextlib.suppress(Exception):
                    txn.rollback()
        return _recoveries(auto) + _recoveries(txn), txn.stats.transactions_replayed
    finally:
        auto.close()
        txn.close()


def _policies(replay: bool) -> list[Any] | None:
    return [*default_policies(), ReplayTransaction()] if replay else None


def _recoveries(conn: Any) -> int:
    stats = conn.stats
    return int(stats.reconnects + stats.statement_resends)


async def _async_worker(
    kwargs: dict[str, Any], worker: _Worker, deadline: float, replay: bool = False
) -> tuple[int, int]:
    kwargs = {**kwargs, "db": kwargs["database"]}
    del kwargs["database"]  # aiomysql's spelling is db=
    auto = await aio.connect(aiomysql.connect, **kwargs, autocommit=True)
    txn = await aio.connect(aiomysql.connect, **kwargs, policies=_policies(replay))
    ledger = worker.ledger
    try:
        while time.monotonic() < deadline:
            what, ids = worker.plan()
            try:
                if what == "autocommit write":
                    async with auto.cursor() as cur:
                        await cur.execute(_INSERT, (ids[0],))
                    ledger.acknowledge(ids)
                elif what == "executemany":
                    async with auto.cursor() as cur:
                        await cur.executemany(_INSERT, [(uid,) for uid in ids])
                    ledger.acknowledge(ids)
                elif what == "transaction":
                    async with txn.cursor() as cur:
                        for uid in ids:
                            await cur.execute(_INSERT, (uid,))
                    await txn.commit()
                    ledger.acknowledge(ids)
                else:
                    async with auto.cursor() as cur:
                        await cur.execute(
                            f"SELECT COUNT(*) FROM {_TABLE} WHERE uid LIKE %s",
                            (worker.name + "-%",),
                        )
                        await cur.fetchall()
                worker.count(what)
            except TransactionLostError as exc:
                ledger.rolled_back_ids(ids)
                worker.surfaced(exc, what)
                await txn.rollback()
            except OutcomeUnknownError as exc:
                ledger.outcome_unknown(ids)
                worker.surfaced(exc, what)
                if what == "transaction":
                    await txn.rollback()  # acknowledged: until then every use raises it again
            except Exception as exc:
                ledger.outcome_unknown(ids)
                worker.surfaced(exc, what)
                with contextlib.suppress(Exception):
                    await txn.rollback()
        return _recoveries(auto) + _recoveries(txn), txn.stats.transactions_replayed
    finally:
        auto.close()
        txn.close()


def _async_workers(
    kwargs: dict[str, Any],
    workers: list[_Worker],
    deadline: float,
    out: list[tuple[int, int]],
    replay: bool = False,
) -> None:
    async def main() -> list[tuple[int, int]]:
        return list(
            await asyncio.gather(*(_async_worker(kwargs, w, deadline, replay) for w in workers))
        )

    out.extend(asyncio.run(main()))


def _killer(
    kwargs: dict[str, Any],
    stop: threading.Event,
    report: SoakReport,
    interval: float,
    seed: int,
    server: MariaDBServer | None = None,
) -> None:
    """Every ~``interval`` s, kill one of the soak's sessions at random; if the server we
    started died, say so and start it again (InnoDB recovers what was committed)."""
    rng = random.Random(seed)
    admin: Any = None
    try:
        while not stop.wait(rng.uniform(0.5, 1.5) * interval):
            if _revive(server, report):
                continue
            try:
                if admin is None:
                    admin = pymysql.connect(**{**kwargs, "autocommit": True})
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT ID FROM information_schema.PROCESSLIST "
                        "WHERE DB = %s AND ID <> CONNECTION_ID()",
                        (kwargs["database"],),
                    )
                    ids = [row[0] for row in cur.fetchall()]
                    if ids:
                        cur.execute(f"KILL CONNECTION {int(rng.choice(ids))}")
                        report.faults += 1
            except pymysql.err.OperationalError as exc:
                if exc.args[0] == 1094:  # unknown thread: it ended meanwhile
                    continue
                with contextlib.suppress(Exception):  # the server is gone or restarting
                    admin.close()
                admin = None
    finally:
        if admin is not None:
            admin.close()


def _revive(server: MariaDBServer | None, report: SoakReport) -> bool:
    """Start the server again if it died; whether it had."""
    process = None if server is None else server.process
    if server is None or process is None or process.poll() is None:
        return False
    report.crashes.append(f"mariadbd exited with {process.returncode} and was started again")
    server.start()
    return True


def _prepare(kwargs: dict[str, Any], replay: bool = False) -> dict[str, Any]:
    """The soak's table; with ``replay``, without an AUTO_INCREMENT id (a replayed INSERT
    would get another one than the caller saw, and diverge: see the Transactions page)."""
    admin = pymysql.connect(**{**kwargs, "autocommit": True})
    try:
        with admin.cursor() as cur:
            database = kwargs.get("database") or _DATABASE
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
            cur.execute(f"DROP TABLE IF EXISTS {database}.{_TABLE}")
            key = "" if replay else "id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            cur.execute(
                f"CREATE TABLE {database}.{_TABLE} ({key}uid VARCHAR(64) NOT NULL, KEY (uid)) "
                "ENGINE=InnoDB"
            )
    finally:
        admin.close()
    return {**kwargs, "database": database}


def _stored(kwargs: dict[str, Any]) -> list[str]:
    conn = pymysql.connect(**kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT uid FROM {_TABLE}")  # repeats kept: duplicates count
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def run(
    kwargs: dict[str, Any],
    *,
    threads: int = 8,
    tasks: int = 8,
    seconds: float = 600.0,
    kill_every: float = 0.1,
    seed: int = 1,
    server: MariaDBServer | None = None,
    replay: bool = False,
) -> SoakReport:
    """Soak against the server of ``kwargs`` (PyMySQL's; a database of its own is made);
    ``replay``: the transactions run with ``ReplayTransaction``."""
    if threads < 0 or tasks < 0 or threads + tasks == 0:
        raise ValueError(f"threads={threads}, tasks={tasks}: at least one client is needed")
    if seconds <= 0 or kill_every <= 0:
        raise ValueError("seconds and kill_every must be > 0")
    kwargs = _prepare(kwargs, replay)
    ledger = WriteLedger()
    report = SoakReport(seconds=seconds, threads=threads, tasks=tasks, replay=replay)
    deadline = time.monotonic() + seconds
    sync = [_Worker(ledger, report, f"t{i}", seed * 1000 + i) for i in range(threads)]
    tasked = [_Worker(ledger, report, f"a{i}", seed * 1000 + 500 + i) for i in range(tasks)]
    recoveries: list[tuple[int, int]] = []
    failures: list[BaseException] = []

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # a client that crashed: shown, and the run fails
            failures.append(exc)

    workers = [
        threading.Thread(
            target=guarded,
            args=(lambda w=w: recoveries.append(_sync_worker(kwargs, w, deadline, replay)),),
        )
        for w in sync
    ]
    if tasked:
        workers.append(
            threading.Thread(
                target=guarded,
                args=(_async_workers, kwargs, tasked, deadline, recoveries, replay),
            )
        )
    stop = threading.Event()
    killer = threading.Thread(
        target=guarded, args=(_killer, kwargs, stop, report, kill_every, seed, server)
    )
    for thread in workers:
        thread.start()
    killer.start()
    for thread in workers:
        thread.join()
    stop.set()
    killer.join()
    for exc in failures:
        report.surfaced[f"client crashed: {_kind(exc)}"] += 1
    report.recoveries = sum(done for done, _ in recoveries)
    report.replayed = sum(replayed for _, replayed in recoveries)
    _revive(server, report)
    report.check = ledger.check(_stored(kwargs))
    return report


@contextlib.contextmanager
def _server(dsn: str | None) -> Iterator[tuple[dict[str, Any], MariaDBServer | None]]:
    if dsn:
        from .__main__ import _mariadb

        with _mariadb(dsn) as (kwargs, _):
            yield kwargs, None
        return
    with MariaDBServer() as server:
        yield server.connect_kwargs(), server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--dsn", help="an existing MariaDB/MySQL: mysql://user:password@host:port")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=0.1, help="seconds (default 0.1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--replay", action="store_true", help="the transactions run with ReplayTransaction()"
    )
    args = parser.parse_args(argv)
    # The kills make a warning each: the report counts them instead.
    logging.getLogger("resilient_dbapi").setLevel(logging.ERROR)
    with _server(args.dsn) as (kwargs, server):
        print(
            f"soaking: {args.threads} threads + {args.tasks} tasks for {args.minutes} min, "
            f"a kill every ~{args.kill_every} s...",
            file=sys.stderr,
        )
        try:
            report = run(
                kwargs,
                threads=args.threads,
                tasks=args.tasks,
                seconds=args.minutes * 60,
                kill_every=args.kill_every,
                seed=args.seed,
                server=server,
                replay=args.replay,
            )
        except ValueError as exc:
            parser.error(str(exc))
    print(report.markdown())
    print("OK: nothing lost, nothing duplicated" if report.ok else "VIOLATION", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
