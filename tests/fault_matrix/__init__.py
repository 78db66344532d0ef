"""The fault matrix (issue 7): every fault x every operation, through the sync proxy over
PyMySQL and the asyncio proxy over aiomysql, against a real MariaDB.

A test-support package, split by concern; each module imports only modules listed
before it:

- ``common``: the outcome labels, the cases' limits and sizes, the modes, ``Servers``;
- ``trials``: one case through the sync proxy (``Trial``), what it saw (``Observation``),
  and what it runs as it sees it (``Operation``, ``Fault``, ``Row``);
- ``operations``: the operations in their contexts (sync);
- ``faults``: the faults and their expected outcomes;
- ``trials_async``: one case through the asyncio proxy (``AsyncTrial``), ``LoopThread``;
- ``run``: a row, a case, the whole matrix;
- ``render``: the Markdown report;
- ``__main__``: the command line, ``python -m benchmarks.matrix``.

``tests/test_fault_matrix.py`` asserts every case.
"""

from __future__ import annotations

from .common import ASYNC, MODES, SYNC, Servers
from .faults import DIFFERS, FAULTS, LatencyProxy
from .operations import OPERATIONS
from .render import render
from .run import run_case, run_matrix, run_row
from .trials import Fault, Observation, Operation, Row, Trial
from .trials_async import ASYNC_STEPS, AsyncTrial, LoopThread

__all__ = [
    "ASYNC",
    "ASYNC_STEPS",
    "DIFFERS",
    "FAULTS",
    "MODES",
    "OPERATIONS",
    "SYNC",
    "AsyncTrial",
    "Fault",
    "LatencyProxy",
    "LoopThread",
    "Observation",
    "Operation",
    "Row",
    "Servers",
    "Trial",
    "render",
    "run_case",
    "run_matrix",
    "run_row",
]
