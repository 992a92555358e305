"""Shared by the fuzz suites (`test_fuzz_*.py`): Hypothesis profiles and the one property.

The property: bad input ends in a `UserError` whose message is one short line (or, from the
server, a 4xx JSON error); any other exception is a bug. Profiles, chosen with the environment
variable CONVSCOPE_FUZZ: `ci` (default: few examples, seconds per suite) and `long` (`make fuzz`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from convscope.errors import UserError

MAX_MESSAGE = 600  # characters: a sentence naming a path, a field and a few numbers

_COMMON = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile("ci", max_examples=15, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=4500, **_COMMON)  # about 12 minutes on 2 quiet cores
settings.load_profile(os.environ.get("CONVSCOPE_FUZZ", "ci"))


def assert_one_sentence(error: UserError) -> str:
    message = str(error)
    assert message and "\n" not in message, f"a message of several lines: {message!r}"
    assert len(message) <= MAX_MESSAGE, f"a message of {len(message)} characters: {message[:200]!r}..."
    assert "Traceback" not in message
    return message


def valid_or_user_error(call, *args, **kwargs):
    """The property: `call` returns, or raises a one-line `UserError`. Any other exception fails the test."""
    try:
        return call(*args, **kwargs)
    except UserError as error:
        assert_one_sentence(error)
        return None


def scaled(share: float) -> settings:
    """The loaded profile's example count times `share` (at least 5): for properties whose
    every example trains, serves or reads a whole run, so `make fuzz` stays near 12 minutes."""
    return settings(max_examples=max(5, int(settings.default.max_examples * share)))
