"""Typed, immutable configuration: ``config.toml`` read with :mod:`tomllib` into frozen dataclasses.

Why it looks like this:

* A wrong setting costs real money (a typo that silently falls back to a default can leave a GPU running
  for days), so every value is validated and *all* problems are reported at once, each as a
  ``FILE:LINE: section.key: message`` line that ``runpod-watchdog check-config`` prints and systemd's
  ``ExecStartPre=`` turns into a refusal to start.
* The model is the documentation: every field carries an attribute docstring (meaning, unit, default), the
  shipped ``config.toml`` repeats it as comments, and a test keeps file and model in step.
* Secrets never live here. The RunPod API key and the Slack webhook URL come only from the environment or
  from systemd credentials, into a :class:`Secrets` object whose ``repr`` cannot leak them, so a logged
  :class:`Config` is always safe to show. A secret-looking value in the file is an error.
* Every number has a floor and a ceiling that a real user never needs to exceed (a budget of 1,000,000 EUR,
  1000 workers, 10 retries, a poll every 300 s at most...), so a slipped digit is refused, not obeyed; each
  field's docstring and ``config.toml`` give its range. Two rules join sections: the daemon must look at an
  endpoint at least twice within ``policy.stale_after_s`` (so ``stale_after_s >= 2 x
  runpod.poll_interval_s``), and one RunPod call with all its retries must fit in
  :data:`MAX_CALL_WORST_CASE_S` (the daemon is blind while it waits).
* The file itself is distrusted: over :data:`MAX_CONFIG_BYTES` it is refused before it is read whole (and
  only regular files are read: ``/dev/zero`` is not a config), tables and arrays nested deeper than
  :data:`MAX_NESTING` are refused before :mod:`tomllib` recurses into them (a deep file was a
  RecursionError; a long dotted key made it quadratic), a UTF-8 byte-order mark is dropped (editors add
  it; TOML has no use for it), and characters that look like something else are named with their column:
  invisible ones (zero-width, no-break spaces, controls) anywhere in a key or a string, and any non-ASCII
  character in a key or an enumerated value (a Cyrillic ``е`` in ``"enforce"``).
* Secrets never live here. The RunPod API key and the Slack webhook URL come only from the environment or
  from systemd credentials, into a :class:`Secrets` object whose ``repr`` cannot leak them, so a logged
  :class:`Config` is always safe to show. A secret-looking value in the file is an error, and is never
  echoed: keys named like secrets, values with a known shape (RunPod, Slack, Hugging Face, GitHub, GitLab,
  AWS key ids, ``Bearer``/``Authorization``, PEM private keys, JSON web tokens), and long random-looking
  tokens in values that are not paths, URLs, regexes or names of outside things (endpoint patterns, client
  ids, GPU ids: those may legitimately look random).
* Paths that a service reads or writes must not depend on the working directory (``/`` under systemd):
  log sources, the deny list and the TLS files must be absolute; ``ledger.path`` and
  ``control.socket_path`` keep their documented relative meaning (from ``$STATE_DIRECTORY`` /
  ``$RUNTIME_DIRECTORY``). When systemd's directories are known (the variables are set), the deny list
  must be inside one of them: ``ProtectSystem=strict`` makes everything else read-only.
* Log regexes are matched by RE2 (google-re2), a linear-time engine: a hostile log line cannot make a
  regex backtrack for hours, whatever the pattern; :func:`compile_log_regex` is the one place they are
  compiled. RE2 has no lookarounds or backreferences (exactly the features that need backtracking); a
  pattern must be valid for both Python's ``re`` (the documented syntax, ``(?P<name>...)`` groups) and RE2.
  Note that RE2's ``\\d``, ``\\w`` and ``\\s`` are ASCII-only.
* Loading does the I/O (read the file, look at the environment and, unless ``check_files=False``, check
  what the daemon will open: the ledger's directory is writable, existing log files are regular files,
  the control socket's directory exists or can be created, the TLS files are readable, the deny list's
  directory is writable), so ``check-config`` refuses what ``run`` would fail on; everything the daemon
  asks afterwards (``policy_for``, ``rule_mode``, the price table) is pure.

Order of precedence: built-in defaults < the file < environment variables for the three RunPod base URLs
(``RUNPOD_API_BASE_URL``, ``RUNPOD_REST_API_URL``, ``RUNPOD_ENDPOINT_BASE_URL``, as RunPod's own tools read
them). Problems found in the environment are reported as ``environment: VARIABLE: message``. The three URLs
go together: some on this machine (a simulator) and some elsewhere (the real RunPod) is refused, since the
daemon would then read one account and act on another (:func:`simulator_environment` sets all three).

Which file: :func:`find_config` is the one search every command uses (``--config PATH``, else
``$RUNPOD_WATCHDOG_CONFIG``, else ``./config.toml``, else ``/etc/runpod-watchdog/config.toml``, else the
built-in defaults: :data:`CONFIG_SEARCH_PATH`).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import fnmatch
import hmac
import ipaddress
import itertools
import math
import os
import pwd
import re
import stat
import tomllib
import types
import typing
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from watchdog.errors import ConfigError
from watchdog.prices import DEFAULT_PRICES, GpuPrice, PriceTable
from watchdog.vocabulary import BILLED_BY_DEFAULT, CONFIGURABLE_RULES, Mode, RuleMode, WorkerStatus

LogFormat = Literal["json", "regex"]
StartAt = Literal["end", "start"]
CutAction = Literal["alert", "deny-list", "cooldown"]

CONFIG_ENV_VAR = "RUNPOD_WATCHDOG_CONFIG"
"""Environment variable naming the config file when no path is given."""
LOCAL_CONFIG_NAME = "config.toml"
"""Config file looked for in the working directory when neither a path nor the variable is given."""
SYSTEM_CONFIG_PATH = Path("/etc/runpod-watchdog/config.toml")
"""Config file used when no path is given, ``$RUNPOD_WATCHDOG_CONFIG`` is unset and there is no
``./config.toml`` (if it exists): the one ``scripts/install.sh`` writes and the systemd unit reads."""
CONFIG_SEARCH_PATH = (
    f"--config PATH, else ${CONFIG_ENV_VAR}, else ./{LOCAL_CONFIG_NAME}, else {SYSTEM_CONFIG_PATH}"
)
"""The search :func:`find_config` does, in words (for ``--help`` and the messages that name it)."""
BUILTIN_SOURCE = "<built-in defaults>"

RUNPOD_URL_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("RUNPOD_API_BASE_URL", "graphql_url", "/graphql"),
    ("RUNPOD_REST_API_URL", "rest_url", ""),
    ("RUNPOD_ENDPOINT_BASE_URL", "runtime_url", ""),
)
"""(environment variable, ``[runpod]`` key, suffix appended to the variable's value): RunPod's own names
for its three base URLs, as the official SDK reads them."""
SIMULATOR_API_KEY = "sim-key-local-only"
"""The API key the built-in simulator publishes and accepts unless started with ``--api-key``. Not a
secret: it only opens a loopback simulator. It is ``runpod_sim.app.DEFAULT_API_KEY`` written out again,
because the headless core must not import the simulator (a test keeps the two equal)."""

MAX_CONFIG_BYTES = 1024 * 1024
"""A config file larger than this (1 MiB) is refused before it is read whole. The shipped one is about
15 KB; a 50 MB file once took 29 s and 1 GB to parse, and a SIGHUP reload blocked the loop that long."""
MAX_NESTING = 10
"""Deepest nesting of arrays and inline tables, and most parts of one dotted key or table header
(``a.b.c``): the model needs 3. Deeper ones are refused before :mod:`tomllib` sees them (it recursed into
10,000 nested arrays until RecursionError, and a dotted key of 40,000 parts took it seconds and a GiB)."""
MAX_CALL_WORST_CASE_S = 600.0
"""Longest one RunPod call may take with all its retries, seconds: ``(max_retries + 1) x
(request_timeout_s + the longer of backoff_max_s and retry_after_cap_s)``. The daemon's tick waits for
it, blind, so it stays in minutes, never an hour."""

SECRET_MESSAGE = (
    "secrets never go in the config file; set RUNPOD_API_KEY / SLACK_WEBHOOK_URL in the environment "
    "or a systemd credential"
)
_SECRET_KEY_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "token",
        "webhook",
        "webhook_url",
        "password",
        "passwd",
        "secret",
        "authorization",
        "bearer",
        "private_key",
        "access_key",
        "secret_key",
        "credentials",
    }
)
_SECRET_KEY_SUFFIXES = (
    "_api_key",
    "_token",
    "_webhook_url",
    "_password",
    "_passwd",
    "_secret",
    "_private_key",
    "_access_key",
    "_secret_key",
)
_SECRET_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a RunPod API key", re.compile(r"rpa_[A-Za-z0-9]{10,}")),
    ("a Slack token", re.compile(r"xox[abeoprs]-")),
    ("a Slack webhook URL", re.compile(r"https://hooks\.slack\.com/services/")),
    ("an Authorization header", re.compile(r"\bauthorization\s*:", re.IGNORECASE)),
    # 16+ token characters with a digit: "Bearer instruments" (a fixed cost's name) is not a token
    ("a bearer token", re.compile(r"\bbearer\s+(?=[\w.~+/=-]*\d)[\w.~+/=-]{16,}", re.IGNORECASE)),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
)
"""Values with the shape of a credential, wherever they appear (names first, for the message)."""
_TOKEN_CANDIDATE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_HEX = frozenset("0123456789abcdefABCDEF")
_NOT_TOKEN_SCANNED = frozenset(
    {
        # regexes, paths and URLs: long runs of mixed characters are their normal shape
        "regex",
        "path",
        "deny_list_path",
        "tls_cert_file",
        "tls_key_file",
        "socket_path",
        "graphql_url",
        "rest_url",
        "runtime_url",
        # names of things outside the file, which may be random ids (endpoint ids, client ids, GPU ids)
        "watch",
        "allow_list",
        "always_paused",
        "never_cut",
        "match",
        "gpu_type_id",
        "pool",
    }
)
"""Keys whose values are not searched for long random tokens (the known shapes above still apply)."""

_UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
_GLOB_CHARACTERS = "*?["
_SYSTEMD_ROOTS = (Path("/var/lib"), Path("/run"))
"""Where systemd's StateDirectory= and RuntimeDirectory= are created (see ``_check_files``)."""
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _limits(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    check: Callable[[Any], str | None] | None = None,
    nonempty: bool = False,
    derived: bool = False,
) -> dict[str, Any]:
    """Field metadata read by the loader: numeric bounds (applied to each item of an array), an extra
    ``check(value) -> message | None``, ``nonempty`` for strings and arrays, and ``derived`` for fields
    computed at load time rather than read from the file."""
    meta: dict[str, Any] = {"gt": gt, "ge": ge, "lt": lt, "le": le, "check": check, "nonempty": nonempty}
    meta["derived"] = derived
    return meta


# ----------------------------------------------------------------------------------------------------
# Checks on single values (pure; they return a message or None)


def _url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"must be an http(s) URL with a host, got {_describe(value)}"
    if parts.username or parts.password:
        return "must not carry credentials (user:password@); " + SECRET_MESSAGE
    if parts.query or parts.fragment:
        return "must not have a query string or fragment"
    try:
        _ = parts.port
    except ValueError:
        return f"has an invalid port: {_describe(value)}"
    return None


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:port``) into ``(host, port)``; raise ValueError if malformed."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.%\w]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", listen)
    if match is None:
        raise ValueError("must be HOST:PORT (IPv6 as [::1]:PORT)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"port must be in [0, 65535], got {port}")
    return host, port


def _listen_problem(value: str) -> str | None:
    try:
        parse_listen(value)
    except ValueError as error:
        return f"{error}, got {_describe(value)}"
    return None


def _socket_mode_problem(value: str) -> str | None:
    if re.fullmatch(r"0?[0-7]{3}", value) is None:
        return f'must be an octal file mode such as "0660", got {_describe(value)}'
    if int(value, 8) & 0o007:
        return (
            f"must give other users no access (last digit 0), got {value!r}: anyone on the machine could "
            'drive the daemon (pause endpoints, cancel jobs); use "0660" (owner and group) or "0600"'
        )
    return None


def _relative_path_problem(value: str) -> str:
    return (
        f"must be an absolute path, got {value!r}: a relative path (or ~) depends on the directory and the "
        "user the daemon starts with (/ and no home under systemd)"
    )


def _watch_problem(patterns: tuple[str, ...]) -> str | None:

    if not patterns:
        return 'must not be empty: the daemon would watch no endpoint; use ["*"] to watch them all'
    if "" in patterns:
        return 'has an empty pattern, which matches no endpoint; use "*" to watch them all'
    return None


def _billed_states_problem(states: tuple[WorkerStatus, ...]) -> str | None:
    valid = ", ".join(f'"{state}"' for state in WorkerStatus)
    repeated = [state for state in WorkerStatus if states.count(state) > 1]
    if repeated:
        return f"lists {', '.join(repr(str(state)) for state in repeated)} more than once"
    if WorkerStatus.RUNNING not in states:
        return (
            f'must include "RUNNING" (every source agrees a worker running a job is billed), got '
            f"{_describe([str(state) for state in states])}; worker states are {valid}"
        )
    return None


def _increasing_problem(values: tuple[float, ...]) -> str | None:
    if any(later <= earlier for earlier, later in itertools.pairwise(values)):
        return f"must be strictly increasing, got {_describe(list(values))}"
    return None


class LogMatch(Protocol):
    """A match of a :class:`LogPattern` (RE2's, or a :class:`re.Match` in tests)."""

    def groupdict(self) -> dict[str, Any]: ...


class LogPattern(Protocol):
    """What the log tailer needs of a compiled log regex (RE2's, or a :class:`re.Pattern` in tests)."""

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def search(self, text: str, /) -> LogMatch | None: ...


def compile_log_regex(pattern: str) -> LogPattern:
    """Compile a log source's regex for the engine it runs on: RE2, linear in the length of the line
    whatever the pattern, so a hostile log line cannot make a regex such as ``(a+)+$`` backtrack for hours
    inside a tick. The pattern must also be valid Python ``re`` syntax (what the documentation promises).

    Raises ValueError with a message for a person when it is neither.
    """
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"invalid regular expression: {error}") from None
    # Imported here, not at the top: ``runpod-watchdog --version`` and the rest of the CLI load this module,
    # and only a config with regex log sources needs the compiled engine.
    import re2  # type: ignore[import-untyped]  # noqa: PLC0415  # google-re2 ships no type information

    options = re2.Options()
    options.log_errors = False  # RE2 would also print its complaint on stderr, outside FILE:LINE lines
    try:
        return typing.cast(LogPattern, re2.compile(pattern, options))
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(
            f"not supported by RE2, the linear-time engine log regexes run on: {reason}. RE2 has no "
            "lookarounds such as (?=...) or (?!...) and no backreferences such as \\1, the features that let "
            "a regex backtrack for hours on one hostile line"
        ) from None


def _regex_problem(value: str) -> str | None:
    if not value:
        return None
    try:
        compile_log_regex(value)
    except ValueError as error:
        return str(error)
    return None


def _secret_shape(value: str, key: str | int | None) -> str | None:
    """What ``value`` looks like if it looks like a credential (``"a bearer token"``), else None."""
    for name, shape in _SECRET_SHAPES:
        if shape.search(value):
            return name
    if key in _NOT_TOKEN_SCANNED or value.startswith(("/", "~", "./", "../")) or "://" in value:
        return None
    for token in _TOKEN_CANDIDATE.findall(_UUID.sub(" ", value)):
        if _looks_random(token.rstrip("=")):
            return f"a {len(token)}-character random token"
    return None


def _looks_random(token: str) -> bool:
    """A run of 32+ token characters that mixes letters and digits like a generated credential: hex with
    at least 3 bits of entropy per character, anything else with upper case, lower case, digits and 4 bits
    (names, field names and paths stay below: they are words)."""
    if not any(char.isdigit() for char in token) or not any(char.isalpha() for char in token):
        return False
    counts = [token.count(char) for char in set(token)]
    bits = -sum(count / len(token) * math.log2(count / len(token)) for count in counts)
    if set(token) <= _HEX:
        return bits >= 3.0
    has_cases = any(char.isupper() for char in token) and any(char.islower() for char in token)
    return has_cases and bits >= 4.0


def _odd_character(text: str, *, non_ascii: bool) -> tuple[int, str] | None:
    """The first character of ``text`` that is invisible (zero-width, no-break or other unusual spaces,
    controls other than tab and newline) or, with ``non_ascii``, not ASCII at all: ``(index, char)``."""
    if text.isascii():  # the usual case, checked in C: only control characters can be odd
        found = _ASCII_CONTROL.search(text)
        return None if found is None else (found.start(), found.group())
    for index, char in enumerate(text):
        if char in "\t\n\r":
            continue
        if not char.isprintable() or (non_ascii and not char.isascii()):
            return index, char
    return None


def _character_name(char: str) -> str:
    """``U+0435 CYRILLIC SMALL LETTER IE``."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


# ----------------------------------------------------------------------------------------------------
# The model: one frozen dataclass per section


@dataclass(frozen=True, slots=True)
class FixedCost:
    """A cost paid every month whatever the traffic; it comes off the budget before any GPU second."""

    name: str = field(metadata=_limits(nonempty=True))
    """What is paid for, e.g. ``"Hugging Face demo space"``. Required."""
    usd_per_month: float = field(metadata=_limits(ge=0, le=1_000_000))
    """Its price, USD per month (0-1000000). Required."""


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """``[budget]``: the money the organisation can spend, and when to warn and when to brake."""

    monthly_eur: float = field(default=20.0, metadata=_limits(gt=0, le=1_000_000))
    """The monthly budget, EUR (in (0, 1000000]). Default 20.0."""
    usd_per_eur: float = field(default=1.16, metadata=_limits(gt=0, le=10))
    """Exchange rate, USD for 1 EUR (in (0, 10]); RunPod bills in USD. Default 1.16."""
    alert_thresholds: tuple[float, ...] = field(
        default=(0.5, 0.8, 1.0), metadata=_limits(gt=0, le=2, nonempty=True, check=_increasing_problem)
    )
    """Fractions of the budget (each in (0, 2], strictly increasing) at which a Slack alert is sent.
    Default [0.5, 0.8, 1.0]."""
    brake_at: float = field(default=0.95, metadata=_limits(gt=0, le=2))
    """Fraction of the budget (in (0, 2]) at which the brake stops every endpoint not on
    ``policy.allow_list``. Default 0.95."""
    daily_allowance: bool = False
    """Also brake a bad day: when the UTC day's variable (GPU) spend reaches the day's allowance, the
    endpoints not on ``policy.allow_list`` are paused (the month's brake) until the next UTC midnight, then
    restored. The allowance is what the month has left for GPU time at the day's start spread over the days
    left, today included: (monthly_eur - fixed costs - variable spend before today) / days left
    (``watchdog.money.daily_allowance_eur``); 20 EUR with the 10 USD space starts a 30-day month at about
    0.38 EUR a day. The month's brake keeps priority. Default false."""
    free_share: float = field(default=0.30, metadata=_limits(ge=0, lt=1))
    """Share of requests offered free to learners (in [0, 1)), used when the logs carry no tier.
    Default 0.30."""
    fixed_costs: tuple[FixedCost, ...] = field(
        default=(FixedCost("Hugging Face demo space", 10.0),), metadata=_limits()
    )
    """``[[budget.fixed_costs]]``: monthly costs outside RunPod. Default: one, the Hugging Face demo space
    at 10.0 USD/month."""

    @property
    def monthly_usd(self) -> float:
        """The budget in USD."""
        return self.monthly_eur * self.usd_per_eur

    @property
    def fixed_usd_per_month(self) -> float:
        return sum(cost.usd_per_month for cost in self.fixed_costs)

    @property
    def gpu_budget_usd(self) -> float:
        """What is left for RunPod each month once the fixed costs are paid, USD."""
        return self.monthly_usd - self.fixed_usd_per_month

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        seen: set[str] = set()
        for index, cost in enumerate(self.fixed_costs):
            if cost.name in seen:
                yield ("fixed_costs", index, "name"), f"duplicate fixed cost {cost.name!r}"
            seen.add(cost.name)
        if self.fixed_costs and self.gpu_budget_usd <= 0:
            yield (
                ("fixed_costs",),
                f"fixed costs ({self.fixed_usd_per_month:.2f} USD/month) leave nothing of the "
                f"{self.monthly_usd:.2f} USD budget",
            )


@dataclass(frozen=True, slots=True)
class PricesConfig:
    """``[prices]``: RunPod Serverless GPU prices per second (runpod-api.md §6); they change, code doesn't."""

    gpu: tuple[GpuPrice, ...] = field(default=DEFAULT_PRICES.gpus, metadata=_limits(nonempty=True))
    """``[[prices.gpu]]``: one entry per GPU type id (gpu_type_id, pool, flex_usd_per_s, active_usd_per_s).
    A file that lists any replaces the whole default table (the 11 types of ``watchdog.prices``)."""
    billed_states: tuple[WorkerStatus, ...] = field(
        default=tuple(state for state in WorkerStatus if state in BILLED_BY_DEFAULT),
        metadata=_limits(nonempty=True, check=_billed_states_problem),
    )
    """Worker states the live estimate bills, as REST v2 names them ("RUNNING", "IDLE", "INITIALIZING",
    "THROTTLED", "UNHEALTHY"); must include "RUNNING", no repeats. Whether RunPod bills the cold start
    (INITIALIZING) and a warm IDLE worker is uncertain (runpod-api.md §9): the default counts both, so the
    estimate can only over-count; the daemon says when RunPod's bill consistently shows otherwise
    (:mod:`watchdog.reconcile`). Default: ``watchdog.vocabulary.BILLED_BY_DEFAULT``,
    ["RUNNING", "IDLE", "INITIALIZING"]."""

    @property
    def table(self) -> PriceTable:
        return PriceTable(gpus=self.gpu)

    @property
    def billed_state_set(self) -> frozenset[WorkerStatus]:
        """``billed_states`` as the money model takes it."""
        return frozenset(self.billed_states)

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        seen: set[str] = set()
        for index, price in enumerate(self.gpu):
            if price.gpu_type_id in seen:
                yield ("gpu", index, "gpu_type_id"), f"duplicate GPU type id {price.gpu_type_id!r}"
            seen.add(price.gpu_type_id)


_GPU_PRICE_LIMITS: dict[str, dict[str, Any]] = {
    "gpu_type_id": _limits(nonempty=True),
    "pool": _limits(nonempty=True),
    "flex_usd_per_s": _limits(gt=0, lt=1),
    "active_usd_per_s": _limits(gt=0, lt=1),
}
"""Bounds for :class:`watchdog.prices.GpuPrice`, which lives outside this module (a $/s price of 1 USD or
more is a unit mistake: that is 3600 USD an hour)."""


@dataclass(frozen=True, slots=True)
class RunPodConfig:
    """``[runpod]``: where RunPod's three APIs live and how hard to try them (URLs: no trailing slash)."""

    graphql_url: str = field(default="https://api.runpod.io/graphql", metadata=_limits(check=_url_problem))
    """GraphQL endpoint (control plane). Env override: ``$RUNPOD_API_BASE_URL`` + ``/graphql``.
    Default "https://api.runpod.io/graphql"."""
    rest_url: str = field(default="https://api.runpod.io/v2", metadata=_limits(check=_url_problem))
    """REST v2 base; the client appends ``/serverless/...``. Env override: ``$RUNPOD_REST_API_URL``.
    Default "https://api.runpod.io/v2"."""
    runtime_url: str = field(default="https://api.runpod.ai/v2", metadata=_limits(check=_url_problem))
    """Serverless job runtime base (``/{endpoint_id}/health``, ``/cancel/...``).
    Env override: ``$RUNPOD_ENDPOINT_BASE_URL``. Default "https://api.runpod.ai/v2"."""
    poll_interval_s: float = field(default=5.0, metadata=_limits(ge=1, le=300))
    """Seconds between two polls of endpoints, workers and jobs (1-300; at most policy.stale_after_s / 2).
    Default 5.0."""
    billing_interval_s: float = field(default=300.0, metadata=_limits(gt=0, le=3600))
    """Seconds between two reads of RunPod's billing API (poll_interval_s-3600: RunPod bills by the hour).
    Default 300.0."""
    request_timeout_s: float = field(default=10.0, metadata=_limits(gt=0, le=60))
    """Timeout of one HTTP request, seconds (in (0, 60]). Default 10.0."""
    max_retries: int = field(default=4, metadata=_limits(ge=0, le=10))
    """Retries after a connect error, timeout, 5xx or 429 (0-10; never after 401/403). One call with all
    its retries must fit in 600 s: (max_retries + 1) x (request_timeout_s + the longer of backoff_max_s and
    retry_after_cap_s) <= 600. Default 4."""
    backoff_max_s: float = field(default=30.0, metadata=_limits(gt=0, le=120))
    """Ceiling of the exponential backoff between retries, seconds (in (0, 120]). Default 30.0."""
    retry_after_cap_s: float = field(default=60.0, metadata=_limits(gt=0, le=300))
    """Longest ``Retry-After`` honoured, seconds (in (0, 300]); longer waits are capped. Default 60.0."""

    @property
    def call_worst_case_s(self) -> float:
        """Longest one call may take with all its retries, seconds (see :data:`MAX_CALL_WORST_CASE_S`)."""
        wait = max(self.backoff_max_s, self.retry_after_cap_s)
        return (self.max_retries + 1) * (self.request_timeout_s + wait)

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.billing_interval_s < self.poll_interval_s:
            yield (
                ("billing_interval_s",),
                f"must be >= poll_interval_s ({_number(self.poll_interval_s)}), "
                f"got {_number(self.billing_interval_s)}",
            )
        if self.call_worst_case_s > MAX_CALL_WORST_CASE_S:
            yield (
                ("max_retries",),
                f"one RunPod call could take {_number(round(self.call_worst_case_s))} s with its retries "
                f"({self.max_retries + 1} attempts x (request_timeout_s {_number(self.request_timeout_s)} + "
                f"{_number(max(self.backoff_max_s, self.retry_after_cap_s))} s of waiting)), over the "
                f"{_number(MAX_CALL_WORST_CASE_S)} s limit: the daemon is blind while it waits; lower "
                "max_retries, request_timeout_s, backoff_max_s or retry_after_cap_s",
            )


@dataclass(frozen=True, slots=True)
class RuleModes:
    """``[policy.rules]``: per-rule mode. ``"inherit"`` follows the endpoint's mode; ``"dry-run"`` always
    wins (trial one rule); ``"enforce"`` overrides ``policy.mode`` but not an endpoint's own ``mode``.
    One field per rule of :data:`watchdog.vocabulary.CONFIGURABLE_RULES`, in its order (checked below)."""

    runaway_job: RuleMode = RuleMode.INHERIT
    """Cancel work in progress longer than max_execution_s + grace_s. Default "inherit"."""
    crash_loop: RuleMode = RuleMode.INHERIT
    """Pause endpoints whose workers keep failing (each restart is a billed cold start). Default "inherit"."""
    idle_leak: RuleMode = RuleMode.INHERIT
    """Stop workers kept alive with no work. Default "inherit"."""
    budget_brake: RuleMode = RuleMode.INHERIT
    """Set workers max to 0 on non-allow-listed endpoints once spend reaches budget.brake_at.
    Default "inherit"."""
    suspicious_traffic: RuleMode = RuleMode.INHERIT
    """Act on request/ping floods found in the logs (see pings.cut). Default "inherit"."""
    config_drift: RuleMode = RuleMode.INHERIT
    """Patch endpoints whose settings exceed the policy (timeouts, workers). Default "inherit"."""

    def get(self, rule: str) -> RuleMode:
        if rule not in CONFIGURABLE_RULES:
            raise KeyError(f"unknown rule {rule!r}; rules are {', '.join(CONFIGURABLE_RULES)}")
        return typing.cast(RuleMode, getattr(self, rule))


if tuple(f.name for f in dataclasses.fields(RuleModes)) != CONFIGURABLE_RULES:  # pragma: no cover
    raise TypeError("RuleModes must have one field per watchdog.vocabulary.CONFIGURABLE_RULES, in order")


@dataclass(frozen=True, slots=True)
class EndpointOverride:
    """``[[policy.endpoint]]``: settings for the endpoints whose id or name matches ``match``; keys left out
    keep the ``[policy]`` default. When several entries match one endpoint (different patterns, e.g.
    ``"prod-*"`` and ``"prod-chat"``), they apply in file order and later ones win key by key; two entries
    with the same ``match`` are refused (merge them)."""

    match: str = field(metadata=_limits(nonempty=True))
    """Endpoint id or name; shell-style patterns (``*``, ``?``) allowed; unique. Required."""
    mode: Mode | None = None
    """"enforce" or "dry-run" for these endpoints (rules set to "dry-run" stay so). Default: policy.mode."""
    max_execution_s: float | None = field(default=None, metadata=_limits(gt=0, le=604800))
    """Runaway limit, seconds (in (0, 604800]). Default: policy.max_execution_s."""
    grace_s: float | None = field(default=None, metadata=_limits(ge=0, le=3600))
    """Extra seconds before acting (0-3600). Default: policy.grace_s."""
    max_idle_timeout_s: int | None = field(default=None, metadata=_limits(ge=1, le=3600))
    """Highest idle timeout allowed, seconds (1-3600). Default: policy.max_idle_timeout_s."""
    max_workers: int | None = field(default=None, metadata=_limits(ge=0, le=1000))
    """Highest workers max allowed (0-1000). Default: policy.max_workers."""
    max_workers_min: int | None = field(default=None, metadata=_limits(ge=0, le=1000))
    """Highest workers min (active, always billed) allowed (0-1000). Default: policy.max_workers_min."""
    max_workers_standby: int | None = field(default=None, metadata=_limits(ge=0, le=1000))
    """Highest workers standby allowed (0-1000). Default: policy.max_workers_standby."""
    required_execution_timeout_s: int | None = field(default=None, metadata=_limits(ge=5, le=604800))
    """Execution timeout patched onto these endpoints, seconds (5-604800).
    Default: policy.required_execution_timeout_s."""

    def matches(self, endpoint_id: str, endpoint_name: str) -> bool:
        return _matches(self.match, endpoint_id, endpoint_name)


_OVERRIDABLE = tuple(f.name for f in dataclasses.fields(EndpointOverride) if f.name != "match")


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """One endpoint's policy, fully resolved from ``[policy]`` and the matching ``[[policy.endpoint]]``."""

    endpoint_id: str
    endpoint_name: str
    mode: Mode
    """The endpoint's mode before per-rule overrides (use :meth:`Config.rule_mode` for a rule)."""
    mode_is_explicit: bool
    """True when a ``[[policy.endpoint]]`` entry set ``mode`` (it then beats ``"enforce"`` rule overrides)."""
    watched: bool
    allow_listed: bool
    always_paused: bool
    max_execution_s: float
    grace_s: float
    max_idle_timeout_s: int
    max_workers: int
    max_workers_min: int
    max_workers_standby: int
    required_execution_timeout_s: int
    brake_idle_timeout_s: int
    max_actions_per_hour: int
    cooldown_s: float
    stale_after_s: float
    matched_overrides: tuple[str, ...]
    """The ``match`` patterns applied, in order, so a decision can say why it used these numbers."""

    @property
    def runaway_after_s(self) -> float:
        """Work in progress older than this many seconds is a runaway."""
        return self.max_execution_s + self.grace_s


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """``[policy]``: the defaults every endpoint gets, and what the daemon may do about them."""

    mode: Mode = Mode.ENFORCE
    """"enforce" acts (cancel, patch, pause); "dry-run" only records what it would have done and the money
    that would have saved. Default "enforce"."""
    dry_run_only: bool = False
    """true: nothing is ever changed at RunPod, whatever a rule's, an endpoint's or the dashboard's mode
    says (``run --dry-run`` sets it for one run). Default false."""
    watch: tuple[str, ...] = field(default=("*",), metadata=_limits(check=_watch_problem))
    """Endpoint ids or names (patterns allowed) to watch; "*" = all; never empty (an empty list would watch
    nothing). Default ["*"]."""
    allow_list: tuple[str, ...] = field(default=(), metadata=_limits())
    """Endpoint ids or names the budget brake never stops (other rules still apply). Default []."""
    always_paused: tuple[str, ...] = field(default=(), metadata=_limits())
    """Endpoint ids or names always kept at workers max 0. Default []."""
    max_execution_s: float = field(default=120.0, metadata=_limits(gt=0, le=604800))
    """Work in progress longer than this is a runaway, seconds (in (0, 604800], 7 days). Default 120."""
    grace_s: float = field(default=30.0, metadata=_limits(ge=0, le=3600))
    """Extra seconds past a limit before acting, seconds (0-3600). Default 30."""
    max_idle_timeout_s: int = field(default=10, metadata=_limits(ge=1, le=3600))
    """Highest idle timeout allowed on an endpoint, seconds (1-3600, RunPod's range). Default 10."""
    max_workers: int = field(default=1, metadata=_limits(ge=0, le=1000))
    """Highest workers max allowed on an endpoint (0-1000). Default 1."""
    max_workers_min: int = field(default=0, metadata=_limits(ge=0, le=1000))
    """Highest workers min (active workers, billed 24/7) allowed (0-1000, <= max_workers). Default 0."""
    max_workers_standby: int = field(default=0, metadata=_limits(ge=0, le=1000))
    """Highest workers standby allowed (0-1000). Default 0."""
    required_execution_timeout_s: int = field(default=120, metadata=_limits(ge=5, le=604800))
    """Execution timeout patched onto endpoints that have none or a longer one, seconds (5-604800).
    Default 120."""
    brake_idle_timeout_s: int = field(default=5, metadata=_limits(ge=1, le=3600))
    """Idle timeout set by the budget brake on the endpoints it keeps, seconds (1-3600). Default 5."""
    max_actions_per_hour: int = field(default=12, metadata=_limits(ge=1, le=1000))
    """Most actions on one endpoint per hour (1-1000); beyond that the daemon alerts instead. Default 12."""
    cooldown_s: float = field(default=300.0, metadata=_limits(ge=0, le=86400))
    """Seconds to wait after an action on an endpoint before the next one (0-86400). Default 300."""
    stale_after_s: float = field(default=30.0, metadata=_limits(gt=0, le=3600))
    """Data older than this many seconds never triggers an action (in (0, 3600], and at least
    2 x runpod.poll_interval_s, so the daemon gets two looks at an endpoint within it). Beyond 100 idle
    endpoints (no worker, no job), idle ones' /health is read in turns, each within this bound. Default 30."""
    rules: RuleModes = field(default_factory=RuleModes, metadata=_limits())
    """``[policy.rules]``: per-rule modes, all "inherit" by default."""
    endpoint: tuple[EndpointOverride, ...] = field(default=(), metadata=_limits())
    """``[[policy.endpoint]]``: per-endpoint overrides. Default: none."""

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.max_workers_min > self.max_workers:
            yield (
                ("max_workers_min",),
                f"must be <= max_workers ({self.max_workers}), got {self.max_workers_min}",
            )
        for both in sorted(set(self.allow_list) & set(self.always_paused)):
            yield ("always_paused",), f"{both!r} is also in allow_list"
        first_with: dict[str, int] = {}
        for index, override in enumerate(self.endpoint):
            if override.match in first_with:
                yield (
                    ("endpoint", index, "match"),
                    f"duplicate match {override.match!r} (also policy.endpoint"
                    f"[{first_with[override.match]}]): merge the two entries into one",
                )
            first_with.setdefault(override.match, index)
        for index, override in enumerate(self.endpoint):
            workers = override.max_workers if override.max_workers is not None else self.max_workers
            workers_min = (
                override.max_workers_min if override.max_workers_min is not None else self.max_workers_min
            )
            if workers_min > workers:
                yield (
                    ("endpoint", index, "max_workers_min"),
                    f"must be <= max_workers ({workers}), got {workers_min}",
                )


@dataclass(frozen=True, slots=True)
class LogSource:
    """``[[pings.source]]``: one access log to watch for pings and request floods, and how its lines map
    to events. The one log-source type: the configuration builds it and the log tailer
    (:class:`watchdog.logwatch.LogTailer`) reads with it, and :meth:`problems` is its one validator."""

    name: str = field(metadata=_limits(nonempty=True))
    """Label used in alerts and the ledger. Required, unique."""
    path: str = field(metadata=_limits(nonempty=True))
    """Log file to follow: an absolute path, one file (no glob characters ``*?[``). Required."""
    format: LogFormat = "json"
    """"json" (one object per line) or "regex". Default "json"."""
    regex: str = field(default="", metadata=_limits(check=_regex_problem))
    """Python regular expression whose named groups ``(?P<name>...)`` are named like the *_field keys (at
    least the time, endpoint and kind ones); required when format = "regex". It runs on RE2, a linear-time
    engine: no lookarounds or backreferences, and ``\\d \\w \\s`` match ASCII only. Default ""."""
    time_field: str = field(default="ts", metadata=_limits(nonempty=True))
    """Field (or group) holding the time: epoch seconds or ISO-8601. Default "ts"."""
    endpoint_field: str = field(default="endpoint_id", metadata=_limits(nonempty=True))
    """Field holding the endpoint id. Default "endpoint_id"."""
    kind_field: str = field(default="kind", metadata=_limits(nonempty=True))
    """Field saying "request" or "ping". Default "kind"."""
    source_field: str = field(default="source", metadata=_limits(nonempty=True))
    """Field naming the caller (IP or client id). Default "source"."""
    job_field: str = field(default="job_id", metadata=_limits(nonempty=True))
    """Field holding the job id. Default "job_id"."""
    tier_field: str = field(default="tier", metadata=_limits(nonempty=True))
    """Field holding the tier ("free" or "paid"); missing = budget.free_share applies. Default "tier"."""
    worker_field: str = field(default="worker_id", metadata=_limits(nonempty=True))
    """Field holding the worker id. Default "worker_id"."""
    start_at: StartAt = "end"
    """Where to start reading a file the daemon has never read: "end" (only what is appended from now on:
    an existing multi-gigabyte log is not replayed) or "start" (replay it, a bounded amount per tick).
    A file already read resumes where it stopped. Default "end"."""

    @property
    def field_names(self) -> dict[str, str]:
        """Event field → the key (JSON) or group (regex) holding it in a line."""
        return {
            "ts": self.time_field,
            "endpoint_id": self.endpoint_field,
            "kind": self.kind_field,
            "source": self.source_field,
            "job_id": self.job_field,
            "tier": self.tier_field,
            "worker_id": self.worker_field,
        }

    def problems(self) -> list[str]:
        """Every problem of this source, each ``key: message`` (empty when it is usable)."""
        found = [f"{_dotted(path)}: {message}" for path, message in self._problems()]
        if not self.name:
            found.insert(0, "name: must not be empty")
        if not self.path:
            found.insert(0, "path: must not be empty")
        return found

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        globs = sorted({char for char in self.path if char in _GLOB_CHARACTERS})
        if globs:
            yield (
                ("path",),
                f"contains glob character(s) {' '.join(repr(char) for char in globs)}: a log source is one "
                "file, patterns are not expanded",
            )
        if self.format == "regex":
            if not self.regex:
                yield ("regex",), 'is required when format = "regex"'
                return
            try:
                groups = set(compile_log_regex(self.regex).groupindex)
            except ValueError as error:
                yield ("regex",), str(error)
                return
            required = (self.time_field, self.endpoint_field, self.kind_field)
            missing = [name for name in required if name not in groups]
            if missing:
                yield (
                    ("regex",),
                    "needs named groups for " + ", ".join(f"(?P<{name}>...)" for name in missing),
                )
        elif self.format != "json":  # a source built in code can hold anything
            yield ("format",), f'must be "json" or "regex", got {self.format!r}'  # type: ignore[unreachable]
        elif self.regex:
            yield ("regex",), 'is only used when format = "regex"'


@dataclass(frozen=True, slots=True)
class PingsConfig:
    """``[pings]``: the seed's third rule, "watch the ping rate in our logs and cut suspicious traffic"."""

    source: tuple[LogSource, ...] = field(default=(), metadata=_limits())
    """``[[pings.source]]``: access logs to follow. Default: none."""
    max_requests_per_min: int = field(default=30, metadata=_limits(ge=1, le=1_000_000))
    """Requests per minute per endpoint above which traffic is suspicious (1-1000000). Default 30."""
    max_pings_per_min: int = field(default=20, metadata=_limits(ge=1, le=1_000_000))
    """Pings per minute per endpoint above which traffic is suspicious (1-1000000); a heartbeat every 10 s
    is 6/min. Default 20."""
    keep_warm_window_min: float = field(default=30.0, metadata=_limits(gt=0, le=1440))
    """Window for keep-warm detection, minutes (in (0, 1440], a day). Default 30."""
    keep_warm_max_busy_ratio: float = field(default=0.2, metadata=_limits(ge=0, le=1))
    """Steady pings while workers are busy less than this share of the window = keep-warm pinging
    (in [0, 1]). Default 0.2."""
    jump_min_count: int = field(default=10, metadata=_limits(ge=1, le=1_000_000))
    """Fewest requests in an hour before a jump counts (1-1000000). Default 10."""
    jump_factor: float = field(default=4.0, metadata=_limits(gt=1, le=1000))
    """An hour with at least this many times the usual hourly rate (and implausible by chance) is a jump
    (in (1, 1000]). Default 4.0."""
    cut: CutAction = "alert"
    """What to do about suspicious traffic: "alert" only, "deny-list" (append the source to deny_list_path),
    or "cooldown" (pause the endpoint for cut_cooldown_s). Default "alert"."""
    deny_list_path: str = ""
    """File the gateway reads its deny list from: an absolute path (required when cut = "deny-list").
    Under systemd ($STATE_DIRECTORY or $RUNTIME_DIRECTORY set) it must be inside one of those directories:
    ProtectSystem=strict makes everything else read-only. Default ""."""
    cut_cooldown_s: float = field(default=900.0, metadata=_limits(gt=0, le=604800))
    """How long a cut lasts, seconds (in (0, 604800], 7 days). Default 900."""
    never_cut: tuple[str, ...] = field(default=(), metadata=_limits())
    """Sources (addresses, CIDRs or client ids, as the logs name them) that are never cut, whatever their
    traffic: partners, the team's own monitoring. They are still reported. Default []."""

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        seen: set[str] = set()
        for index, source in enumerate(self.source):
            if source.name in seen:
                yield ("source", index, "name"), f"duplicate source name {source.name!r}"
            seen.add(source.name)
            if source.path and not Path(source.path).is_absolute():
                yield ("source", index, "path"), _relative_path_problem(source.path)
        if self.cut == "deny-list" and not self.deny_list_path:
            yield ("deny_list_path",), 'is required when cut = "deny-list"'
        if self.deny_list_path and not Path(self.deny_list_path).is_absolute():
            yield ("deny_list_path",), _relative_path_problem(self.deny_list_path)


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """``[ledger]``: the SQLite file that records every tick, decision and dollar (the TUI reads it)."""

    path: str = ""
    """SQLite file. "" = "$STATE_DIRECTORY/ledger.sqlite3" when systemd sets STATE_DIRECTORY, else
    "./runpod-watchdog.sqlite3". A relative path is taken from STATE_DIRECTORY (or the current directory).
    Default ""."""
    raw_retention_days: int = field(default=35, metadata=_limits(ge=32, le=366))
    """Days per-tick rows are kept (32-366; at least 32: the month to date counts, hour by hour, the larger
    of the estimate and the bill, so the month's hours must still be hourly). Default 35."""
    rollup_retention_days: int = field(default=400, metadata=_limits(ge=1, le=3660))
    """Days hourly/daily rollups are kept (raw_retention_days-3660, ten years). Default 400."""
    resolved_path: Path = field(default=Path("runpod-watchdog.sqlite3"), metadata=_limits(derived=True))
    """Absolute ledger path, computed at load time from ``path`` and the environment (not a file key)."""

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.rollup_retention_days < self.raw_retention_days:
            yield (
                ("rollup_retention_days",),
                f"must be >= raw_retention_days ({self.raw_retention_days}), "
                f"got {self.rollup_retention_days}",
            )


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus ``/metrics`` endpoint."""

    enabled: bool = True
    """Serve /metrics. Default true."""
    listen: str = field(default="127.0.0.1:9877", metadata=_limits(check=_listen_problem))
    """HOST:PORT to listen on (IPv6 as "[::1]:9877"; port 0 = any free port). Default "127.0.0.1:9877"."""
    tls_cert_file: str = ""
    """PEM certificate for HTTPS, an absolute path to a readable file; set both TLS files or neither.
    Default "" (plain HTTP)."""
    tls_key_file: str = ""
    """PEM private key for HTTPS, an absolute path to a readable file; set both TLS files or neither.
    Default ""."""

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            missing = "tls_key_file" if self.tls_cert_file else "tls_cert_file"
            yield (missing,), "set both tls_cert_file and tls_key_file, or neither"
        for key in ("tls_cert_file", "tls_key_file"):
            name = getattr(self, key)
            if name and not Path(name).is_absolute():
                yield (key,), _relative_path_problem(name)


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """``[slack]``: alert delivery. The webhook URL itself is a secret (``SLACK_WEBHOOK_URL``)."""

    channel: str = ""
    """Channel the webhook posts to, shown in the TUI only (the webhook decides). Default ""."""
    min_interval_s: float = field(default=1.0, metadata=_limits(ge=0, le=300))
    """Fewest seconds between two messages (0-300; Slack allows about 1 per second). Default 1.0."""
    cost_per_1000_alert_usd: float = field(default=3.0, metadata=_limits(gt=0, le=10000))
    """Alert when the cost per 1000 requests exceeds this, USD (in (0, 10000]). Default 3.0."""
    cold_start_alert_s: float = field(default=15.0, metadata=_limits(gt=0, le=3600))
    """Alert when cold starts take longer than this, seconds (in (0, 3600]). Default 15.0."""
    max_attempts: int = field(default=0, metadata=_limits(ge=0, le=1000))
    """Delivery attempts per alert (0-1000; 0 = retry until delivered). Default 0."""
    retry_max_s: float = field(default=300.0, metadata=_limits(gt=0, le=3600))
    """Longest wait between two delivery attempts, seconds (in (0, 3600]). Default 300."""


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """``[control]``: the local socket through which the TUI asks the daemon to act."""

    socket_path: str = ""
    """Unix socket path. "" = "$RUNTIME_DIRECTORY/control.sock" when systemd sets RUNTIME_DIRECTORY, else
    "runpod-watchdog.sock" next to the ledger. Default ""."""
    socket_mode: str = field(default="0660", metadata=_limits(check=_socket_mode_problem))
    """Permissions of the socket, octal string (the group may drive the daemon); nothing for other users
    (the last digit must be 0: "0660" or "0600"). Default "0660"."""
    resolved_socket_path: Path = field(default=Path("runpod-watchdog.sock"), metadata=_limits(derived=True))
    """Absolute socket path, computed at load time (not a file key)."""

    @property
    def socket_mode_bits(self) -> int:
        return int(self.socket_mode, 8)


@dataclass(frozen=True, slots=True)
class TuiConfig:
    """``[tui]``: the dashboard."""

    refresh_s: float = field(default=2.0, metadata=_limits(gt=0, le=60))
    """Seconds between two reads of the daemon's status (in (0, 60]); its figures change once a tick.
    Default 2.0."""
    stale_after_s: float = field(default=15.0, metadata=_limits(gt=0, le=3600))
    """The status bar says "stale" when the last tick is older than this, seconds (in (0, 3600]).
    Default 15."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. Immutable and secret-free, so it can be logged and shared across tasks."""

    budget: BudgetConfig = field(default_factory=BudgetConfig)
    """``[budget]``."""
    prices: PricesConfig = field(default_factory=PricesConfig)
    """``[prices]``."""
    runpod: RunPodConfig = field(default_factory=RunPodConfig)
    """``[runpod]``."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """``[policy]``."""
    pings: PingsConfig = field(default_factory=PingsConfig)
    """``[pings]``."""
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    """``[ledger]``."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """``[metrics]``."""
    slack: SlackConfig = field(default_factory=SlackConfig)
    """``[slack]``."""
    control: ControlConfig = field(default_factory=ControlConfig)
    """``[control]``."""
    tui: TuiConfig = field(default_factory=TuiConfig)
    """``[tui]``."""
    source: str = field(default=BUILTIN_SOURCE, compare=False, metadata=_limits(derived=True))
    """Where this came from: the file path, or "<built-in defaults>" (not a file key)."""

    @property
    def price_table(self) -> PriceTable:
        return self.prices.table

    def _problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        poll = self.runpod.poll_interval_s
        if self.policy.stale_after_s < 2 * poll:
            yield (
                ("policy", "stale_after_s"),
                f"must be >= 2 x runpod.poll_interval_s ({_number(2 * poll)}), got "
                f"{_number(self.policy.stale_after_s)}: the daemon must get two looks at an endpoint within "
                "the stale bound, or one missed poll leaves it blind",
            )

    def policy_for(self, endpoint_id: str, endpoint_name: str) -> EffectivePolicy:
        """Resolve ``[policy]`` plus each matching ``[[policy.endpoint]]`` (file order) for one endpoint."""
        policy = self.policy
        resolved: dict[str, Any] = {name: getattr(policy, name) for name in _OVERRIDABLE}
        explicit_mode = False
        applied: list[str] = []
        for override in policy.endpoint:
            if not override.matches(endpoint_id, endpoint_name):
                continue
            applied.append(override.match)
            for name in _OVERRIDABLE:
                value = getattr(override, name)
                if value is not None:
                    resolved[name] = value
                    explicit_mode = explicit_mode or name == "mode"
        return EffectivePolicy(
            endpoint_id=endpoint_id,
            endpoint_name=endpoint_name,
            mode_is_explicit=explicit_mode,
            watched=_matches_any(policy.watch, endpoint_id, endpoint_name),
            allow_listed=_matches_any(policy.allow_list, endpoint_id, endpoint_name),
            always_paused=_matches_any(policy.always_paused, endpoint_id, endpoint_name),
            brake_idle_timeout_s=policy.brake_idle_timeout_s,
            max_actions_per_hour=policy.max_actions_per_hour,
            cooldown_s=policy.cooldown_s,
            stale_after_s=policy.stale_after_s,
            matched_overrides=tuple(applied),
            **resolved,
        )

    def rule_mode(self, rule: str, endpoint_id: str, endpoint_name: str) -> Mode:
        """The mode one rule runs in on one endpoint.

        A rule set to "dry-run" is dry-run everywhere; otherwise an endpoint's explicit ``mode`` wins; then a
        rule set to "enforce"; then ``policy.mode``. So ``policy.mode = "dry-run"`` with the shipped
        (all "inherit") rules makes everything dry-run. Raises KeyError for an unknown rule.
        """
        return self.rule_mode_for(rule, self.policy_for(endpoint_id, endpoint_name))

    def rule_mode_for(self, rule: str, effective: EffectivePolicy) -> Mode:
        """:meth:`rule_mode` for an endpoint whose :meth:`policy_for` is already resolved (a tick resolves
        it once per endpoint, not once per rule: each resolution matches every pattern)."""
        rule_setting = self.policy.rules.get(rule)
        if rule_setting == RuleMode.DRY_RUN:
            return Mode.DRY_RUN
        if effective.mode_is_explicit:
            return effective.mode
        if rule_setting == RuleMode.ENFORCE:
            return Mode.ENFORCE
        return self.policy.mode

    def summary(self) -> str:
        """One line for ``check-config`` and the daemon's start-up log."""
        budget = self.budget
        fixed = len(budget.fixed_costs)
        sources = len(self.pings.source)
        return (
            f"{self.source}: OK — budget {budget.monthly_eur:.2f} EUR/month ({budget.monthly_usd:.2f} USD), "
            f"{fixed} fixed cost{'' if fixed == 1 else 's'}, mode {self.policy.mode}, "
            f"{len(self.prices.gpu)} GPU prices, {sources} log source{'' if sources == 1 else 's'}, "
            f"ledger {self.ledger.resolved_path}"
        )


def _matches(pattern: str, endpoint_id: str, endpoint_name: str) -> bool:
    return fnmatch.fnmatchcase(endpoint_id, pattern) or fnmatch.fnmatchcase(endpoint_name, pattern)


def _matches_any(patterns: tuple[str, ...], endpoint_id: str, endpoint_name: str) -> bool:
    return any(_matches(pattern, endpoint_id, endpoint_name) for pattern in patterns)


# ----------------------------------------------------------------------------------------------------
# Secrets


class Secret:
    """A secret string that never shows itself: ``repr``/``str``/f-strings print ``********``.

    Call :meth:`reveal` at the one place the value is needed (an HTTP header), never earlier.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, format_spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret is not pickled, so it cannot end up on disk by accident")


SecretOrigin = Literal["credential", "environment", "unset"]


MIN_API_KEY_CHARS = 16
"""RunPod's keys are about 40 characters; the simulator's published one is 18."""


@dataclass(frozen=True, slots=True)
class Secrets:
    """The two secrets, kept apart from :class:`Config` so that logging a config can never leak them."""

    runpod_api_key: Secret | None = None
    """``RUNPOD_API_KEY``: the RunPod API key (Bearer token)."""
    runpod_api_key_origin: SecretOrigin = "unset"
    """Where the key came from: a systemd credential, the environment, or nowhere."""
    slack_webhook_url: Secret | None = None
    """``SLACK_WEBHOOK_URL``: the Slack incoming-webhook URL."""
    slack_webhook_url_origin: SecretOrigin = "unset"
    """Where the webhook came from."""


def load_secrets(env: Mapping[str, str] | None = None) -> Secrets:
    """Read ``RUNPOD_API_KEY`` and ``SLACK_WEBHOOK_URL``.

    Order: the systemd credential file ``$CREDENTIALS_DIRECTORY/<NAME>`` first (the hardened channel:
    ``LoadCredential=``), then the environment variable of the same name. Surrounding whitespace is
    stripped; an empty value counts as unset. Raises ConfigError (never showing a value) when a credential
    file cannot be read or the webhook is not an https URL.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    found: dict[str, tuple[Secret | None, SecretOrigin]] = {}
    for name in ("RUNPOD_API_KEY", "SLACK_WEBHOOK_URL"):
        value, origin = _read_secret(name, env, problems)
        found[name] = (Secret(value) if value else None, origin if value else "unset")
    key = found["RUNPOD_API_KEY"][0]
    if key is not None and (len(key.reveal()) < MIN_API_KEY_CHARS or any(c.isspace() for c in key.reveal())):
        problems.append(
            f"{found['RUNPOD_API_KEY'][1]}: RUNPOD_API_KEY: not an API key (fewer than {MIN_API_KEY_CHARS} "
            "characters, or whitespace inside; value not shown): every answer has the key removed before it "
            "is read, so a short one would cut pieces out of ids and amounts"
        )
    webhook = found["SLACK_WEBHOOK_URL"][0]
    if webhook is not None:
        parts = urlsplit(webhook.reveal())
        if parts.scheme != "https" or not parts.hostname:
            problems.append("environment: SLACK_WEBHOOK_URL: must be an https URL (value not shown)")
    if problems:
        raise ConfigError(problems)
    return Secrets(
        runpod_api_key=found["RUNPOD_API_KEY"][0],
        runpod_api_key_origin=found["RUNPOD_API_KEY"][1],
        slack_webhook_url=webhook,
        slack_webhook_url_origin=found["SLACK_WEBHOOK_URL"][1],
    )


def _read_secret(name: str, env: Mapping[str, str], problems: list[str]) -> tuple[str, SecretOrigin]:
    credentials_dir = env.get("CREDENTIALS_DIRECTORY", "")
    if credentials_dir:
        credential = Path(credentials_dir) / name
        if credential.exists():
            try:
                return credential.read_text(encoding="utf-8").strip(), "credential"
            except (OSError, UnicodeDecodeError) as error:
                problems.append(f"{credential}:1: {name}: cannot read the credential: {type(error).__name__}")
                return "", "unset"
    return env.get(name, "").strip(), "environment"


# ----------------------------------------------------------------------------------------------------
# Loading


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """All built-in defaults, no file; the environment still sets the URL overrides and derived paths."""
    return _load_document({}, BUILTIN_SOURCE, _KeyLocator(""), os.environ if env is None else env)


ConfigOrigin = Literal["option", "environment", "working directory", "system", "none"]


@dataclass(frozen=True, slots=True)
class ConfigLocation:
    """Which configuration file a command uses, and why (:func:`find_config`)."""

    path: Path | None
    """The file; None when the search found none (the built-in defaults apply)."""
    origin: ConfigOrigin
    """How it was found: given with ``--config``, named by ``$RUNPOD_WATCHDOG_CONFIG``, ``./config.toml``
    in the working directory, the system file, or none."""

    @property
    def why(self) -> str:
        """How it was found, in words (for a log line)."""
        return {
            "option": "given with --config",
            "environment": f"named by ${CONFIG_ENV_VAR}",
            "working directory": f"./{LOCAL_CONFIG_NAME} in the working directory",
            "system": "the system configuration",
            "none": f"no configuration file found (searched {CONFIG_SEARCH_PATH})",
        }[self.origin]


def find_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ConfigLocation:
    """The configuration file every command uses: ``path`` (``--config``) if given, else
    ``$RUNPOD_WATCHDOG_CONFIG`` if set, else ``./config.toml`` if it is a file, else
    ``/etc/runpod-watchdog/config.toml`` if it is a file, else none (the built-in defaults).

    A given path or a set variable is used even when the file is missing: a typo must fail loudly, not fall
    through to another file. ``cwd`` defaults to the working directory (tests pass their own).
    """
    env = os.environ if env is None else env
    if path is not None and str(path):
        return ConfigLocation(Path(path), "option")
    if env.get(CONFIG_ENV_VAR):
        return ConfigLocation(Path(env[CONFIG_ENV_VAR]), "environment")
    local = (Path.cwd() if cwd is None else cwd) / LOCAL_CONFIG_NAME
    if local.is_file():
        return ConfigLocation(local, "working directory")
    if SYSTEM_CONFIG_PATH.is_file():
        return ConfigLocation(SYSTEM_CONFIG_PATH, "system")
    return ConfigLocation(None, "none")


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, *, check_files: bool = True
) -> Config:
    """Load and validate a config file; raise ConfigError listing every problem found.

    Args:
        path: the file. None searches as :func:`find_config` does, and uses the built-in defaults when no
            file is found.
        env: environment for URL overrides and systemd directories (default ``os.environ``).
        check_files: also check, as the user running this, what the daemon will open: the ledger's
            directory exists and is writable (and the ledger is not a directory), log files that exist are
            regular files, the control socket's directory exists or can be created, the TLS files can be
            read, the deny list's directory is writable. That is what ``run`` would fail on, so
            ``check-config`` (systemd's ``ExecStartPre=``, as the service user) refuses it first. Readers
            that run as another user and write none of these (the dashboard, ``snapshot``) pass False.
    """
    env = os.environ if env is None else env
    if path is None:
        found = find_config(None, env).path
        if found is None:
            return default_config(env)
        path = found
    label = str(path)
    text = _read_config_text(Path(path), label)
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark some editors add: TOML has no use for it
    too_deep = _nesting_problem(text)
    if too_deep is not None:
        raise ConfigError(f"{label}:{too_deep[0]}: syntax: {too_deep[1]}")
    try:
        document = tomllib.loads(text)
        locator = _KeyLocator(text)
        return _load_document(document, label, locator, env, check_files=check_files)
    except tomllib.TOMLDecodeError as error:
        line = _syntax_error_line(str(error), text)
        raise ConfigError(f"{label}:{line}: syntax: {error}{_odd_character_note(text, line)}") from None
    except RecursionError:  # pragma: no cover - _nesting_problem refuses what could recurse this deep
        raise ConfigError(f"{label}:1: syntax: nested too deeply to read") from None


def _read_config_text(path: Path, label: str) -> str:
    """The file's text, refusing what is not a regular file or is over :data:`MAX_CONFIG_BYTES` before
    reading it whole (and reading at most one byte more than the limit, whatever ``stat`` said)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{label}:1: (file): is not a regular file but {file_kind(info.st_mode)}; "
                "a configuration is a file"
            )
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(_too_big(label, info.st_size))
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{label}:1: (file): cannot read: {error.strerror or error}") from None
    if len(data) > MAX_CONFIG_BYTES:  # it grew since stat
        raise ConfigError(_too_big(label, None))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{label}:1: (file): not UTF-8 text: {error.reason}") from None


def _too_big(label: str, size: int | None) -> str:
    shown = f"is {size} bytes" if size is not None else "is larger than that"
    return (
        f"{label}:1: (file): {shown}, over the {MAX_CONFIG_BYTES}-byte (1 MiB) limit of a configuration "
        "file (the shipped one is about 15 KB): is it the right file?"
    )


def file_kind(mode: int) -> str:
    """What a path is, for messages: "a directory", "a FIFO (named pipe)"... (``st_mode`` of its stat)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a file"


def _nesting_problem(text: str) -> tuple[int, str] | None:
    """``(line, message)`` for the first line nesting arrays/inline tables deeper than :data:`MAX_NESTING`
    or writing a key or table header of more parts than that; checked on the text, before tomllib."""
    state = _LexState()
    for number, line in enumerate(text.split("\n"), start=1):
        state.consume(line)
        if state.peak > MAX_NESTING:
            return number, (
                f"arrays and inline tables nested more than {MAX_NESTING} deep (a configuration needs 2)"
            )
        if state.dots >= MAX_NESTING:
            return (
                number,
                f"a key or table header of more than {MAX_NESTING} dotted parts (a configuration needs 3)",
            )
    return None


def _odd_character_note(text: str, line: int) -> str:
    """For a syntax error: name an invisible character on the line, or a non-ASCII one before any quote
    or comment (in a bare key), which a person cannot see is wrong."""
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    odd = _odd_character(source, non_ascii=False)
    kind = "an invisible character"
    if odd is None:
        odd = _odd_character(re.split(r"[\"'#]", source, maxsplit=1)[0], non_ascii=True)
        kind = "not a plain ASCII character (bare keys are ASCII)"
    if odd is None:
        return ""
    return f"; the line has {_character_name(odd[1])} at column {odd[0] + 1}, {kind}: delete or retype it"


def _syntax_error_line(message: str, text: str) -> int:
    match = re.search(r"at line (\d+)", message)
    if match:
        return int(match.group(1))
    if "end of document" in message:
        return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return 1


KeyPath = tuple[str | int, ...]
_T = TypeVar("_T")


@dataclass(slots=True)
class _Problems:
    """Collects problems as ``(line, text)``; anything under a key already reported as a secret is dropped,
    so a secret value never gets echoed by a later type or range message."""

    file: str
    locator: _KeyLocator
    found: list[tuple[int, str]] = field(default_factory=list)
    secret_paths: set[KeyPath] = field(default_factory=set)

    def add(self, path: KeyPath, message: str) -> None:
        if any(path[: len(secret)] == secret for secret in self.secret_paths):
            return
        self.found.append((self.locator.line_of(path), f"{_dotted(path)}: {message}"))

    def add_secret(self, path: KeyPath, shape: str | None = None) -> None:
        self.add(path, SECRET_MESSAGE if shape is None else f"looks like {shape}; {SECRET_MESSAGE}")
        self.secret_paths.add(path)

    def character(self, path: KeyPath, text: str, index: int) -> str:
        """``U+0435 CYRILLIC SMALL LETTER IE at column 9``: ``text[index]`` and where it is on its line."""
        char = text[index]
        column = self.locator.line_text(self.locator.line_of(path)).find(char) + 1
        where = f"at column {column}" if column > 0 else f"at character {index + 1} of the value"
        return f"{_character_name(char)} {where}"

    def lines(self) -> list[str]:
        return [f"{self.file}:{line}: {text}" for line, text in sorted(self.found, key=lambda item: item[0])]


def _load_document(
    document: dict[str, Any],
    label: str,
    locator: _KeyLocator,
    env: Mapping[str, str],
    *,
    check_files: bool = False,
) -> Config:
    problems = _Problems(label, locator)
    _scan_for_secrets(document, (), problems)
    config = _build(Config, document, (), problems)
    env_problems: list[str] = []
    if config is not None:
        config = _apply_environment(config, label, env, env_problems, problems)
        if check_files and not problems.found:
            _check_files(config, problems, env)
    all_lines = problems.lines() + env_problems
    if all_lines or config is None:
        raise ConfigError(all_lines or [f"{label}:1: (file): invalid configuration"])
    return config


def _apply_environment(
    config: Config, label: str, env: Mapping[str, str], env_problems: list[str], problems: _Problems
) -> Config:
    runpod = config.runpod
    from_env: dict[str, str] = {}
    for variable, attribute, suffix in RUNPOD_URL_VARIABLES:
        value = env.get(variable, "").strip()
        if not value:
            continue
        url = value.rstrip("/") + suffix
        problem = _url_problem(url)
        if problem is not None:
            env_problems.append(f"environment: {variable}: runpod.{attribute} {problem}")
        else:
            runpod = dataclasses.replace(runpod, **{attribute: url})  # type: ignore[arg-type]  # a URL field
            from_env[attribute] = variable
    mixed = _mixed_urls_problem(runpod, from_env, label)
    if mixed is not None:
        if from_env:
            env_problems.append(f"environment: {', '.join(from_env.values())}: {mixed}")
        else:
            problems.add(("runpod", "rest_url"), mixed)

    state_dir = _first_dir(env.get("STATE_DIRECTORY", ""))
    base_dir = Path(state_dir) if state_dir else Path.cwd()
    if config.ledger.path:
        ledger_path = base_dir / Path(config.ledger.path).expanduser()
    elif state_dir:
        ledger_path = base_dir / "ledger.sqlite3"
    else:
        ledger_path = base_dir / "runpod-watchdog.sqlite3"
    ledger = dataclasses.replace(config.ledger, resolved_path=Path(os.path.abspath(ledger_path)))

    runtime_dir = _first_dir(env.get("RUNTIME_DIRECTORY", ""))
    if config.control.socket_path:
        socket_path = (Path(runtime_dir) if runtime_dir else Path.cwd()) / Path(
            config.control.socket_path
        ).expanduser()
    elif runtime_dir:
        socket_path = Path(runtime_dir) / "control.sock"
    else:
        socket_path = ledger.resolved_path.parent / "runpod-watchdog.sock"
    socket_path = Path(os.path.abspath(socket_path))
    if len(os.fsencode(socket_path)) > _UNIX_SOCKET_PATH_MAX:
        problems.add(
            ("control", "socket_path"),
            f"the socket path {str(socket_path)!r} is longer than {_UNIX_SOCKET_PATH_MAX} bytes, "
            "the limit for a Unix socket",
        )
    control = dataclasses.replace(config.control, resolved_socket_path=socket_path)

    metrics = config.metrics
    for key in ("tls_cert_file", "tls_key_file"):
        name = getattr(metrics, key)
        if name and not Path(name).expanduser().is_file():
            problems.add(("metrics", key), f"file not found: {name!r}")

    deny_list = config.pings.deny_list_path
    writable = [
        directory
        for variable in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY")
        for directory in env.get(variable, "").split(":")
        if directory
    ]
    if writable and deny_list and not any(_is_inside(deny_list, directory) for directory in writable):
        problems.add(
            ("pings", "deny_list_path"),
            f"{deny_list!r} is outside the service's writable directories ({', '.join(writable)}): under "
            "systemd (ProtectSystem=strict) the daemon cannot write anywhere else; put the deny list in "
            "one of them",
        )
    return dataclasses.replace(config, runpod=runpod, ledger=ledger, control=control, source=label)


def is_loopback_url(url: str) -> bool:
    """The URL's host is this machine: 127.0.0.0/8, ``::1``, or ``localhost`` (RFC 6761; not resolved)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mixed_urls_problem(runpod: RunPodConfig, from_env: Mapping[str, str], label: str) -> str | None:
    """Why the three RunPod URLs cannot be used together: some point at this machine (a simulator) and
    some elsewhere (the real RunPod). The daemon would read one account and act on the other, or a
    command would silently talk to the real RunPod while its user thinks it talks to the simulator."""
    local = [a for _, a, _ in RUNPOD_URL_VARIABLES if is_loopback_url(getattr(runpod, a))]
    if not local or len(local) == len(RUNPOD_URL_VARIABLES):
        return None
    origin = label if label != BUILTIN_SOURCE else "the built-in default"

    def shown(attribute: str) -> str:
        where = f"${from_env[attribute]}" if attribute in from_env else origin
        return f"runpod.{attribute} {getattr(runpod, attribute)} (from {where})"

    remote = [a for _, a, _ in RUNPOD_URL_VARIABLES if a not in local]
    return (
        f"the RunPod URLs point partly at this machine and partly elsewhere: {'; '.join(map(shown, local))} "
        f"is loopback, but {'; '.join(map(shown, remote))} is not, so requests would reach the real "
        "RunPod. Point all three at the simulator (--simulator URL, or the lines "
        "'runpod-watchdog simulate --env-file FILE' writes: RUNPOD_API_BASE_URL, RUNPOD_REST_API_URL and "
        "RUNPOD_ENDPOINT_BASE_URL) or none of them"
    )


def simulator_environment(base_url: str) -> dict[str, str]:
    """The environment that points every RunPod URL at the built-in simulator at ``base_url`` (its
    ``http://HOST:PORT``, loopback) and presents its published key: what ``--simulator URL`` sets, the
    same lines ``runpod-watchdog simulate`` prints and writes with ``--env-file``.

    ``SLACK_WEBHOOK_URL`` is emptied (a simulated account must not page the team: alerts go to the log)
    and ``CREDENTIALS_DIRECTORY`` is dropped by the caller (``SIMULATOR_DROPPED_VARIABLES``: a systemd
    credential would win over the simulator's key and send the real one to it).

    Raises:
        ConfigError: ``base_url`` is not a loopback http(s) URL without a path (the simulator only binds
            loopback).
    """
    url = base_url.strip().rstrip("/")
    problem = _url_problem(url)
    if problem is None and not is_loopback_url(url):
        problem = (
            "must be on this machine (127.0.0.1, ::1, localhost): the simulator only binds loopback, "
            f"got {_describe(url)}"
        )
    if problem is None and urlsplit(url).path not in ("", "/"):
        problem = f"must be the simulator's base URL (http://HOST:PORT, no path), got {_describe(url)}"
    if problem is not None:
        raise ConfigError(f"--simulator: {problem}")
    return {
        "RUNPOD_API_KEY": SIMULATOR_API_KEY,
        "RUNPOD_API_BASE_URL": url,
        "RUNPOD_REST_API_URL": f"{url}/v2",
        "RUNPOD_ENDPOINT_BASE_URL": f"{url}/v2",
        "SLACK_WEBHOOK_URL": "",
    }


SIMULATOR_DROPPED_VARIABLES = ("CREDENTIALS_DIRECTORY",)
"""Variables ``--simulator`` removes: systemd credentials would win over the simulator's key."""


def _first_dir(value: str) -> str:
    """systemd joins several ``StateDirectory=`` entries with ``:``; the first one is ours."""
    return value.split(":", 1)[0]


def _is_inside(path: str, directory: str) -> bool:
    return Path(os.path.normpath(path)).is_relative_to(os.path.normpath(directory))


# ----------------------------------------------------------------------------------------------------
# What the daemon will open, checked as the user running this (load_config(check_files=True))


def _check_files(config: Config, problems: _Problems, env: Mapping[str, str]) -> None:
    # Outside systemd, a missing directory right under /var/lib or /run is what StateDirectory= and
    # RuntimeDirectory= create at start (the manual `sudo -u runpod-watchdog check-config` before the first
    # start, or after a reboot emptied /run); under systemd they exist, and ExecStartPre checks them again.
    systemd_creates = () if env.get("STATE_DIRECTORY") or env.get("RUNTIME_DIRECTORY") else _SYSTEMD_ROOTS
    ledger = config.ledger.resolved_path
    found = _stat(ledger)
    if isinstance(found, os.stat_result) and stat.S_ISDIR(found.st_mode):
        problems.add(
            ("ledger", "path"),
            f"{str(ledger)!r} is a directory; name the SQLite file, e.g. {str(ledger / 'ledger.sqlite3')!r}",
        )
    elif isinstance(found, os.stat_result) and not stat.S_ISREG(found.st_mode):
        problems.add(
            ("ledger", "path"), f"{str(ledger)!r} is not a regular file but {file_kind(found.st_mode)}"
        )
    elif not _is_dir(ledger.parent):
        if ledger.parent.parent not in systemd_creates:  # the daemon does not create it; systemd might
            problems.add(
                ("ledger", "path"),
                f"the ledger's directory {str(ledger.parent)!r} does not exist; create it (the daemon does "
                "not)",
            )
    elif not os.access(ledger.parent, os.W_OK | os.X_OK):
        problems.add(
            ("ledger", "path"),
            f"the ledger's directory {str(ledger.parent)!r} is not writable by {_user()}: the daemon creates "
            "the ledger, its -wal, -shm and .lock files there",
        )
    elif isinstance(found, os.stat_result) and not os.access(ledger, os.R_OK | os.W_OK):
        problems.add(
            ("ledger", "path"), f"the ledger {str(ledger)!r} is not readable and writable by {_user()}"
        )

    for index, source in enumerate(config.pings.source):
        found = _stat(Path(source.path))
        where: KeyPath = ("pings", "source", index, "path")
        if isinstance(found, str):
            problems.add(where, f"cannot be checked: {found}")
        elif found is None:
            continue  # a log that does not exist yet is watched for
        elif not stat.S_ISREG(found.st_mode):
            problems.add(
                where, f"is not a regular file but {file_kind(found.st_mode)}; only regular files are read"
            )
        elif not os.access(source.path, os.R_OK):
            problems.add(where, f"is not readable by {_user()}")

    socket = config.control.resolved_socket_path
    found = _stat(socket, follow=False)
    if isinstance(found, os.stat_result) and not stat.S_ISSOCK(found.st_mode):
        problems.add(
            ("control", "socket_path"),
            f"{str(socket)!r} exists and is {file_kind(found.st_mode)}, not a socket: the daemon replaces "
            "what is there when it starts; choose another path",
        )
    else:
        problem = _directory_problem(socket.parent, systemd_creates)
        if problem is not None:
            problems.add(("control", "socket_path"), f"the control socket's {problem}")

    for key in ("tls_cert_file", "tls_key_file"):
        name = getattr(config.metrics, key)
        if name:
            try:
                with open(name, "rb") as handle:
                    handle.read(1)
            except OSError as error:
                problems.add(("metrics", key), f"cannot be read by {_user()}: {error.strerror or error}")

    deny_list = config.pings.deny_list_path
    if deny_list:
        problem = _directory_problem(Path(deny_list).parent, systemd_creates)
        if problem is not None:
            problems.add(("pings", "deny_list_path"), f"the deny list's {problem}")


def _stat(path: Path, *, follow: bool = True) -> os.stat_result | str | None:
    """The file's status; None if it does not exist; the reason if it cannot be looked at."""
    try:
        return path.stat() if follow else path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        return str(error.strerror or error)


def _is_dir(path: Path) -> bool:
    found = _stat(path)
    return isinstance(found, os.stat_result) and stat.S_ISDIR(found.st_mode)


def _directory_problem(directory: Path, systemd_creates: tuple[Path, ...] = ()) -> str | None:
    """Why the daemon could not create a file in ``directory`` (creating the directory if needed); None
    also when the directory is missing right under one of ``systemd_creates``."""
    existing = directory
    while not _is_dir(existing):
        found = _stat(existing)
        if found is not None or existing.parent == existing:
            shown = "does not exist" if found is None else f"is {_describe_found(found)}"
            return f"directory {str(directory)!r} cannot be created: {str(existing)!r} {shown}"
        existing = existing.parent
    if existing in systemd_creates and existing != directory:
        return None
    if os.access(existing, os.W_OK | os.X_OK):
        return None
    if existing == directory:
        return f"directory {str(directory)!r} is not writable by {_user()}"
    return (
        f"directory {str(directory)!r} does not exist and cannot be created: {str(existing)!r} is not "
        f"writable by {_user()}"
    )


def _describe_found(found: os.stat_result | str) -> str:
    return f"unreadable ({found})" if isinstance(found, str) else file_kind(found.st_mode)


def _user() -> str:
    """``user runpod-watchdog`` (or the uid when it has no name): whose access was checked."""
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"uid {uid}"


def _scan_for_secrets(value: Any, path: KeyPath, problems: _Problems) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            lowered = key.lower()
            if lowered in _SECRET_KEY_NAMES or lowered.endswith(_SECRET_KEY_SUFFIXES):
                problems.add_secret((*path, key))
            else:
                _scan_for_secrets(item, (*path, key), problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            # Items of an array of tables have their own location; items of a plain array point at the key.
            _scan_for_secrets(item, (*path, index) if isinstance(item, dict) else path, problems)
    elif isinstance(value, str):
        shape = _secret_shape(value, path[-1] if path else None)
        if shape is not None:
            problems.add_secret(path, shape)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _field_limits(cls: type, item: dataclasses.Field[Any]) -> Mapping[str, Any]:
    if cls is GpuPrice:
        return _GPU_PRICE_LIMITS.get(item.name, {})
    return item.metadata


def _build(cls: type[_T], raw: Mapping[str, Any], path: KeyPath, problems: _Problems) -> _T | None:
    """Build one dataclass from its TOML table, reporting into ``problems``; None if anything was wrong."""
    hints = _hints(cls)
    values: dict[str, Any] = {}
    failed = False
    known: list[str] = []
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        limits = _field_limits(cls, item)
        if limits.get("derived"):
            continue
        known.append(item.name)
        key_path = (*path, item.name)
        if item.name not in raw:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                problems.add(key_path, "missing required key")
                failed = True
            continue
        ok, value = _convert(hints[item.name], raw[item.name], key_path, problems, limits)
        if ok and limits.get("nonempty") and not value and value is not False:
            problems.add(key_path, "must not be empty")
            ok = False
        if ok and limits.get("check") is not None:
            message = limits["check"](value)
            if message is not None:
                problems.add(key_path, message)
                ok = False
        if ok:
            values[item.name] = value
        else:
            failed = True
    for key, value in raw.items():
        if key not in known:
            _report_unknown(key, value, (*path, key), known, problems)
    if failed:
        return None
    instance = cls(**values)
    cross_checks = getattr(instance, "_problems", None)
    if cross_checks is not None:
        found = list(cross_checks())
        for relative, message in found:
            problems.add((*path, *relative), message)
        if found:
            return None
    return instance


def _report_unknown(key: str, value: Any, path: KeyPath, known: list[str], problems: _Problems) -> None:
    is_table = isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)
    )
    message = "unknown section" if is_table else "unknown key"
    odd = _odd_character(key, non_ascii=True)
    if odd is not None:
        message += (
            f"; it contains {problems.character(path, key, odd[0])}, not a plain ASCII character: retype it"
        )
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    else:
        message += f"; expected one of: {', '.join(known)}"
    problems.add(path, message)


def _convert(
    hint: Any, value: Any, path: KeyPath, problems: _Problems, limits: Mapping[str, Any]
) -> tuple[bool, Any]:
    """Check ``value`` against a type hint (and numeric bounds); return ``(ok, converted value)``."""
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = (arg for arg in get_args(hint) if arg is not type(None))
        return _convert(inner, value, path, problems, limits)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            problems.add(path, f"expected a table, got {_describe(value)}")
            return False, None
        built = _build(typing.cast(type, hint), value, path, problems)
        return built is not None, built
    if origin is tuple:
        item_hint = get_args(hint)[0]
        if not isinstance(value, list):
            problems.add(path, f"expected an array, got {_describe(value)}")
            return False, None
        table_items = dataclasses.is_dataclass(item_hint)
        results = [
            _convert(item_hint, item, (*path, index) if table_items else path, problems, limits)
            for index, item in enumerate(value)
        ]
        return all(ok for ok, _ in results), tuple(item for _, item in results)
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        ok = _is_choice(value, [member.value for member in hint], path, problems)
        return ok, hint(value) if ok else None
    if origin is Literal:
        return _is_choice(value, [str(choice) for choice in get_args(hint)], path, problems), value
    if hint is bool:
        if isinstance(value, bool):
            return True, value
        problems.add(path, f"expected true or false, got {_describe(value)}")
        return False, None
    if hint is str:
        if not isinstance(value, str):
            problems.add(path, f"expected a string, got {_describe(value)}")
            return False, None
        odd = _odd_character(value, non_ascii=False)
        if odd is not None:
            problems.add(
                path, f"contains {problems.character(path, value, odd[0])}, an invisible character: delete it"
            )
            return False, None
        return True, value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.add(path, f"expected an integer, got {_describe(value)}")
            return False, None
        return _check_bounds(value, path, problems, limits), value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.add(path, f"expected a number, got {_describe(value)}")
            return False, None
        if not math.isfinite(value):
            problems.add(path, f"must be a finite number, got {_describe(value)}")
            return False, None
        return _check_bounds(value, path, problems, limits), float(value)
    raise TypeError(f"config model uses an unsupported type {hint!r} at {_dotted(path)}")


def _is_choice(value: Any, choices: list[str], path: KeyPath, problems: _Problems) -> bool:
    if isinstance(value, str) and value in choices:
        return True
    message = f"must be one of {', '.join(repr(choice) for choice in choices)}, got {_describe(value)}"
    if isinstance(value, str):
        odd = _odd_character(value, non_ascii=True)
        if odd is not None:
            where = problems.character(path, value, odd[0])
            message += f"; it contains {where}, not a plain ASCII character: retype it"
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    problems.add(path, message)
    return False


def _check_bounds(value: float, path: KeyPath, problems: _Problems, limits: Mapping[str, Any]) -> bool:
    gt, ge, lt, le = (limits.get(name) for name in ("gt", "ge", "lt", "le"))
    ok = (
        (gt is None or value > gt)
        and (ge is None or value >= ge)
        and (lt is None or value < lt)
        and (le is None or value <= le)
    )
    if ok:
        return True
    # Name the bound that was crossed (the field's docstring and config.toml give the whole range).
    if gt is not None and value <= gt:
        expected = f"> {_number(gt)}"
    elif ge is not None and value < ge:
        expected = f">= {_number(ge)}"
    elif lt is not None and value >= lt:
        expected = f"< {_number(lt)}"
    else:
        expected = f"<= {_number(le)}"
    problems.add(path, f"must be {expected}, got {_number(value)}")
    return False


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


_TOML_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _describe(value: Any) -> str:
    """``a string ('abc')``: the TOML type and a short, never secret, rendering of the value."""
    kind = _TOML_TYPE_NAMES.get(type(value), f"a {type(value).__name__}")
    if isinstance(value, dict):
        return kind
    if isinstance(value, str) and _secret_shape(value, None) is not None:
        return f"{kind} (value not shown)"
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} ({shown})"


def _dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


# ----------------------------------------------------------------------------------------------------
# Line numbers: tomllib keeps none, so find keys by reading the text the way a person would.

_BARE_OR_QUOTED = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*""")


def _split_dotted_key(text: str) -> tuple[str, ...] | None:
    parts: list[str] = []
    position = 0
    while True:
        match = _BARE_OR_QUOTED.match(text, position)
        if match is None:
            return None
        parts.append(next(group for group in match.groups() if group is not None))
        position = match.end()
        if position == len(text):
            return tuple(parts)
        if text[position] != ".":
            return None
        position += 1


class _KeyLocator:
    """Maps key paths (``("prices", "gpu", 3, "pool")``) to the line where they are written.

    Tracks table headers, the n-th ``[[array]]`` entry, ``key =`` lines, and whether a line starts inside a
    multi-line string or array (so their contents are never mistaken for keys). Unknown paths fall back
    to their closest known parent, then to line 1.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._array_counts: dict[KeyPath, int] = {}
        self._text_lines = text.split("\n")
        self._scan()

    def line_text(self, line: int) -> str:
        """The text of line ``line`` (1-based), "" when there is none."""
        return self._text_lines[line - 1] if 0 < line <= len(self._text_lines) else ""

    def line_of(self, path: KeyPath) -> int:
        for length in range(len(path), 0, -1):
            line = self._lines.get(path[:length])
            if line is not None:
                return line
        return 1

    def _record(self, path: KeyPath, line: int) -> None:
        self._lines.setdefault(path, line)

    def _resolve(self, segments: tuple[str, ...]) -> KeyPath:
        resolved: KeyPath = ()
        for segment in segments:
            resolved = (*resolved, segment)
            if resolved in self._array_counts:
                resolved = (*resolved, self._array_counts[resolved] - 1)
        return resolved

    def _scan(self) -> None:
        table: KeyPath = ()
        state = _LexState()
        for number, line in enumerate(self._text_lines, start=1):
            if state.at_top_level:
                table = self._read_line(line, number, table)
            state.consume(line)

    def _read_line(self, line: str, number: int, table: KeyPath) -> KeyPath:
        stripped = line.strip()
        header = re.match(r"^(\[\[?)(.*?)(\]\]?)\s*(?:#.*)?$", stripped)
        if header and len(header.group(1)) == len(header.group(3)):
            segments = _split_dotted_key(header.group(2))
            if segments is None:
                return table
            if header.group(1) == "[[":
                array = (*self._resolve(segments[:-1]), segments[-1])
                index = self._array_counts.get(array, 0)
                self._array_counts[array] = index + 1
                self._record(array, number)
                self._record((*array, index), number)
                return (*array, index)
            resolved = self._resolve(segments)
            self._record(resolved, number)
            return resolved
        key = re.match(r"^([^=#\[]+)=", stripped)  # greedy, then rstrip: a lazy \s*= was quadratic
        if key:
            segments = _split_dotted_key(key.group(1).rstrip())
            if segments is not None:
                for length in range(1, len(segments) + 1):
                    self._record((*table, *segments[:length]), number)
        return table


_LEX_KEY = re.compile(r"""#|"{3}|'{3}|["'\[\]{}.=,]""")
"""Where the lexer stops while reading a key: comments, string delimiters, brackets, dots, ``=``, ``,``."""
_LEX_VALUE = re.compile(r"""#|"{3}|'{3}|["'\[\]{}]""")
"""... while reading a value at top level or in an array (dots and commas say nothing there)."""
_LEX_INLINE_VALUE = re.compile(r"""#|"{3}|'{3}|["'\[\]{},]""")
"""... while reading a value in an inline table (a comma starts the next key)."""
_BASIC_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"')  # the unrolled loop: one C scan per run


@dataclass(slots=True)
class _LexState:
    """Just enough TOML lexing to know whether the next line starts a new statement, how deep arrays and
    inline tables nest (``peak``: the deepest on the last line) and the most dots in one key (``dots``).
    It stops at what matters in the current context only (a long array of numbers is one regex search)."""

    multiline: str = ""
    brackets: list[str] = field(default_factory=list)
    """The open ``[`` and ``{``, innermost last."""
    peak: int = 0
    dots: int = 0

    @property
    def at_top_level(self) -> bool:
        return not self.multiline and not self.brackets

    def consume(self, line: str) -> None:
        header = self.at_top_level and line.lstrip().startswith("[")  # its brackets are not arrays
        in_key = self.at_top_level  # a statement starts with its key (or is a header)
        self.peak = len(self.brackets)
        self.dots = 0
        run = 0  # dots in the key being read
        position = 0
        while True:
            if self.multiline:
                end = line.find(self.multiline, position)
                if end < 0:
                    return
                position = end + 3
                self.multiline = ""
                continue
            if in_key:
                pattern = _LEX_KEY
            elif self.brackets and self.brackets[-1] == "{":
                pattern = _LEX_INLINE_VALUE
            else:
                pattern = _LEX_VALUE
            found = pattern.search(line, position)
            if found is None:
                return
            token = found.group()
            position = found.end()
            if token == "#":
                return
            if len(token) == 3:
                self.multiline = token
            elif token in "\"'":
                position = _skip_string(line, found.start())
            elif token == ".":
                run += 1
                self.dots = max(self.dots, run)
            elif not header:
                run = 0
                if token == "=":
                    in_key = False
                elif token == ",":
                    in_key = self.brackets[-1:] == ["{"]
                elif token in "[{":
                    self.brackets.append(token)
                    self.peak = max(self.peak, len(self.brackets))
                    if self.peak > MAX_NESTING:
                        return  # refused (see _nesting_problem): no need to read on
                    in_key = token == "{"
                else:
                    if self.brackets:
                        self.brackets.pop()
                    in_key = False


def _skip_string(line: str, start: int) -> int:
    """The position after the single-line string that starts at ``start`` (the end of the line if it
    does not close there)."""
    if line[start] == "'":
        end = line.find("'", start + 1)
        return len(line) if end < 0 else end + 1
    found = _BASIC_STRING_REST.match(line, start + 1)
    return len(line) if found is None else found.end()


def dry_run_everywhere(config: Config) -> Config:
    """``config`` with nothing left to enforce: ``policy.mode``, every ``[policy.rules]`` rule set to
    "enforce" and every ``[[policy.endpoint]]`` mode become dry-run (a rule set to "enforce" or an
    endpoint's own mode would otherwise still act under ``policy.mode = "dry-run"``), and
    ``policy.dry_run_only`` set, so neither a reload nor a mode set from the dashboard acts either."""
    policy = config.policy
    rules = RuleModes(
        **{
            f.name: RuleMode.DRY_RUN
            if getattr(policy.rules, f.name) == RuleMode.ENFORCE
            else getattr(policy.rules, f.name)
            for f in dataclasses.fields(RuleModes)
        }
    )
    endpoints = tuple(
        dataclasses.replace(entry, mode=Mode.DRY_RUN) if entry.mode is not None else entry
        for entry in policy.endpoint
    )
    return dataclasses.replace(
        config,
        policy=dataclasses.replace(
            policy, mode=Mode.DRY_RUN, rules=rules, endpoint=endpoints, dry_run_only=True
        ),
    )
