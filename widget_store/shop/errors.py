"""The store's domain errors; each carries the HTTP status it maps to, so routes just raise."""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base of every error a client can cause or must wait out; the message is the `detail`."""

    status_code = 500
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(StoreError):
    status_code = 404


class OutOfStock(NotFound):
    def __init__(self) -> None:
        super().__init__("Out of stock: the widget is sold out")


class InvalidInput(StoreError):
    status_code = 422


class BadRequest(StoreError):
    """A request the store cannot take as sent: a Stripe webhook whose signature fails."""

    status_code = 400


class Unauthorized(StoreError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class BadSignature(StoreError):
    status_code = 401


class PaymentDeclined(StoreError):
    """The payment provider refused the card; the checkout ends when its webhook says so."""

    status_code = 402


class Conflict(StoreError):
    status_code = 409


class CheckoutEnded(Conflict):
    """A settlement for a checkout that had already ended; `ended_as` is how it ended (its
    outcome, or "stopped" for one an operator cancelled or that ended in ERROR), and `refund`
    the refund due its payment was recorded as, if it was money for it."""

    def __init__(self, detail: str, ended_as: str, refund: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.ended_as = ended_as
        self.refund = refund


class TooManyUnpaid(StoreError):
    """The client already holds its cap of unpaid checkouts; retry once one of them ends."""

    status_code = 429

    def __init__(self, cap: int, retry_after_s: int) -> None:
        super().__init__(
            f"You already hold {cap} unpaid checkouts: pay or cancel one, or retry in "
            f"{retry_after_s} s when the oldest expires"
        )
        self.headers = {"Retry-After": str(retry_after_s)}


class Unavailable(StoreError):
    """Try again shortly: the work is durable and will go on, or the database is away."""

    status_code = 503
    headers = {"Retry-After": "1"}
