"""A record of every request the stand-in received, and scripted faults to inject.

Endpoint keys name what a request hit: `authorize`, `token:<grant_type>`,
`app-installation`, `api:comments`, `api:runs`, `api:activities`, `api:other`,
`control` and `other`. A script registered for `token` or `api` applies to every
request whose key starts with that prefix.
"""

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

CONNECTION_RESET = "connection_reset"


@dataclass
class RecordedRequest:
    """One request as received, and how the stand-in responded.

    `status` is None when the connection was reset with no response. `outcome`
    is `normal`, `scripted` or `connection_reset`.
    """

    seq: int
    at: float
    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    headers: dict[str, str]
    bearer_token: str | None = None
    user_id: str | None = None
    status: int | None = None
    outcome: str = "normal"
    response_json: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def grant_type(self) -> str | None:
        """The `grant_type` form field, for token requests."""
        return self.form.get("grant_type")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ScriptedResponse:
    """One scripted response: a status with a body, a reset, or a delayed normal one.

    With `status` None and `reset` False the request is handled normally and the
    response is held back `delay` seconds, so the state changes before the client
    receives the response (a response lost to a client timeout).
    """

    status: int | None = None
    json: Any = None
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    reset: bool = False

    @classmethod
    def parse(cls, entry: str | dict) -> "ScriptedResponse":
        """Build from `"connection_reset"` or a dict with status, json, body,
        headers, delay and connection_reset keys."""
        if entry == CONNECTION_RESET:
            return cls(reset=True)
        if not isinstance(entry, dict):
            raise ValueError(
                f"A scripted response must be {CONNECTION_RESET!r} or a dict, "
                f"got {entry!r}."
            )
        allowed = {"status", "json", "body", "headers", "delay", CONNECTION_RESET}
        unknown = set(entry) - allowed
        if unknown:
            raise ValueError(f"Unknown keys in scripted response: {sorted(unknown)}.")
        return cls(
            status=entry.get("status"),
            json=entry.get("json"),
            body=entry.get("body"),
            headers=tuple((entry.get("headers") or {}).items()),
            delay=float(entry.get("delay", 0.0)),
            reset=bool(entry.get(CONNECTION_RESET)),
        )

    @property
    def passes_through(self) -> bool:
        """True when the request gets the stand-in's normal response."""
        return self.status is None and not self.reset


class Recorder:
    """Thread-safe list of received requests, plus the queues of scripted faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[ScriptedResponse]] = {}

    def add(self, record: RecordedRequest) -> None:
        with self._lock:
            record.seq = len(self._requests) + 1
            self._requests.append(record)

    def find(
        self, *, endpoint: str | None = None, method: str | None = None
    ) -> list[RecordedRequest]:
        """Return the recorded requests whose endpoint key starts with `endpoint`."""
        with self._lock:
            records = list(self._requests)
        if endpoint is not None:
            records = [r for r in records if _matches(r.endpoint, endpoint)]
        if method is not None:
            records = [r for r in records if r.method == method.upper()]
        return records

    def script(self, key: str, responses: list[str | dict]) -> None:
        """Queue scripted responses for the next requests matching `key`."""
        parsed = [ScriptedResponse.parse(entry) for entry in responses]
        with self._lock:
            self._scripts.setdefault(key, deque()).extend(parsed)

    def take_scripted(self, endpoint: str) -> ScriptedResponse | None:
        """Pop the next scripted response for an endpoint key, most specific first."""
        with self._lock:
            for key in _candidate_keys(endpoint):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return None


def _matches(endpoint: str, prefix: str) -> bool:
    return endpoint == prefix or endpoint.startswith(prefix + ":")


def _candidate_keys(endpoint: str) -> list[str]:
    keys = [endpoint]
    while ":" in keys[-1]:
        keys.append(keys[-1].rsplit(":", 1)[0])
    return keys
