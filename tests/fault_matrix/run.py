"""Running the fault matrix: a fault's cases through both proxies side by side (a row),
one case alone, or every fault in turn."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from .common import APP_PASSWORD, APP_USER, ASYNC, MODES, SYNC, Servers, open_admin
from .faults import FAULTS
from .operations import OPERATIONS
from .trials import Fault, Observation, Operation, Row, Trial, each
from .trials_async import AsyncTrial, LoopThread

__all__ = ["run_case", "run_matrix", "run_row"]


def _ensure_app_user(server: Any) -> None:
    admin = open_admin(server)
    try:
        with admin.cursor() as cur:
            cur.execute(
                f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'"
            )
    finally:
        admin.close()


def run_row(
    fault: Fault,
    servers: Servers,
    ops: Sequence[Operation] = OPERATIONS,
    modes: Sequence[str] = MODES,
) -> dict[str, dict[str, Observation]]:
    """Run ``fault`` against each of ``ops`` through the proxy of each of ``modes``, all
    side by side (each case on its own database, the fault injected once for all); the
    observations by mode, then operation name."""
    server = servers.own if fault.own_server else servers.shared
    with contextlib.ExitStack() as stack:
        trials: list[Trial] = []
        for mode in modes:
            if mode == SYNC:
                trials += [Trial(fault, op, server) for op in ops]
            elif mode == ASYNC:
                loop = stack.enter_context(LoopThread())
                trials += [AsyncTrial(fault, op, server, loop) for op in ops]
            else:
                raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        _run_trials(Row(fault, server, trials))
    return {
        mode: {trial.op.name: trial.observation() for trial in trials if trial.mode == mode}
        for mode in modes
    }


def _run_trials(row: Row) -> None:
    fault, server, trials = row.fault, row.server, row.trials
    try:
        if fault.app_user:
            _ensure_app_user(server)
        each(trials, Trial.create)
        try:
            fault.before_connect(row)
            each(trials, Trial.open)
            fault.inject_all(row)
            # An operation that holds a global lock in flight runs after the others.
            alone = [t for t in trials if fault.in_flight and t.op.blocks_commits]
            each([t for t in trials if t not in alone], Trial.perform)
            each(alone, Trial.perform)
        except Exception as exc:
            row.problems.append(f"the fault failed: {exc!r}")
        finally:
            try:
                fault.after_all(row)
            except Exception as exc:
                row.problems.append(f"undoing the fault failed: {exc!r}")
        each(trials, Trial.check)
    finally:
        each(trials, Trial.close, broken_too=True)
        for trial in trials:
            trial.problems.extend(row.problems)
            if not trial.outcome:
                trial.fail("the case did not run")


def run_case(fault: Fault, op: Operation, servers: Servers, mode: str = SYNC) -> Observation:
    """One case alone: ``fault`` under ``op`` through the ``mode`` proxy."""
    return run_row(fault, servers, [op], [mode])[mode][op.name]


def run_matrix(
    servers: Servers,
    faults: Sequence[Fault] = FAULTS,
    progress: Callable[[str], None] | None = None,
    modes: Sequence[str] = MODES,
) -> dict[str, dict[str, dict[str, Observation]]]:
    """Every fault x every operation through each of ``modes``: observations by mode,
    then fault name, then operation name."""
    results: dict[str, dict[str, dict[str, Observation]]] = {mode: {} for mode in modes}
    for fault in faults:
        started = time.monotonic()
        row = run_row(fault, servers, modes=modes)
        for mode in modes:
            results[mode][fault.name] = row[mode]
        if progress is not None:
            progress(f"{fault.name}: {time.monotonic() - started:.1f} s")
    return results
