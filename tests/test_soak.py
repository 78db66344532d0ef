"""The short soak (30 s): threads and asyncio tasks write, commit and read while a killer
ends one of their sessions every ~100 ms; the table must hold exactly what was
acknowledged (plus writes of unknown outcome, once at most). The 10-minute run is
``python -m benchmarks.soak``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest

from benchmarks import soak
from resilient_dbapi.testing import WriteLedger

pytestmark = pytest.mark.server


def test_nothing_lost_nothing_duplicated_under_a_kill_every_100_ms(
    own_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A server of its own: MariaDB 10.11 has segfaulted under this storm of KILLs (once, in
    # a 10-minute run); the soak then starts it again and the check still holds.
    caplog.set_level("ERROR", logger="resilient_dbapi")
    report = soak.run(
        own_server.connect_kwargs(),
        threads=4,
        tasks=4,
        seconds=30,
        kill_every=0.1,
        server=own_server,
    )
    check = report.check
    assert check is not None
    assert not check.duplicates and not check.lost_acknowledged and not check.unexpected
    assert not report.unexpected_errors, report.surfaced
    assert report.faults >= 100 and report.recoveries >= report.faults // 2
    assert sum(report.operations.values()) >= 2000
    assert report.ok


def test_the_same_kills_break_plain_pymysql(server: Any) -> None:
    kwargs = soak._prepare(server.connect_kwargs())
    ledger, errors, stop = WriteLedger(), [], threading.Event()
    report = soak.SoakReport(seconds=3, threads=1, tasks=0)
    killer = threading.Thread(target=soak._killer, args=(kwargs, stop, report, 0.1, 1))
    killer.start()
    conn = pymysql.connect(**kwargs, autocommit=True)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not errors:
            uid = ledger.new_id()
            try:
                conn.cursor().execute(soak._INSERT, (uid,))
            except pymysql.err.Error as exc:  # the application sees the loss
                errors.append(exc)
    finally:
        stop.set()
        killer.join()
        conn.close()
    lost = pymysql.err.OperationalError | pymysql.err.InterfaceError
    assert errors and isinstance(errors[0], lost)


def test_the_ledger_finds_each_kind_of_violation() -> None:
    ledger = WriteLedger()
    ledger.acknowledge(["a", "b", "c"])
    ledger.outcome_unknown(["u1", "u2"])
    ledger.rolled_back_ids(["r"])
    assert ledger.check(["a", "b", "c", "u1"]).ok
    bad = ledger.check(["a", "a", "c", "u1", "r", "x"])
    assert bad.duplicates == {"a": 2}
    assert bad.lost_acknowledged == {"b"}
    assert bad.unexpected == {"r", "x"}  # a rolled-back write stored, a write nobody made
    assert not bad.ok


def test_with_replay_most_transactions_lost_before_commit_go_on(
    own_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The same storm with ReplayTransaction on the transactions: still nothing lost or
    doubled, and most transactions the kills caught before COMMIT went on after a verified
    replay instead of surfacing as TransactionLostError (the soak without replay above
    surfaces every one of them)."""
    caplog.set_level("ERROR", logger="resilient_dbapi")
    report = soak.run(
        own_server.connect_kwargs(),
        threads=4,
        tasks=4,
        seconds=20,
        kill_every=0.1,
        server=own_server,
        replay=True,
    )
    assert report.ok, (report.surfaced, report.check)
    assert report.replayed >= 3
    share = report.recovered_share
    assert share is not None and share >= 0.5, (report.replayed, report.surfaced)
    assert "replayed" in report.markdown()
