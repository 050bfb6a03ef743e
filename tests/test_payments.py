"""Webhook signatures: the store's signer and verifier against the contract's recipe."""

from __future__ import annotations

import pytest

from widget_store.shop.payments import SignatureError, sign, verify
from widget_store.testing import signature

SECRET = "shh"
NOW = 1_800_000_000


def test_sign_matches_the_contract_recipe() -> None:
    assert sign(SECRET, "pay1", "paid", now=NOW) == signature(SECRET, "pay1", "paid", NOW)


def test_verify_accepts_a_fresh_signature() -> None:
    verify(SECRET, signature(SECRET, "pay1", "paid", NOW - 299), "pay1", "paid", now=NOW)


def test_verify_accepts_any_of_several_v1_values() -> None:
    good = signature(SECRET, "pay1", "paid", NOW).split(",")[1]
    verify(SECRET, f"t={NOW},v1={'0' * 64},{good}", "pay1", "paid", now=NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "timestamp"),
        ("t=soon,v1=abc", "timestamp"),
        ("t=1,v1", "malformed"),
        (signature(SECRET, "pay1", "paid", NOW - 301), "off"),
        (signature(SECRET, "pay1", "paid", NOW + 301), "off"),
        (signature(SECRET, "pay1", "failed", NOW), "does not match"),
        (signature(SECRET, "pay2", "paid", NOW), "does not match"),
        (signature("other", "pay1", "paid", NOW), "does not match"),
        (f"t={NOW}", "does not match"),
        (f"t={NOW},v1=\u00e9", "does not match"),
    ],
)
def test_verify_rejects(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(SECRET, header, "pay1", "paid", now=NOW)
