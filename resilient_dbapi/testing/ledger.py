"""The invariant checker of the write tests: ``WriteLedger`` books what the client heard of
every write, ``LedgerCheck`` is what the table holds against it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LedgerCheck", "WriteLedger", "error_key"]


@dataclass(frozen=True)
class LedgerCheck:
    """What the table holds against what the client heard (see :class:`WriteLedger`)."""

    stored: int
    duplicates: dict[str, int] = field(default_factory=dict)
    """Ids stored more than once: a write applied twice."""
    lost_acknowledged: frozenset[str] = frozenset()
    """Ids the client saw acknowledged that the table lacks: a lost write."""
    unexpected: frozenset[str] = frozenset()
    """Ids stored that were never acknowledged nor reported of unknown outcome (a rolled
    back transaction that committed after all, or a write nobody reported)."""
    unknown_applied: int = 0
    """Ids reported of unknown outcome that were applied (allowed: once at most)."""

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost_acknowledged or self.unexpected)


class WriteLedger:
    """The client's side of every write, by unique id: acknowledged, of unknown outcome,
    or rolled back. Afterwards the table must hold exactly the acknowledged ids plus any
    subset of the unknown ones, each once, and nothing else. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self.acknowledged: set[str] = set()
        self.unknown: set[str] = set()
        self.rolled_back: set[str] = set()

    def new_id(self, prefix: str = "w") -> str:
        with self._lock:
            self._next += 1
            return f"{prefix}-{self._next}"

    def acknowledge(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.acknowledged.update(ids)

    def outcome_unknown(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.unknown.update(ids)

    def rolled_back_ids(self, ids: Iterable[str]) -> None:
        with self._lock:
            self.rolled_back.update(ids)

    def insert(self, conn: Any, table: str, uid: str) -> Exception | None:
        """Insert ``uid`` into ``table`` through ``conn`` (autocommit on) and book what the
        client heard: acknowledged; ``OutcomeUnknownError``, perhaps applied; any other
        error, not applied (the promise resilient_dbapi makes of the driver's own
        errors, which the check holds it to). Returns the error, None when acknowledged."""
        from ..errors import OutcomeUnknownError

        try:
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table} (uid) VALUES (%s)", (uid,))
        except OutcomeUnknownError as exc:
            self.outcome_unknown([uid])
            return exc
        except Exception as exc:
            self.rolled_back_ids([uid])
            return exc
        self.acknowledge([uid])
        return None

    def check(self, stored: Iterable[str]) -> LedgerCheck:
        """Compare ``stored`` (every id in the table, repeats included) with the ledger."""
        counts = Counter(stored)
        present = set(counts)
        with self._lock:
            acknowledged, unknown = set(self.acknowledged), set(self.unknown)
        return LedgerCheck(
            stored=sum(counts.values()),
            duplicates={uid: n for uid, n in counts.items() if n > 1},
            lost_acknowledged=frozenset(acknowledged - present),
            unexpected=frozenset(present - acknowledged - unknown),
            unknown_applied=len(unknown & present),
        )


def error_key(exc: BaseException) -> str:
    """An error as a drill counts it: its class and code."""
    return f"{type(exc).__name__} {exc.args[0] if exc.args else ''}".rstrip()
