"""Sending the world's events to the app's webhook, with Plane's rules on when.

Plane sends an installation's events only while the installation exists and its
webhook is active. After six failed attempts it deactivates the webhook and drops
later events, except agent events, which it looks up by webhook id and sends anyway.
"""

import logging
import threading
import time

import requests

from . import payloads
from .sender import MAX_RETRIES, build_body, send_webhook
from .world import World

logger = logging.getLogger(__name__)

# Seconds `stop()` waits for a background send to notice the stop event.
THREAD_JOIN_SECONDS = 2.0


class Deliverer:
    """Posts webhook bodies for one world, inline or in a background thread."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.config = world.config
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()

    def deliver(
        self, payload: dict, *, wait: bool = True, agent_event: bool = False
    ) -> dict:
        """Send a world event if Plane would, and return what happened.

        The result has `event`, `action`, `sent`, `reason` (why nothing was sent),
        `queued` and `attempts`.
        """
        result = _new_result(payload)
        result["reason"] = self._reason_not_to_send(agent_event)
        if result["reason"] is not None:
            logger.info("webhook not sent: %s", result["reason"])
            return result
        return self._send(payload, result, wait=wait)

    def send_fixture(self, name: str, *, wait: bool = True) -> dict:
        """Send a fixture as-is (ids rebound to this world), whatever the state.

        Every fixture is signed and carries X-Plane-* headers, except the uninstall
        notice, which Plane posts with neither.
        """
        payload = payloads.rebind_ids(
            payloads.fixture(name), self.config.id_replacements()
        )
        if name.removesuffix(".json") == payloads.UNINSTALL_FIXTURE:
            notice = self.post_uninstall_notice(payload)
            result = _new_result(payload)
            result.update(sent=notice["status"] is not None, attempts=[notice])
            return result
        return self._send(payload, _new_result(payload), wait=wait)

    def post_uninstall_notice(self, notice: dict) -> dict:
        """POST the unsigned uninstall notice once, with no timeout and no retry."""
        try:
            response = requests.post(self.config.webhook_url, json=notice)
        except requests.RequestException as exc:
            logger.warning("uninstall notice failed: %s", type(exc).__name__)
            return {"status": None, "error": f"{type(exc).__name__}: {exc}"}
        response.close()
        logger.info("uninstall notice got HTTP %s", response.status_code)
        return {"status": response.status_code, "error": None}

    def start(self) -> None:
        """Allow retry waits again after a `stop()`, for a restarted stand-in."""
        self._stop.clear()

    def wait_for_background_sends(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds in total. Return True if all sends ended."""
        deadline = time.monotonic() + timeout
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def stop(self) -> None:
        """End retry waits of background sends and wait briefly for them."""
        self._stop.set()
        self.wait_for_background_sends(THREAD_JOIN_SECONDS)

    def _reason_not_to_send(self, agent_event: bool) -> str | None:
        installation = self.world.current_installation()
        if installation is None or not installation.is_installed:
            return "the app is not installed, so the workspace has no app webhook"
        if not installation.webhook_active and not agent_event:
            return (
                f"the webhook was deactivated after {MAX_RETRIES + 1} failed attempts"
            )
        return None

    def _send(self, payload: dict, result: dict, *, wait: bool) -> dict:
        body = build_body(payload)
        if not wait:
            thread = threading.Thread(
                target=self._send_now,
                args=(body, payload.get("event"), result),
                name="standin-webhook",
                daemon=True,
            )
            with self._threads_lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                thread.start()
            return {**result, "queued": True}
        self._send_now(body, payload.get("event"), result)
        return result

    def _send_now(self, body: bytes, event: str | None, result: dict) -> None:
        attempts = send_webhook(
            self.config.webhook_url,
            body,
            secret=self.config.webhook_secret,
            event=event,
            delay_scale=self.config.delay_scale,
            stop=self._stop,
        )
        result["attempts"] = [attempt.to_dict() for attempt in attempts]
        result["sent"] = any(attempt.delivered for attempt in attempts)
        exhausted = len(attempts) == MAX_RETRIES + 1 and not result["sent"]
        with self.world.lock:
            self.world.deliveries.append(result)
            if exhausted:
                self._deactivate_webhook()
        logger.info(
            "webhook %s: %d attempt(s), %s",
            event,
            len(attempts),
            "delivered" if result["sent"] else "not delivered",
        )

    def _deactivate_webhook(self) -> None:
        installation = self.world.current_installation()
        if installation is not None and installation.webhook_active:
            installation.webhook_active = False
            logger.warning(
                "webhook deactivated after %d failed attempts",
                MAX_RETRIES + 1,
                extra={"installation_id": installation.id},
            )


def _new_result(payload: dict) -> dict:
    return {
        "event": payload.get("event"),
        "action": payload.get("action"),
        "sent": False,
        "reason": None,
        "queued": False,
        "attempts": [],
    }
