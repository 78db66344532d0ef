"""``python -m benchmarks.matrix``: the fault matrix on throwaway MariaDB servers; writes
``benchmarks/results/fault_matrix.md`` and prints it. The matrix itself is the
test-support package ``tests/fault_matrix``, which ``tests/test_fault_matrix.py`` asserts.
"""

from __future__ import annotations

from tests.fault_matrix.__main__ import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
