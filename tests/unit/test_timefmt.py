"""``parse_named``: the one reading of an optional instant flag or parameter,
shared by the CLI (``ConfigError``) and the HTTP API (422)."""

from __future__ import annotations

import pytest

from engage.cli.app import parse_time_option
from engage.errors import ConfigError
from events.timefmt import parse_iso, parse_named


def test_absent_is_none_and_present_is_microseconds() -> None:
    assert parse_named(None, "--as-of", ConfigError) is None
    assert parse_named("2026-03-01T10:00:00Z", "--as-of", ConfigError) == parse_iso(
        "2026-03-01T10:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [("soon", "is not an ISO 8601 timestamp"), ("2026-03-01T10:00:00", "has no time zone")],
)
def test_a_bad_instant_names_the_option_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_time_option(text, "--as-of")
    message = str(caught.value)
    assert message.startswith("--as-of: ") and reason in message
