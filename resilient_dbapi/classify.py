"""Error classification as data: a table from driver error codes to what they mean."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["MYSQL_ERRORS", "ErrorKind", "ErrorTable"]


class ErrorKind(enum.Enum):
    """What an error says about the connection and the statement."""

    DEAD = "dead"
    """The connection is gone."""
    CONNECT_TRANSIENT = "connect_transient"
    """Connecting failed for a reason that may pass: retry with backoff."""
    CONNECT_FATAL = "connect_fatal"
    """Connecting will keep failing (bad credentials, unknown database): never retry."""
    TRANSACTION_ROLLED_BACK = "transaction_rolled_back"
    """The server rolled the transaction back (deadlock); the connection is fine."""
    STATEMENT_ABORTED = "statement_aborted"
    """The statement was stopped (timeout, KILL QUERY); the connection is fine."""
    READ_ONLY = "read_only"
    """The server refuses writes (a replica, or a primary during failover)."""
    OTHER = "other"
    """Anything else: passed to the caller unchanged."""


@dataclass(frozen=True)
class ErrorTable:
    """An immutable map from error code to :class:`ErrorKind`.

    Extend or trim it with :meth:`adding` and :meth:`removing`, and put the result in the
    ``policies`` list to replace the driver's default table.
    """

    codes: Mapping[int, ErrorKind] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for code, kind in self.codes.items():
            if not isinstance(code, int) or isinstance(code, bool):
                raise TypeError(f"ErrorTable: error codes must be int, got {code!r}")
            if not isinstance(kind, ErrorKind):
                raise TypeError(f"ErrorTable: code {code} maps to {kind!r}, not an ErrorKind")
        object.__setattr__(self, "codes", MappingProxyType(dict(self.codes)))

    @classmethod
    def of(cls, spec: Mapping[ErrorKind, Iterable[int]]) -> ErrorTable:
        """Build a table from ``{kind: codes}``."""
        return cls({code: kind for kind, codes in spec.items() for code in codes})

    def kind(self, code: int | None) -> ErrorKind:
        if code is None:
            return ErrorKind.OTHER
        return self.codes.get(code, ErrorKind.OTHER)

    def adding(self, kind: ErrorKind, *codes: int) -> ErrorTable:
        """A copy in which ``codes`` mean ``kind``."""
        return ErrorTable({**self.codes, **dict.fromkeys(codes, kind)})

    def removing(self, *codes: int) -> ErrorTable:
        """A copy in which ``codes`` mean nothing special (:attr:`ErrorKind.OTHER`)."""
        return ErrorTable({c: k for c, k in self.codes.items() if c not in codes})

    def __hash__(self) -> int:
        return hash(frozenset(self.codes.items()))


# MySQL / MariaDB. Code 0 is PyMySQL's InterfaceError(0, '') on a connection with no socket.
MYSQL_ERRORS = ErrorTable.of(
    {
        ErrorKind.DEAD: [0, 2006, 2013, 2014, 2045, 2055, 4031, 1927, 1053, 1077, 1078, 1079, 1080],
        ErrorKind.CONNECT_TRANSIENT: [2002, 2003, 1040, 1203, 1226],
        ErrorKind.CONNECT_FATAL: [1045, 1049],
        ErrorKind.TRANSACTION_ROLLED_BACK: [1213],
        ErrorKind.STATEMENT_ABORTED: [3024, 1969, 1317, 1205],
        ErrorKind.READ_ONLY: [1290, 1836, 1792],
    }
)
