"""Webhook signatures: what a receiver checks."""

from __future__ import annotations

import pytest

from consumers.webhook_signature import SignatureError, sign, verify

SECRET = "whsec_test"
BODY = b'{"trigger_id": "t1"}'


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, header, BODY, now=1_700_000_100) == 1_700_000_000


@pytest.mark.parametrize(
    ("secret", "body", "now", "message"),
    [
        ("other", BODY, 1_700_000_000, "does not match"),
        (SECRET, BODY + b" ", 1_700_000_000, "does not match"),
        (SECRET, BODY, 1_700_000_000 + 301, "outside the 300s tolerance"),
        (SECRET, BODY, 1_700_000_000 - 301, "outside the 300s tolerance"),
    ],
)
def test_tampering_a_wrong_secret_or_a_replay_fail(
    secret: str, body: bytes, now: int, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(secret, sign(SECRET, BODY, 1_700_000_000), body, now=now)


def test_a_re_stamped_signature_cannot_be_forged_by_changing_t() -> None:
    header = sign(SECRET, BODY, 1_700_000_000).replace("t=1700000000", "t=1700000500")
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, header, BODY, now=1_700_000_500)


@pytest.mark.parametrize("header", [None, "", "garbage", "v1=abc", "t=x,v1=abc"])
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, now=1_700_000_000)
