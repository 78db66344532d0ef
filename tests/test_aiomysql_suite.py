"""aiomysql's own test suite, from its PyPI sdist, through ``resilient_dbapi.aiomysql``:
the tests that fail are exactly those ``tests/aiomysql_suite/expected.toml`` lists (by
design, each with its reason in docs/integrations), and the same suite run side by side with
plain aiomysql shows that each of them passes there."""

from __future__ import annotations

import pytest

from .aiomysql_suite import harness

pytestmark = pytest.mark.server


def test_aiomysql_suite_fails_through_the_drop_in_only_where_listed() -> None:
    listed = harness.expected()
    plain, ours = harness.run_both()
    assert plain.passed > 900, plain.tail  # the suite ran, on both targets and both loops
    assert ours.passed > 900, ours.tail
    want_plain = set(listed.plain)
    want_ours = set(listed.differs) | want_plain
    odd = (plain.failed ^ want_plain) | (ours.failed ^ want_ours)
    if odd:
        # Two suites on two servers share two cores: a timing flake passes the second
        # time, a real difference fails again.
        plain_again, ours_again = harness.run_both(sorted(odd))
        plain = harness.again(plain, plain_again, odd)
        ours = harness.again(ours, ours_again, odd)
    assert plain.failed == want_plain, plain.tail
    # Each difference listed is one: plain aiomysql passes it.
    assert not set(listed.differs) & plain.failed
    assert ours.failed == want_ours, ours.tail
