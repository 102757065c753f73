"""Injectable HTTP faults for the simulator: the failures the daemon must survive, on demand.

WHY: the daemon's worth is in how it behaves when RunPod misbehaves (runpod-api.md §9 "Faults to inject"):
5xx and 429 bursts, a ``/health`` slower than the SDK's 3 s timeout, a body that is not JSON or not the
documented shape, a key that stopped working. Tests and the demo flip these at run time, either in-process
(``app.state.faults`` / the ``Faults`` object passed to ``create_app``) or over HTTP through the
simulator-only control route ``POST /_sim/faults`` (see app.py), so a daemon running in another process
can be tortured too.

A rule matches a request by method and by an ``fnmatch`` glob on the URL path (``*`` crosses ``/``):
``"/v2/*/health"`` hits every endpoint's health, ``"/graphql"`` the control plane, ``"*"`` everything
except the control routes themselves. ``count`` limits a rule to its next N matching requests; ``None``
keeps it until cleared. Rules are consumed in the order they were added; a request can be hit by one
rule of each kind (a slow answer can also be a 503).

Thread-safe: ``serve_in_thread`` runs the app in another thread while a test flips faults.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FaultKind = Literal["error", "rate_limit", "slow", "malformed"]
MalformedMode = Literal["invalid_json", "wrong_shape"]

FAULT_KINDS: tuple[str, ...] = ("error", "rate_limit", "slow", "malformed")
MALFORMED_MODES: tuple[str, ...] = ("invalid_json", "wrong_shape")


@dataclass
class FaultRule:
    kind: FaultKind
    pattern: str = "*"
    """fnmatch glob on the request path (``/v2/*/run``)."""
    method: str | None = None
    """Only this HTTP method (upper case); ``None`` = any."""
    count: int | None = 1
    """Requests left to hit; ``None`` = until cleared."""
    status: int = 503
    """``error``: the 5xx status to answer."""
    retry_after_s: float = 1.0
    """``rate_limit``: the ``Retry-After`` value (seconds, rounded up to an integer on the wire)."""
    delay_s: float = 0.0
    """``slow``: real seconds to wait before answering."""
    mode: MalformedMode = "invalid_json"
    """``malformed``: ``invalid_json`` truncates the body; ``wrong_shape`` wraps valid JSON in a list."""
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.pattern)


@dataclass
class FaultHits:
    """What the rules decided for one request."""

    delay_s: float = 0.0
    error_status: int | None = None
    rate_limit_retry_after_s: float | None = None
    malformed: MalformedMode | None = None


@dataclass
class Faults:
    """The set of active fault rules plus the expired-key switch. Construct empty; add rules as needed."""

    rules: list[FaultRule] = field(default_factory=list)
    key_expired: bool = False
    """When true, the otherwise valid API key gets 401 on every host (a revoked or expired key)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # ----- building -----
    def add(self, rule: FaultRule) -> FaultRule:
        if rule.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if rule.kind == "error" and not 500 <= rule.status <= 599:
            raise ValueError("an error fault answers a 5xx status")
        if rule.kind == "malformed" and rule.mode not in MALFORMED_MODES:
            raise ValueError(f"unknown malformed mode {rule.mode!r}")
        if rule.count is not None and rule.count < 0:
            raise ValueError("count must be >= 0 (or null for 'until cleared')")
        if rule.delay_s < 0 or rule.retry_after_s < 0:
            raise ValueError("delays must be >= 0")
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail_next(self, count: int | None = 1, pattern: str = "*", *, status: int = 503) -> FaultRule:
        """The next ``count`` matching requests answer ``status`` (5xx) in their API's error shape."""
        return self.add(FaultRule("error", pattern, count=count, status=status))

    def rate_limit_next(
        self, count: int | None = 1, pattern: str = "*", *, retry_after_s: float = 1.0
    ) -> FaultRule:
        """The next ``count`` matching requests answer 429 with ``Retry-After``."""
        return self.add(FaultRule("rate_limit", pattern, count=count, retry_after_s=retry_after_s))

    def slow(self, delay_s: float, pattern: str = "*", *, count: int | None = None) -> FaultRule:
        """Matching requests wait ``delay_s`` real seconds before being answered."""
        return self.add(FaultRule("slow", pattern, count=count, delay_s=delay_s))

    def malformed_next(
        self, count: int | None = 1, pattern: str = "*", *, mode: MalformedMode = "invalid_json"
    ) -> FaultRule:
        """The next ``count`` matching JSON answers are corrupted (status code unchanged)."""
        return self.add(FaultRule("malformed", pattern, count=count, mode=mode))

    def expire_key(self, expired: bool = True) -> None:
        self.key_expired = expired

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.key_expired = False

    # ----- applying -----
    def consume(self, method: str, path: str) -> FaultHits:
        """Decide the faults for one request, spending one use of each rule that fires."""
        hits = FaultHits()
        with self._lock:
            taken: set[str] = set()
            for rule in self.rules:
                if rule.kind in taken or not rule.matches(method, path):
                    continue
                taken.add(rule.kind)
                rule.hits += 1
                if rule.count is not None:
                    rule.count -= 1
                if rule.kind == "slow":
                    hits.delay_s = rule.delay_s
                elif rule.kind == "error":
                    hits.error_status = rule.status
                elif rule.kind == "rate_limit":
                    hits.rate_limit_retry_after_s = rule.retry_after_s
                else:
                    hits.malformed = rule.mode
            self.rules = [r for r in self.rules if r.count is None or r.count > 0]
        return hits

    # ----- the control route's JSON form -----
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"keyExpired": self.key_expired, "rules": [asdict(rule) for rule in self.rules]}

    def apply_command(self, command: dict[str, Any]) -> None:
        """Apply one control-route document (see app.py ``POST /_sim/faults``)::

            {"clear": true}                       drop every rule and un-expire the key (applied first)
            {"keyExpired": true|false}
            {"add": [{"kind": "error", "pattern": "/v2/*/health", "count": 2, "status": 502}, ...]}

        Rule keys: kind, pattern, method, count, status, retryAfter (s), delay (s), mode.
        Raises ValueError on anything malformed, before changing anything.
        """
        if not isinstance(command, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(command) - {"clear", "keyExpired", "add"}
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        rules = [_rule_from_json(item) for item in _as_list(command.get("add", []))]
        expired = command.get("keyExpired")
        if expired is not None and not isinstance(expired, bool):
            raise ValueError("keyExpired must be a boolean")
        if command.get("clear"):
            self.clear()
        if expired is not None:
            self.expire_key(expired)
        for rule in rules:
            self.add(rule)


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("'add' must be a list of rules")
    return value


_RULE_KEYS = {"kind", "pattern", "method", "count", "status", "retryAfter", "delay", "mode"}


def _rule_from_json(item: Any) -> FaultRule:
    if not isinstance(item, dict):
        raise ValueError("each rule must be an object")
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise ValueError(f"unknown rule keys: {', '.join(sorted(unknown))}")
    kind = item.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"rule kind must be one of {', '.join(FAULT_KINDS)}")
    count = item.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise ValueError("count must be an integer or null")
    try:
        rule = FaultRule(
            kind=kind,
            pattern=str(item.get("pattern", "*")),
            method=item.get("method"),
            count=count,
            status=int(item.get("status", 503)),
            retry_after_s=float(item.get("retryAfter", 1.0)),
            delay_s=float(item.get("delay", 0.0)),
            mode=item.get("mode", "invalid_json"),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad rule value: {exc}") from exc
    if rule.kind == "error" and not 500 <= rule.status <= 599:
        raise ValueError("an error fault answers a 5xx status")
    if rule.mode not in MALFORMED_MODES:
        raise ValueError(f"mode must be one of {', '.join(MALFORMED_MODES)}")
    return rule
