"""localstripe (a fake, stateful Stripe; PyPI, a dev dependency) served the way the tests need
it: `python -m widget_store.testing.fake_stripe_server --port N`, always from scratch.

localstripe's own aiohttp app answers every call, with three differences from
`python -m localstripe`, each making it behave as Stripe documents:

- Idempotency-Key is honoured: a POST that repeats a key (for the same secret key) gets the
  first answer back, status and body, with `Idempotent-Replayed: true`, without running again;
  the same key with other parameters is refused (400, `idempotency_error`). Answers of 500 and
  above are not kept, so a retry runs. localstripe alone ignores the header, and the store's
  promise that a crash mid-call never makes two PaymentIntents would go untested.
  `GET /_config/idempotency` lists the keys replayed so far.
- Webhooks are delivered again until answered 2xx (0.5 s, then doubling, for about a minute),
  each attempt signed anew with the current time, where localstripe tries once.
- Nothing is written to disk (localstripe pickles its state to /tmp/localstripe.pickle after
  every change).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from localstripe import resources, server, webhooks

log = logging.getLogger("fake-stripe")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Webhook redeliveries: the first attempt a second after the event, as localstripe does, then
# these pauses between attempts.
FIRST_DELIVERY_S = 1.0
REDELIVERY_PAUSES_S = (0.5, 1, 2, 4, 8, 16, 32)


@dataclass
class Answer:
    fingerprint: tuple[str, bytes]
    status: int
    body: bytes
    content_type: str


_answers: dict[tuple[str, str], Answer] = {}
_locks: dict[tuple[str, str], asyncio.Lock] = {}
_replayed: list[str] = []


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    scope = (request.headers.get("Authorization", ""), key)
    # Read whole, and kept by aiohttp for the handler's own read.
    fingerprint = (request.path, await request.read())
    lock = _locks.setdefault(scope, asyncio.Lock())
    async with lock:
        saved = _answers.get(scope)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                return web.json_response(
                    {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with "
                            "the same parameters they were first used with.",
                        }
                    },
                    status=400,
                )
            _replayed.append(key)
            log.info("idempotency: replayed %s %s (key %s)", request.method, request.path, key)
            return web.Response(
                status=saved.status,
                body=saved.body,
                content_type=saved.content_type,
                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
            )
        response = await handler(request)
        if response.status < 500 and isinstance(response, web.Response):
            body = response.body
            _answers[scope] = Answer(
                fingerprint=fingerprint,
                status=response.status,
                body=body if isinstance(body, bytes) else b"",
                content_type=response.content_type,
            )
        return response


async def replayed_keys(request: web.Request) -> web.Response:
    return web.json_response({"replayed": _replayed})


async def _send_webhook(event: Any) -> None:
    """localstripe's delivery (the same payload and signature scheme), attempted until a
    webhook answers 2xx, each attempt signed with the time it is made."""
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    await asyncio.sleep(FIRST_DELIVERY_S)
    pending = [
        hook
        for hook in webhooks._webhooks.values()
        if hook.events is None or event.type in hook.events
    ]
    for pause in (*REDELIVERY_PAUSES_S, None):
        failed = []
        for hook in pending:
            if not await _deliver(hook, event.type, payload):
                failed.append(hook)
        pending = failed
        if not pending or pause is None:
            break
        await asyncio.sleep(pause)
    for hook in pending:
        log.warning("webhook %s to %s: given up", event.type, hook.url)


async def _deliver(hook: Any, kind: str, payload: bytes) -> bool:
    timestamp = int(time.time())
    signed = b"%d.%s" % (timestamp, payload)
    signature = hmac.new(hook.secret.encode(), signed, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": f"t={timestamp},v1={signature}",
    }
    try:
        async with (
            ClientSession(timeout=ClientTimeout(total=60)) as session,
            session.post(hook.url, data=payload, headers=headers) as answer,
        ):
            ok = 200 <= answer.status < 300
            log.info("webhook %s to %s: %d", kind, hook.url, answer.status)
            return ok
    except (ClientError, TimeoutError) as exc:
        log.info("webhook %s to %s: %r", kind, hook.url, exc)
        return False


def _no_disk(self: Any) -> None:
    """localstripe's Store.dump_to_disk, made to write nothing."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    resources.Store.dump_to_disk = _no_disk
    webhooks._send_webhook = _send_webhook
    app = server.app
    app.middlewares.insert(0, idempotency)
    app.router.add_get("/_config/idempotency", replayed_keys)
    web.run_app(app, host=args.host, port=args.port, access_log=log, print=None)


if __name__ == "__main__":
    main()
