"""aiomysql's own test suite, from its PyPI sdist, through ``resilient_dbapi.aiomysql``:
the tests that fail are exactly those ``tests/aiomysql_suite/expected.toml`` lists (by
design, each with its reason in the README), and the same suite run side by side with
plain aiomysql shows that each of them passes there."""

from __future__ import annotations

import pytest

from .aiomysql_suite import harness

pytestmark = pytest.mark.server


def test_aiomysql_suite_fails_through_the_drop_in_only_where_listed() -> None:
    listed = harness.expected()
    plain, ours = harness.run_both()
    assert plain.passed > 900, plain.tail  # the suite ran, on both targets and both loops
    assert plain.failed == set(listed.plain), plain.tail
    # Each difference listed is one: plain aiomysql passes it.
    assert not set(listed.differs) & plain.failed
    assert ours.failed == set(listed.differs) | set(listed.plain), ours.tail
    assert ours.passed == plain.passed - 4 * len(listed.differs), ours.tail
