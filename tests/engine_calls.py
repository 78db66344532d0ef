"""The engine's event methods in the words of its unit tests: a statement of a kind, a
failure of an error kind (sent as a MySQL code of that kind)."""

from __future__ import annotations

from typing import Any

from resilient_dbapi import ErrorKind
from resilient_dbapi.engine import Engine, Op, Verdict
from resilient_dbapi.hosts import Role
from resilient_dbapi.statements import Statement, StatementKind

CODES = {
    ErrorKind.DEAD: 2013,
    ErrorKind.OTHER: 1064,
    ErrorKind.STATEMENT_ABORTED: 1317,
    ErrorKind.READ_ONLY: 1290,
    ErrorKind.TRANSACTION_ROLLED_BACK: 1213,
    ErrorKind.NOT_READY: 1047,
}
_ROLES = {ErrorKind.READ_ONLY: Role.READ_ONLY, ErrorKind.NOT_READY: Role.NOT_READY}


def S(kind: StatementKind, commits: bool | None = False, atomic: bool = True) -> Statement:
    """A statement record of ``kind``."""
    return Statement(kind, commits, atomic)


def fail(
    e: Engine,
    op: Op,
    kind: StatementKind,
    error: ErrorKind,
    *,
    code: Any = None,
    commits: bool | None = False,
    atomic: bool = True,
    **facts: Any,
) -> Verdict:
    """``e.failed()`` for an error of ``error``'s kind; a READ_ONLY (NOT_READY) refusal
    comes from a server that, asked, is read-only (not ready) now."""
    return e.failed(
        op,
        S(kind, commits, atomic),
        CODES[error] if code is None else code,
        role=_ROLES.get(error),
        **facts,
    )
