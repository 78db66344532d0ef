"""The fault matrix (issue 7): every fault x every operation, through the sync proxy over
PyMySQL and the asyncio proxy over aiomysql, against real MariaDB servers.

Each case runs on a database of its own; its outcome is asserted against the safety
rules (docs/safety.md), and its table is checked afterwards: every acknowledged write
present once, nothing of a lost or rolled-back transaction, a write of unknown outcome
applied at most once. The cases live in ``tests/fault_matrix`` (the asyncio ones in
``tests/fault_matrix/trials_async.py``); the cases of one fault, sync and asyncio, run
side by side (once, at the first of them), the faults that restart, stop or reconfigure
the server on a server of this module's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient_dbapi.testing import MariaDBServer

from .fault_matrix import (
    ASYNC,
    DIFFERS,
    FAULTS,
    MODES,
    OPERATIONS,
    SYNC,
    AsyncTrial,
    Fault,
    LoopThread,
    Observation,
    Operation,
    Servers,
    Trial,
    run_row,
)

pytestmark = pytest.mark.server

Observe = Callable[[str, Fault, Operation], Observation]


def _cases() -> Iterator[Any]:
    for fault in FAULTS:
        for mode in MODES:
            for op in OPERATIONS:
                reason = DIFFERS.get((mode, fault.name, op.name))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                yield pytest.param(
                    mode, fault, op, id=f"{mode}-{fault.name}-{op.name}", marks=marks
                )


@pytest.fixture(scope="module")
def servers(server: Any) -> Iterator[Servers]:
    with MariaDBServer() as own:
        yield Servers(shared=server, own=own)


@pytest.fixture(scope="module")
def observe(servers: Servers) -> Observe:
    """The observation of a case; a fault's row (both proxies) runs at the first of its
    cases."""
    rows: dict[str, dict[str, dict[str, Observation]]] = {}

    def get(mode: str, fault: Fault, op: Operation) -> Observation:
        if fault.name not in rows:
            rows[fault.name] = run_row(fault, servers)
        return rows[fault.name][mode][op.name]

    return get


@pytest.mark.parametrize(("mode", "fault", "op"), list(_cases()))
def test_fault_matrix(mode: str, fault: Fault, op: Operation, observe: Observe) -> None:
    observed = observe(mode, fault, op)
    assert observed.outcome == fault.outcomes(mode)[op.name], (
        observed.detail,
        observed.problems,
    )
    assert observed.problems == []


@pytest.mark.parametrize("mode", MODES)
def test_the_table_check_catches_a_duplicate_a_lost_write_and_a_stray(
    server: Any, mode: str
) -> None:
    """The invariant checker is not vacuous: each kind of violation is reported."""
    with LoopThread() as loop:
        trial = (
            Trial(Fault(), OPERATIONS[1], server)
            if mode == SYNC
            else AsyncTrial(Fault(), OPERATIONS[1], server, loop)
        )
        assert trial.mode == mode in (SYNC, ASYNC)
        trial.create()
        try:
            trial.open()
            admin = server.admin()
            with admin.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {trial.database}.t (uid) VALUES (%s)",
                    [("twice",), ("twice",), ("stray",)],
                )
            admin.close()
            trial.acknowledged |= {"twice", "lost"}
            trial.outcome = "ok"
            trial.check()
        finally:
            trial.close()
    assert trial.problems == [
        "applied more than once: ['twice']",
        "acknowledged but missing: ['lost']",
        "stored but never acknowledged nor unknown: ['stray']",
    ]
