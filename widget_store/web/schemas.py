"""Request and response bodies, so /docs shows the real shapes and FastAPI checks what comes in
and goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field

from ..shop.tables import OrderStatus, RefundStatus, as_utc


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, in words")


class ProductOut(BaseModel):
    product_id: int
    product: str
    description: str
    inventory: int = Field(ge=0)
    price: float


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class OrderOut(BaseModel):
    order_id: int
    order_status: int = Field(description="-1 CANCELLED, 0 PENDING, 2 PAID, 1 DISPATCHED")
    last_update_time: UtcDatetime
    progress_remaining: int = Field(ge=0, description="Dispatch steps left, 10 down to 0")
    created_at: UtcDatetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        """The status code's name, for people."""
        return OrderStatus(self.order_status).name


class CheckoutOut(BaseModel):
    """Where a shopper's checkout stands, looked up by its key (after a reload, say)."""

    order_id: int
    payment_id: str | None = Field(description="None when the widget was sold out")
    order_status: int
    status: str
    stripe_payment_intent: str | None = Field(
        default=None,
        description="Stripe mode: the checkout's PaymentIntent (absent, or null, otherwise)",
    )
    stripe_client_secret: str | None = Field(
        default=None,
        description="Stripe mode: the PaymentIntent's client secret, for the shopper's Stripe.js "
        "(a card that asks for authentication); only ever answered to the holder of the key",
    )


class CardIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    token: str = Field(
        min_length=5,
        max_length=255,
        pattern=r"^tok_[A-Za-z0-9_]+$",
        description="A Stripe.js card token (`stripe.createToken(card)`), made with the store's "
        "publishable key",
    )


class CardOut(BaseModel):
    status: str = Field(
        description="The PaymentIntent's status once confirmed: succeeded or processing (the "
        "webhook settles the checkout shortly), or requires_action (the card asks the shopper "
        "to authenticate: Stripe.js's confirmCardPayment with the client secret)"
    )


class StripeEventOut(BaseModel):
    """What the store did with one Stripe webhook event."""

    received: bool = True
    event_id: str
    type: str
    outcome: str = Field(
        description="paid, failed, refund_due, mismatch, unknown_payment, ended, or ignored (a "
        "type the store does not use)"
    )
    payment_id: str | None = None
    order_id: int | None = None
    detail: str | None = None
    duplicate: bool = Field(
        default=False, description="The same event id was received before: nothing changed"
    )


class StripePageOut(BaseModel):
    """What the page needs to take a card in Stripe mode."""

    publishable_key: str
    js_url: str = Field(description="Where the page loads Stripe.js from")


class ExecutorOut(BaseModel):
    executor_id: str
    alive: bool
    pid: int
    host: str
    alive_since: datetime
    last_seen: datetime
    taken_over_by: str | None
    taken_over_at: datetime | None
    workflows_taken_over: int


class HealthOut(BaseModel):
    status: str
    pid: int = Field(description="The serving process; it changes with every restart")
    started_at: datetime
    restart_count: int = Field(description="How many times the supervisor restarted the server")
    workflows_recovered: int = Field(
        description="This executor id's workflows DBOS re-enqueued at this start: any live "
        "process may run them"
    )
    workflows_run_after_recovery: int | None = Field(
        default=None,
        description="Recovered workflows (of any executor: a restart or a takeover) that this "
        "process claimed and ran since it started",
    )
    executor_id: str
    executors: list[ExecutorOut] = Field(
        default_factory=list,
        description="Every executor id known (Postgres): alive or not, taken over by whom",
    )
    application_version: str
    database: str
    demo: bool
    sandbox: bool = Field(description="Whether the sandbox payment provider (/sandbox) is on")
    stripe: StripePageOut | None = Field(
        default=None, description="Stripe mode with a publishable key: the page takes a card"
    )


class WorkflowOut(BaseModel):
    workflow_id: str
    name: str
    status: str
    created_at: datetime | None
    updated_at: datetime | None
    recovery_attempts: int | None = Field(
        description="DBOS's count of this workflow's starts, the first included"
    )
    recoveries: int | None = Field(
        description="Times it was resumed after its process stopped: recovery_attempts - 1"
    )
    executor_id: str | None
    current_step: str | None = Field(
        default=None, description="The last step recorded so far, if it was asked for"
    )


class StepOut(BaseModel):
    step_id: int
    name: str
    output: Any = None
    error: str | None = None
    child_workflow_id: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class LoadIn(BaseModel):
    # Strict: JSON integers only (no true/false, no 1.0, no "3"), and no field unknown.
    model_config = ConfigDict(strict=True, extra="forbid")

    shoppers: int = Field(ge=1, le=64, description="Simulated shoppers buying at once")
    pay_weight: int = Field(default=8, ge=0, le=100, description="Relative share that pay")
    decline_weight: int = Field(default=1, ge=0, le=100, description="... that decline")
    abandon_weight: int = Field(default=1, ge=0, le=100, description="... that walk away")


class LoadOut(BaseModel):
    running: bool
    generation: int
    shoppers: int
    pay_weight: int
    decline_weight: int
    abandon_weight: int


class RefundOut(BaseModel):
    """Money received for a checkout that had already ended: due until it is refunded."""

    payment_id: str
    order_id: int
    amount: float = Field(description="The order's price, as received")
    reason: str = Field(
        description="How the checkout had ended: expired, cancelled, failed, released, stopped "
        "or out_of_stock"
    )
    provider: str = Field(description="Who took the money: webhook (the signed webhook), or stripe")
    provider_payment_id: str | None = Field(
        default=None, description="The provider's own id for the payment, where it has one"
    )
    received_at: UtcDatetime
    status: RefundStatus = Field(description="due, or refunded")
    refunded_at: UtcDatetime | None = None
    refunded_by: str | None = Field(
        default=None, description="operator, or the provider that refunded it (stripe)"
    )
    refund_reference: str | None = Field(
        default=None, description="The provider's id for the refund, or the operator's note"
    )


class RefundIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",
        description="The provider's id for the refund (or a note), kept with it",
    )
