"""A fake Stripe for the tests: localstripe as a real server process on a free port
(testing/fake_stripe_server.py says how it differs from plain localstripe), started and stopped
here, and the settings that point a store at it.

The tests talk to it as the store does, through the `stripe` library, and as a shopper's
browser does, through its Stripe.js (`<base>/js.stripe.com/v3/`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import stripe

from . import free_port, wait_until

SECRET_KEY = "sk_test_widgetstore"
PUBLISHABLE_KEY = "pk_test_widgetstore"
WEBHOOK_ID = "widget-store"
# Test cards: charged, and declined at the charge (a payment_failed webhook).
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"


@dataclass
class FakeStripe:
    """localstripe on 127.0.0.1:`port`, logging into `folder`."""

    folder: Path
    port: int = field(default_factory=free_port)
    webhook_secret: str = field(default_factory=lambda: f"whsec_{uuid.uuid4().hex}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"fake-stripe-{self.port}.log"

    def start(self) -> FakeStripe:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "widget_store.testing.fake_stripe_server"]
                + ["--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._answers, timeout=30, what="localstripe to serve")
        return self

    def _answers(self) -> bool | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"localstripe exited: {self.log_path.read_text()[-2000:]}")
        return httpx.get(f"{self.base_url}/_config/idempotency", timeout=1).is_success or None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def store_env(self, *, secret_key: bool = True) -> dict[str, str]:
        """A store's settings for Stripe mode on this fake (`secret_key=False`: the webhook
        alone, as for PaymentIntents made elsewhere)."""
        env = {
            "WIDGET_STORE_STRIPE_WEBHOOK_SECRET": self.webhook_secret,
            "WIDGET_STORE_STRIPE_API_BASE": self.base_url,
        }
        if secret_key:
            env["WIDGET_STORE_STRIPE_SECRET_KEY"] = SECRET_KEY
            env["WIDGET_STORE_STRIPE_PUBLISHABLE_KEY"] = PUBLISHABLE_KEY
        return env

    def send_webhooks_to(self, url: str) -> None:
        """Deliver every event to `url`, signed with the webhook secret (replaces any before)."""
        answer = httpx.post(
            f"{self.base_url}/_config/webhooks/{WEBHOOK_ID}",
            data={"url": url, "secret": self.webhook_secret},
        )
        answer.raise_for_status()

    def client(self) -> stripe.StripeClient:
        """The stripe library on this fake, with the store's secret key."""
        return stripe.StripeClient(
            SECRET_KEY,
            base_addresses={"api": self.base_url},
            http_client=stripe.HTTPXClient(allow_sync_methods=True),
        )

    def payment_intents(self, payment_id: str) -> list[Any]:
        """Every PaymentIntent whose metadata names this payment id."""
        found = self.client().v1.payment_intents.list(params={"limit": 100})
        return [
            pi
            for pi in found.data
            if pi.to_dict().get("metadata", {}).get("payment_id") == payment_id
        ]

    def replayed_keys(self) -> list[str]:
        """The Idempotency-Keys whose first answer was replayed so far."""
        answer = httpx.get(f"{self.base_url}/_config/idempotency", timeout=5)
        answer.raise_for_status()
        keys: list[str] = answer.json()["replayed"]
        return keys

    def pay(self, payment_intent: str, card: str = CARD_OK) -> Any:
        """Charge a card to a PaymentIntent, as a shopper paying elsewhere would: a token for
        the card, its card set on the PaymentIntent, then confirmed (localstripe's confirm takes
        no payment method of its own). A declined card raises stripe.CardError."""
        client = self.client()
        token = client.v1.tokens.create(
            params={"card": {"number": card, "exp_month": "12", "exp_year": "2034", "cvc": "123"}}
        )
        assert token.card is not None
        client.v1.payment_intents.update(payment_intent, params={"payment_method": token.card.id})
        return client.v1.payment_intents.confirm(payment_intent)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
