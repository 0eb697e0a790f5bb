"""Signed webhook deliveries of a fixed size, each with a body of its own.

Every body is Plane's recorded ``issue`` envelope with a new work-item id and
sequence number, padded in ``description_stripped`` to exactly ``BODY_BYTES``.
Bodies differ from each other, so a receiver that drops repeated bodies (by the
body's sha256) still handles every one.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from plane_standin.payloads import fixture
from plane_standin.sender import USER_AGENT, build_body
from shared.signature import compute_signature

BODY_BYTES = 2048
WEBHOOK_PATH = "/webhooks/plane"
EVENT = "issue"
# Deliveries for the throughput runs reach only the no-op handler in
# ``bench.handlers``. End-to-end probes use the action its timing handler takes.
THROUGHPUT_ACTION = "updated"
PROBE_ACTION = "deleted"
# The padded field as ``json.dumps`` writes it while still empty.
_EMPTY_PADDING = b'"description_stripped": ""'


@dataclass(frozen=True)
class Delivery:
    """One signed webhook: what Plane puts in the headers, and the body."""

    delivery_id: str
    signature: str
    body: bytes

    def http_request(self, host: str) -> bytes:
        """Return the raw HTTP/1.1 POST, asking the server to close afterwards."""
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Content-Type: application/json\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            f"X-Plane-Delivery: {self.delivery_id}\r\n"
            f"X-Plane-Event: {EVENT}\r\n"
            f"X-Plane-Signature: {self.signature}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode("ascii") + self.body


def make_deliveries(
    count: int, *, secret: str, action: str = THROUGHPUT_ACTION
) -> Iterator[Delivery]:
    """Yield ``count`` signed deliveries of ``BODY_BYTES`` bytes each."""
    template = fixture("issue.updated")
    template["action"] = action
    if action == PROBE_ACTION:
        # A real deletion names the work item itself as the changed field; a
        # "deleted" with another field means removed from a cycle or module.
        template["activity"]["field"] = "issue"
    for number in range(count):
        body = _padded_body(template, number)
        yield Delivery(
            delivery_id=str(uuid.uuid4()),
            signature=compute_signature(body, secret=secret),
            body=body,
        )


def workspace_id() -> str:
    """Return the workspace the deliveries come from."""
    return fixture("issue.updated")["workspace_id"]


def write_wrk_file(path: Path, deliveries: Iterator[Delivery]) -> int:
    """Write one ``delivery_id<TAB>signature<TAB>body`` line per delivery.

    ``bench/rotate_deliveries.lua`` reads this file. JSON bodies from
    ``json.dumps`` hold no raw tab or newline, so the format is unambiguous.
    Returns the number of lines written.
    """
    written = 0
    with path.open("wb") as output:
        for delivery in deliveries:
            output.write(f"{delivery.delivery_id}\t{delivery.signature}\t".encode())
            output.write(delivery.body + b"\n")
            written += 1
    return written


def _padded_body(template: dict, number: int) -> bytes:
    data = template["data"]
    data["id"] = str(uuid.uuid4())
    data["sequence_id"] = number
    data["description_stripped"] = ""
    unpadded = build_body(template)
    shortfall = BODY_BYTES - len(unpadded)
    if shortfall < 0:
        raise ValueError(
            f"the issue fixture is {len(unpadded)} bytes before padding, "
            f"over BODY_BYTES={BODY_BYTES}. Raise BODY_BYTES."
        )
    # Filling the empty string in place saves a second json.dumps per body.
    return unpadded.replace(
        _EMPTY_PADDING, b'"description_stripped": "' + b"x" * shortfall + b'"', 1
    )
