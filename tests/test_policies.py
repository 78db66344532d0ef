"""Policies are immutable values that refuse bad input with a clear message."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from resilient_dbapi import (
    MYSQL_ERRORS,
    ErrorKind,
    ErrorTable,
    MaxAge,
    PingOnCheckout,
    RetryOnError,
)
from resilient_dbapi.policies import ProfileError, default_policies, load, profile_names

ROOT = Path(__file__).resolve().parent.parent


def test_policies_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PingOnCheckout().idle = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PingOnCheckout(idle=-1), "PingOnCheckout: idle must be >= 0"),
        (lambda: PingOnCheckout(timeout=0), "PingOnCheckout: timeout must be > 0"),
        (lambda: PingOnCheckout(timeout=math.nan), "timeout must be finite"),
        (lambda: PingOnCheckout(idle=1, skip_recent=2), "skip_recent .* must be < idle"),
        (lambda: MaxAge(seconds=0), "MaxAge: seconds must be > 0"),
        (lambda: MaxAge(jitter=0.9), "jitter must be between 0 and 0.5"),
        (lambda: RetryOnError(attempts=0), "attempts must be >= 1"),
        (lambda: RetryOnError(attempts=None, deadline=None), "cannot both be None"),
        (lambda: RetryOnError(deadline=-1), "deadline must be > 0"),
        (lambda: RetryOnError(backoff=2, max_backoff=1), "max_backoff .* must be >= backoff"),
        (lambda: RetryOnError(resend=-1), "resend must be an int >= 0"),
    ],
)
def test_bad_values_name_the_argument_and_the_range(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "make",
    [
        lambda: PingOnCheckout(idle="30"),
        lambda: PingOnCheckout(timeout=True),
        lambda: MaxAge(follow_wait_timeout="yes"),
        lambda: RetryOnError(attempts=2.5),
        lambda: RetryOnError(stop="never"),
    ],
)
def test_wrong_types_raise_type_error(make: object) -> None:
    with pytest.raises(TypeError):
        make()  # type: ignore[operator]


@given(
    idle=st.one_of(st.floats(allow_nan=True), st.integers(), st.none(), st.text()),
    timeout=st.one_of(st.floats(allow_nan=True), st.integers(), st.booleans()),
)
def test_random_values_are_accepted_or_refused_clearly(idle: object, timeout: object) -> None:
    try:
        policy = PingOnCheckout(idle=idle, timeout=timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert "PingOnCheckout:" in str(exc)
    else:
        assert policy.idle >= 0 and policy.timeout > 0
        assert math.isfinite(policy.idle) and math.isfinite(policy.timeout)


ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@given(seconds=ANY, jitter=ANY, follow=ANY)
def test_random_max_age_values(seconds: object, jitter: object, follow: object) -> None:
    try:
        policy = MaxAge(seconds=seconds, jitter=jitter, follow_wait_timeout=follow)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("MaxAge: ")
    else:
        assert policy.seconds > 0 and 0 <= policy.jitter <= 0.5
        assert 0 < policy.lifetime(0.999) <= policy.seconds


@given(attempts=ANY, deadline=ANY, backoff=ANY, max_backoff=ANY, resend=ANY)
def test_random_retry_values(
    attempts: object, deadline: object, backoff: object, max_backoff: object, resend: object
) -> None:
    try:
        policy = RetryOnError(
            attempts=attempts,
            deadline=deadline,
            backoff=backoff,  # type: ignore[arg-type]
            max_backoff=max_backoff,
            resend=resend,
        )  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("RetryOnError: ")
    else:
        wait = policy.connect_wait(1, 0.0)
        assert wait is None or 0 <= wait <= policy.max_backoff + policy.backoff


def test_tenacity_strategies_compose() -> None:
    policy = RetryOnError(
        stop=tenacity.stop_after_attempt(2) | tenacity.stop_after_delay(9),
        wait=tenacity.wait_fixed(0.25),
    )
    assert policy.connect_wait(1, 0.0) == 0.25
    assert policy.connect_wait(2, 0.0) is None


def test_error_table_is_data() -> None:
    assert MYSQL_ERRORS.kind(2013) is ErrorKind.DEAD
    assert MYSQL_ERRORS.kind(1213) is ErrorKind.TRANSACTION_ROLLED_BACK
    assert MYSQL_ERRORS.kind(1045) is ErrorKind.CONNECT_FATAL
    assert MYSQL_ERRORS.kind(None) is ErrorKind.OTHER
    custom = MYSQL_ERRORS.adding(ErrorKind.DEAD, 9999).removing(4031)
    assert custom.kind(9999) is ErrorKind.DEAD and custom.kind(4031) is ErrorKind.OTHER
    assert MYSQL_ERRORS.kind(9999) is ErrorKind.OTHER  # the original is unchanged
    with pytest.raises(TypeError, match="not an ErrorKind"):
        ErrorTable({1: "dead"})  # type: ignore[dict-item]


def test_default_profile_matches_the_defaults() -> None:
    assert load(ROOT / "policies" / "default.toml") == default_policies()
    assert load("web") == load("default") == default_policies()


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.toml")))
def test_every_profile_in_the_policies_folder_loads(path: Path) -> None:
    policies = load(path)
    assert policies
    assert load(path.stem) == policies  # the same profile ships inside the package


def test_the_profiles_differ_as_documented() -> None:
    strict = {type(p): p for p in load("strict")}
    assert strict[RetryOnError].resend == 0 and strict[PingOnCheckout].skip_recent == 0
    assert {type(p): p for p in load("paranoid")}[PingOnCheckout].idle == 0
    batch = {type(p): p for p in load("batch")}
    assert batch[RetryOnError].deadline is not None and batch[RetryOnError].deadline >= 300
    assert set(profile_names()) >= {"default", "web", "batch", "strict", "paranoid"}


def test_unknown_profile_names_list_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"no policy profile named 'fast'.*batch.*strict"):
        load("fast")


def test_malformed_profiles_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("[max_age]\nsecond = 10\n")
    with pytest.raises(ProfileError, match=r"bad.toml.*max_age.second.*allowed: "):
        load(bad_key)
    bad_value = tmp_path / "neg.toml"
    bad_value.write_text("[ping_on_checkout]\ntimeout = -1\n")
    with pytest.raises(ProfileError, match=r"neg.toml.*\[ping_on_checkout\].*timeout must be > 0"):
        load(bad_value)
    with pytest.raises(ProfileError, match="cannot be read"):
        load(tmp_path / "missing.toml")
