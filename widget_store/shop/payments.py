"""Payment webhook signatures: `Widget-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

SIGNATURE_HEADER = "Widget-Signature"
TOLERANCE_S = 300
# A Unix time in seconds has 10 digits until the year 2286; more cannot be a real timestamp,
# and an unbounded one would overflow the comparison with the clock.
MAX_TIMESTAMP_DIGITS = 12

PaymentStatus = Literal["paid", "failed"]


class SignatureError(ValueError):
    """The webhook's signature is missing, malformed, stale or wrong."""


def _digest(secret: str, timestamp: int, payment_id: str, payment_status: str) -> str:
    message = f"{timestamp}.{payment_id}.{payment_status}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, payment_id: str, payment_status: str, *, now: float | None = None) -> str:
    """The header value a payment provider sends with this delivery."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={_digest(secret, timestamp, payment_id, payment_status)}"


def verify(
    secret: str,
    header: str | None,
    payment_id: str,
    payment_status: str,
    *,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless `header` signs exactly this payment id and status, recently."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header")
        fields.setdefault(key, []).append(value)
    given_t = fields.get("t", [""])[0]
    if not (given_t.isascii() and given_t.isdigit() and len(given_t) <= MAX_TIMESTAMP_DIGITS):
        raise SignatureError(f"{SIGNATURE_HEADER} has no valid timestamp")
    timestamp = int(given_t)
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_S:
        raise SignatureError(f"{SIGNATURE_HEADER} timestamp is more than {TOLERANCE_S} s off")
    expected = _digest(secret, timestamp, payment_id, payment_status)
    # Any v1 may match (a provider rotating secrets sends two); each compare is constant-time.
    if not any(
        hmac.compare_digest(expected.encode(), given.encode()) for given in fields.get("v1", [])
    ):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match this payment")
