"""Configuration: the shipped file, the model, the environment, secrets, and every way a file can be wrong.

A config mistake costs money silently, so these tests pin the exact problem line a user sees
(``FILE:LINE: key: message``) for each kind of mistake, through the real ``check-config`` command.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import os
import pickle
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from watchdog.config import (
    MAX_CALL_WORST_CASE_S,
    MAX_CONFIG_BYTES,
    MAX_NESTING,
    SECRET_MESSAGE,
    Config,
    ConfigError,
    EndpointOverride,
    LogSource,
    Secret,
    compile_log_regex,
    default_config,
    load_config,
    load_secrets,
    parse_listen,
)
from watchdog.prices import DEFAULT_PRICES, GpuPrice
from watchdog.vocabulary import CONFIGURABLE_RULES

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config.toml"
BAD = Path(__file__).resolve().parent / "configs" / "bad"
CONFIG_SOURCE = REPO / "watchdog" / "config.py"

_ENV_TO_DROP = (
    "RUNPOD_API_KEY",
    "SLACK_WEBHOOK_URL",
    "RUNPOD_API_BASE_URL",
    "RUNPOD_REST_API_URL",
    "RUNPOD_ENDPOINT_BASE_URL",
    "RUNPOD_WATCHDOG_CONFIG",
    "CREDENTIALS_DIRECTORY",
    "STATE_DIRECTORY",
    "RUNTIME_DIRECTORY",
)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={} if env is None else env)
    return caught.value.problems


def run_check_config(path: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in _ENV_TO_DROP}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "check-config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# ----------------------------------------------------------------------------------------------------
# The shipped file and the model stay in step


def test_shipped_config_equals_the_built_in_defaults() -> None:
    assert load_config(SHIPPED, env={}) == default_config(env={})


def test_shipped_config_enforces_the_seed_rules() -> None:
    config = load_config(SHIPPED, env={})
    assert config.policy.mode == "enforce"
    assert config.policy.max_workers == 1
    assert config.policy.required_execution_timeout_s == 120
    assert config.policy.max_idle_timeout_s == 10
    assert config.budget.monthly_eur == 20.0
    assert config.budget.monthly_usd == pytest.approx(23.20)
    assert config.budget.gpu_budget_usd == pytest.approx(13.20)
    assert config.price_table == DEFAULT_PRICES
    assert config.pings.source == ()
    assert 'dry-run is one key away: set policy.mode = "dry-run"' in SHIPPED.read_text(encoding="utf-8")


def _sections(cls: type, section: str) -> typing.Iterator[tuple[str, str]]:
    """(section, key) for every key the file should document, walking nested tables and arrays of tables."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if item.metadata.get("derived"):
            continue
        hint = hints[item.name]
        if typing.get_origin(hint) is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            yield from _sections(typing.get_args(hint)[0], f"{section}.{item.name}".lstrip("."))
        elif dataclasses.is_dataclass(hint):
            yield from _sections(hint, f"{section}.{item.name}".lstrip("."))
        else:
            yield section, item.name


def _key_line_in_section(lines: list[str], section: str, key: str) -> int:
    """Index of the first ``key =`` (or commented-out ``# key =``) line in the first block of ``section``."""
    header = re.compile(rf"^#?\s*\[\[?{re.escape(section)}\]\]?\s*$")
    any_header = re.compile(r"^#?\s*\[")
    key_line = re.compile(rf"^(#\s*)?{re.escape(key)}\s*=")
    start = next(index for index, line in enumerate(lines) if header.match(line))
    for index in range(start + 1, len(lines)):
        if any_header.match(lines[index]):
            break
        if key_line.match(lines[index]):
            return index
    raise AssertionError(f"[{section}] {key} is not in config.toml")


def test_every_config_field_is_in_the_shipped_file_with_a_comment() -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    documented = list(_sections(Config, ""))
    assert ("prices.gpu", "flex_usd_per_s") in documented  # the walk reaches arrays of tables
    assert ("policy.endpoint", "required_execution_timeout_s") in documented
    is_key = re.compile(r"^#?\s*#?\s*[\w-]+\s*=")
    for section, key in documented:
        index = _key_line_in_section(lines, section, key)
        above = lines[index - 1]
        commented_above = above.lstrip().startswith("#") and not is_key.match(above)
        assert commented_above or " # " in lines[index], f"[{section}] {key} has no comment"


def test_every_config_dataclass_field_has_an_attribute_docstring() -> None:
    tree = ast.parse(CONFIG_SOURCE.read_text(encoding="utf-8"))
    checked = 0
    for node in tree.body:
        decorated = isinstance(node, ast.ClassDef) and any(
            "dataclass" in ast.unparse(decorator) for decorator in node.decorator_list
        )
        if not decorated or node.name in {"EffectivePolicy", "_Problems", "_LexState"}:
            continue
        body = node.body
        for index, statement in enumerate(body):
            if isinstance(statement, ast.AnnAssign):
                following = body[index + 1] if index + 1 < len(body) else None
                has_doc = (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                )
                assert has_doc, f"{node.name}.{ast.unparse(statement.target)} has no docstring"
                checked += 1
    assert checked > 80


def test_check_config_accepts_the_shipped_file() -> None:
    result = run_check_config(SHIPPED)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(
        f"{SHIPPED}: OK — budget 20.00 EUR/month (23.20 USD), 1 fixed cost, mode enforce, "
        "11 GPU prices, 0 log sources, ledger "
    )
    assert result.stdout.count("\n") == 1


# ----------------------------------------------------------------------------------------------------
# Bad files, through the real command


BAD_CASES = [
    ("wrong_type.toml", "3: runpod.max_retries: expected an integer, got a string ('four')"),
    ("bool_as_int.toml", "4: policy.max_workers: expected an integer, got a boolean (True)"),
    ("negative_budget.toml", "4: budget.monthly_eur: must be > 0, got -5"),
    ("unknown_key.toml", "3: budget.montly_eur: unknown key; did you mean 'monthly_eur'?"),
    ("secret_key.toml", f"4: runpod.api_key: {SECRET_MESSAGE}"),
    ("secret_value.toml", f"3: slack.channel: looks like a Slack webhook URL; {SECRET_MESSAGE}"),
    (
        "non_url.toml",
        "4: runpod.rest_url: must be an http(s) URL with a host, got a string ('api.runpod.io/v2')",
    ),
    (
        "bad_enum.toml",
        "3: policy.mode: must be one of 'enforce', 'dry-run', got a string ('enforcing'); "
        "did you mean 'enforce'?",
    ),
    ("threshold_out_of_range.toml", "3: budget.alert_thresholds: must be <= 2, got 2.5"),
    ("syntax_error.toml", "4: syntax: Illegal character '\\n' (at line 4, column 17)"),
    ("missing_required.toml", "6: budget.fixed_costs[1].usd_per_month: missing required key"),
    ("duplicate_gpu.toml", "9: prices.gpu[1].gpu_type_id: duplicate GPU type id 'NVIDIA RTX A6000'"),
    ("regex_without_kind.toml", "6: pings.source[0].regex: needs named groups for (?P<kind>...)"),
    # Ceilings: every number has one (see test_every_number_has_a_ceiling_in_its_docstring_and_config_toml).
    ("ceiling_budget.toml", "3: budget.monthly_eur: must be <= 1000000, got 2000000"),
    ("ceiling_retries.toml", "3: runpod.max_retries: must be <= 10, got 100"),
    ("ceiling_retry_after.toml", "3: runpod.retry_after_cap_s: must be <= 300, got 3600"),
    ("ceiling_stale.toml", "3: policy.stale_after_s: must be <= 3600, got 86400"),
    (
        "stale_vs_poll.toml",
        "5: policy.stale_after_s: must be >= 2 x runpod.poll_interval_s (40), got 30: the daemon must get "
        "two looks at an endpoint within the stale bound, or one missed poll leaves it blind",
    ),
    (
        "retry_budget.toml",
        "4: runpod.max_retries: one RunPod call could take 1320 s with its retries (11 attempts x "
        "(request_timeout_s 60 + 60 s of waiting)), over the 600 s limit: the daemon is blind while it "
        "waits; lower max_retries, request_timeout_s, backoff_max_s or retry_after_cap_s",
    ),
    # Silent no-ops and ambiguities.
    (
        "empty_watch.toml",
        '3: policy.watch: must not be empty: the daemon would watch no endpoint; use ["*"] to watch them all',
    ),
    (
        "duplicate_match.toml",
        "7: policy.endpoint[1].match: duplicate match 'prod-*' (also policy.endpoint[0]): merge the two "
        "entries into one",
    ),
    # Paths that are traps under systemd.
    (
        "relative_log_path.toml",
        "4: pings.source[0].path: must be an absolute path, got 'logs/access.jsonl': a relative path (or ~) "
        "depends on the directory and the user the daemon starts with (/ and no home under systemd)",
    ),
    (
        "glob_log_path.toml",
        "4: pings.source[0].path: contains glob character(s) '*': a log source is one file, patterns are "
        "not expanded",
    ),
    (
        "relative_deny_list.toml",
        "4: pings.deny_list_path: must be an absolute path, got 'deny.txt': a relative path (or ~) depends "
        "on the directory and the user the daemon starts with (/ and no home under systemd)",
    ),
    (
        "socket_mode_world.toml",
        "3: control.socket_mode: must give other users no access (last digit 0), got '0666': anyone on the "
        'machine could drive the daemon (pause endpoints, cancel jobs); use "0660" (owner and group) or "0600"',
    ),
    # Secrets beyond RunPod and Slack.
    ("secret_bearer.toml", f"3: budget.fixed_costs[0].name: looks like a bearer token; {SECRET_MESSAGE}"),
    ("secret_aws.toml", f"3: budget.fixed_costs[0].name: looks like an AWS access key id; {SECRET_MESSAGE}"),
    ("secret_pem.toml", f"3: slack.channel: looks like a private key; {SECRET_MESSAGE}"),
    (
        "secret_random_token.toml",
        f"3: slack.channel: looks like a 40-character random token; {SECRET_MESSAGE}",
    ),
    # Log regexes run on a linear-time engine, which has no lookarounds or backreferences.
    (
        "regex_lookaround.toml",
        "6: pings.source[0].regex: not supported by RE2, the linear-time engine log regexes run on: invalid "
        "perl operator: (?!. RE2 has no lookarounds such as (?=...) or (?!...) and no backreferences such as "
        "\\1, the features that let a regex backtrack for hours on one hostile line",
    ),
    # Characters that look like something they are not.
    (
        "lookalike_enum.toml",
        "3: policy.mode: must be one of 'enforce', 'dry-run', got a string ('\u0435nforce'); it contains "
        "U+0435 CYRILLIC SMALL LETTER IE at column 9, not a plain ASCII character: retype it; did you mean "
        "'enforce'?",
    ),
    (
        "lookalike_key.toml",
        "3: policy.m\u043ede: unknown key; it contains U+043E CYRILLIC SMALL LETTER O at column 3, not a plain "
        "ASCII character: retype it; did you mean 'mode'?",
    ),
    (
        "invisible_in_value.toml",
        "3: policy.watch: contains U+200B ZERO WIDTH SPACE at column 20, an invisible character: delete it",
    ),
    (
        "nbsp_in_key.toml",
        "3: syntax: Expected '=' after a key in a key/value pair (at line 3, column 12); the line has U+00A0 "
        "NO-BREAK SPACE at column 12, an invisible character: delete or retype it",
    ),
]


@pytest.mark.parametrize(("name", "expected"), BAD_CASES, ids=[name for name, _ in BAD_CASES])
def test_check_config_rejects_a_bad_file_with_one_precise_line(name: str, expected: str) -> None:
    path = BAD / name
    result = run_check_config(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"{path}:{expected}"]


def test_check_config_reports_every_problem_of_a_file_in_line_order() -> None:
    path = BAD / "several.toml"
    result = run_check_config(path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:3: budget.monthly_eur: must be > 0, got -1",
        f"{path}:4: budget.alert_thresholds: must be strictly increasing, got an array ([0.8, 0.5])",
        f"{path}:7: runpod.poll_interval_s: must be >= 1, got 0.5",
        f"{path}:8: runpod.rest_url: must be an http(s) URL with a host, got a string ('ftp://api.runpod.io/v2')",
        f"{path}:11: policy.mode: must be one of 'enforce', 'dry-run', got a string ('dry_run'); "
        "did you mean 'dry-run'?",
        f"{path}:12: policy.max_worker: unknown key; did you mean 'max_workers'?",
        f"{path}:14: pings.source[0].path: missing required key",
        f"{path}:19: metrics.listen: must be HOST:PORT (IPv6 as [::1]:PORT), got a string ('localhost')",
        f"{path}:21: tuii: unknown section; did you mean 'tui'?",
    ]


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    key = "rpa_ABCDEFGHIJKLMNOPQRSTUV"
    path = write(tmp_path, f'[budget]\nmonthly_eur = "{key}"\n[slack]\nchannel = "xoxb-123-456"\n')
    result = run_check_config(path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:2: budget.monthly_eur: looks like a RunPod API key; {SECRET_MESSAGE}",
        f"{path}:4: slack.channel: looks like a Slack token; {SECRET_MESSAGE}",
    ]
    assert key not in result.stderr


def test_secret_named_key_in_an_unknown_section_is_reported_as_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[runpodd]\nurl = "x"\nAPI_KEY = "hunter2"\n')
    assert problems_of(path) == [
        f"{path}:1: runpodd: unknown section; did you mean 'runpod'?",
        f"{path}:3: runpodd.API_KEY: {SECRET_MESSAGE}",
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert problems_of(path) == [f"{path}:1: (file): cannot read: No such file or directory"]


# ----------------------------------------------------------------------------------------------------
# Validation details, in process


def test_int_is_accepted_for_a_float_but_bool_is_not(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[budget]\nmonthly_eur = 15\n"), env={})
    assert config.budget.monthly_eur == 15.0
    assert isinstance(config.budget.monthly_eur, float)
    path = write(tmp_path, "[budget]\nmonthly_eur = true\n")
    assert problems_of(path) == [f"{path}:2: budget.monthly_eur: expected a number, got a boolean (True)"]


def test_the_daily_allowance_is_off_by_default_and_a_boolean(tmp_path: Path) -> None:
    assert default_config(env={}).budget.daily_allowance is False
    assert load_config(write(tmp_path, "[budget]\ndaily_allowance = true\n"), env={}).budget.daily_allowance
    path = write(tmp_path, "[budget]\nmonthly_eur = 20.0\ndaily_allowance = 1\n")
    assert problems_of(path) == [
        f"{path}:3: budget.daily_allowance: expected true or false, got an integer (1)"
    ]


def test_non_finite_and_float_for_int_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[runpod]\nrequest_timeout_s = inf\nmax_retries = 2.5\n")
    assert problems_of(path) == [
        f"{path}:2: runpod.request_timeout_s: must be a finite number, got a float (inf)",
        f"{path}:3: runpod.max_retries: expected an integer, got a float (2.5)",
    ]


def test_line_numbers_skip_multiline_values_and_find_the_nth_array_entry(tmp_path: Path) -> None:
    text = (
        "[budget]\n"  # 1
        "alert_thresholds = [\n"  # 2
        "  0.5,\n"  # 3
        "  0.9,\n"  # 4
        "]\n"  # 5
        "[[pings.source]]\n"  # 6
        'name = "a"\n'  # 7
        'path = "/tmp/a.log"\n'  # 8
        "[[pings.source]]\n"  # 9
        'name = "b"\n'  # 10
        'path = "/tmp/b.log"\n'  # 11
        'format = "regex"\n'  # 12
        "regex = '''\n"  # 13
        "name = not a key\n"  # 14
        "(?P<ts>\\S+) \\[x\\]'''\n"  # 15
        "[pings]\n"  # 16
        "jump_factor = 0.5\n"  # 17
    )
    path = write(tmp_path, text)
    assert problems_of(path) == [
        f"{path}:13: pings.source[1].regex: needs named groups for (?P<endpoint_id>...), (?P<kind>...)",
        f"{path}:17: pings.jump_factor: must be > 1, got 0.5",
    ]


def test_dotted_keys_and_inline_tables_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, '# comment\nbudget.monthly_eur = 0\npolicy = { mode = "x" }\n')
    assert problems_of(path) == [
        f"{path}:2: budget.monthly_eur: must be > 0, got 0",
        f"{path}:3: policy.mode: must be one of 'enforce', 'dry-run', got a string ('x')",
    ]


def test_cross_field_checks(tmp_path: Path) -> None:
    text = (
        "[budget]\nmonthly_eur = 5.0\n"  # 5 EUR = 5.80 USD < 10 USD fixed
        "[policy]\nmax_workers = 1\nmax_workers_min = 2\nallow_list = ['a']\nalways_paused = ['a']\n"
        "[pings]\ncut = 'deny-list'\n"
        "[ledger]\nraw_retention_days = 50\nrollup_retention_days = 40\n"
        "[metrics]\ntls_cert_file = '/etc/ssl/cert.pem'\n"
    )
    path = write(tmp_path, text)
    assert problems_of(path) == [
        f"{path}:1: budget.fixed_costs: fixed costs (10.00 USD/month) leave nothing of the 5.80 USD budget",
        f"{path}:5: policy.max_workers_min: must be <= max_workers (1), got 2",
        f"{path}:7: policy.always_paused: 'a' is also in allow_list",
        f'{path}:8: pings.deny_list_path: is required when cut = "deny-list"',
        f"{path}:12: ledger.rollup_retention_days: must be >= raw_retention_days (50), got 40",
        f"{path}:13: metrics.tls_key_file: set both tls_cert_file and tls_key_file, or neither",
    ]


def test_a_custom_price_table_replaces_the_default(tmp_path: Path) -> None:
    text = (
        '[[prices.gpu]]\ngpu_type_id = "NVIDIA L4"\npool = "ADA_24"\n'
        "flex_usd_per_s = 0.0002\nactive_usd_per_s = 0.00015\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.price_table.gpus == (GpuPrice("NVIDIA L4", "ADA_24", 0.0002, 0.00015),)
    assert config.price_table.usd_per_s("NVIDIA L4") == 0.0002
    path = write(tmp_path, "[prices]\ngpu = []\n")
    assert problems_of(path) == [f"{path}:2: prices.gpu: must not be empty"]


def test_regex_source_needs_its_regex(tmp_path: Path) -> None:
    path = write(tmp_path, '[[pings.source]]\nname = "g"\npath = "/x"\nformat = "regex"\n')
    assert problems_of(path) == [f'{path}:1: pings.source[0].regex: is required when format = "regex"']
    good = (
        '[[pings.source]]\nname = "g"\npath = "/x"\nformat = "regex"\n'
        "regex = '^(?P<ts>\\S+) (?P<endpoint_id>\\w+) (?P<kind>\\w+)'\n"
    )
    assert load_config(write(tmp_path, good), env={}).pings.source[0].format == "regex"


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:9877", ("127.0.0.1", 9877)), ("[::1]:0", ("::1", 0)), ("localhost:80", ("localhost", 80))],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["::1:9877", "127.0.0.1", "127.0.0.1:70000", ":80"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(listen)


# ----------------------------------------------------------------------------------------------------
# Environment: config search, URL overrides, systemd directories


def test_environment_overrides_the_three_runpod_urls(tmp_path: Path) -> None:
    env = {
        "RUNPOD_API_BASE_URL": "http://127.0.0.1:8787/",
        "RUNPOD_REST_API_URL": "http://127.0.0.1:8787/v2/",
        "RUNPOD_ENDPOINT_BASE_URL": "http://[::1]:8788/v2",
    }
    runpod = load_config(SHIPPED, env=env).runpod
    assert runpod.graphql_url == "http://127.0.0.1:8787/graphql"
    assert runpod.rest_url == "http://127.0.0.1:8787/v2"
    assert runpod.runtime_url == "http://[::1]:8788/v2"
    assert default_config(env=env).runpod == runpod


def test_a_bad_url_in_the_environment_is_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        default_config(env={"RUNPOD_REST_API_URL": "localhost:8787"})
    assert caught.value.problems == [
        "environment: RUNPOD_REST_API_URL: runpod.rest_url must be an http(s) URL with a host, "
        "got a string ('localhost:8787')"
    ]


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\nmode = 'dry-run'\n")
    config = load_config(None, env={"RUNPOD_WATCHDOG_CONFIG": str(path)})
    assert config.policy.mode == "dry-run"
    assert config.source == str(path)


def test_ledger_and_socket_default_to_systemd_directories(tmp_path: Path) -> None:
    state, runtime = tmp_path / "state", tmp_path / "run"
    config = default_config(
        env={"STATE_DIRECTORY": f"{state}:/var/lib/other", "RUNTIME_DIRECTORY": str(runtime)}
    )
    assert config.ledger.resolved_path == state / "ledger.sqlite3"
    assert config.control.resolved_socket_path == runtime / "control.sock"


def test_ledger_defaults_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = default_config(env={})
    assert config.ledger.resolved_path == tmp_path / "runpod-watchdog.sqlite3"
    assert config.control.resolved_socket_path == tmp_path / "runpod-watchdog.sock"


def test_relative_ledger_path_is_taken_from_the_state_directory(tmp_path: Path) -> None:
    path = write(tmp_path, "[ledger]\npath = 'db/watch.sqlite3'\n")
    (tmp_path / "state" / "db").mkdir(parents=True)  # the daemon does not create the ledger's directory
    config = load_config(path, env={"STATE_DIRECTORY": str(tmp_path / "state")})
    assert config.ledger.resolved_path == tmp_path / "state" / "db" / "watch.sqlite3"


def test_relative_socket_path_is_taken_from_the_runtime_directory(tmp_path: Path) -> None:
    """ledger.path and control.socket_path keep their documented relative meaning: not a trap, a rule."""
    path = write(tmp_path, "[control]\nsocket_path = 'sub/ctl.sock'\n")
    config = load_config(path, env={"RUNTIME_DIRECTORY": str(tmp_path / "run")})
    assert config.control.resolved_socket_path == tmp_path / "run" / "sub" / "ctl.sock"


# ----------------------------------------------------------------------------------------------------
# Secrets


def test_credentials_directory_wins_over_the_environment(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "RUNPOD_API_KEY").write_text("rpa_FROMCREDENTIALFILE0001\n", encoding="utf-8")
    env = {
        "CREDENTIALS_DIRECTORY": str(credentials),
        "RUNPOD_API_KEY": "rpa_FROMENVIRONMENT000002",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/SECRETPART",
    }
    secrets = load_secrets(env)
    assert secrets.runpod_api_key is not None
    assert secrets.runpod_api_key.reveal() == "rpa_FROMCREDENTIALFILE0001"
    assert secrets.runpod_api_key_origin == "credential"
    assert secrets.slack_webhook_url is not None
    assert secrets.slack_webhook_url.reveal() == env["SLACK_WEBHOOK_URL"]
    assert secrets.slack_webhook_url_origin == "environment"

    config = load_config(SHIPPED, env=env)
    shown = " ".join([repr(secrets), str(secrets), f"{secrets.runpod_api_key}", repr(config), str(config)])
    assert "FROMCREDENTIALFILE" not in shown
    assert "FROMENVIRONMENT" not in shown
    assert "SECRETPART" not in shown
    assert "********" in repr(secrets)
    with pytest.raises(TypeError):
        pickle.dumps(secrets.runpod_api_key)


def test_missing_or_empty_secrets_are_unset() -> None:
    secrets = load_secrets({"RUNPOD_API_KEY": "  "})
    assert secrets.runpod_api_key is None
    assert secrets.runpod_api_key_origin == "unset"
    assert secrets.slack_webhook_url is None


@pytest.mark.parametrize("key", ["k1", "short-key-0123", "rpa_ABCDEFGH IJKLMNOP"])
def test_a_key_too_short_to_be_an_api_key_is_refused_without_showing_it(key: str) -> None:
    """Every answer has the key removed before it is parsed: a two-character key once cut a piece out of a
    worker id ("pjso2krv6sk1wj") and blinded the daemon."""
    with pytest.raises(ConfigError) as caught:
        load_secrets({"RUNPOD_API_KEY": key})
    (problem,) = caught.value.problems
    assert "RUNPOD_API_KEY: not an API key" in problem
    assert key not in problem


def test_a_webhook_that_is_not_https_is_rejected_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_secrets({"SLACK_WEBHOOK_URL": "http://example.invalid/hook-SECRETPART"})
    assert caught.value.problems == ["environment: SLACK_WEBHOOK_URL: must be an https URL (value not shown)"]


def test_secret_equality_does_not_need_reveal() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")


# ----------------------------------------------------------------------------------------------------
# Policy resolution


POLICY_FILE = """
[policy]
mode = "enforce"
watch = ["prod-*", "ep-extra"]
allow_list = ["prod-chat"]
always_paused = ["prod-old"]

[policy.rules]
runaway_job = "dry-run"
budget_brake = "enforce"

[[policy.endpoint]]
match = "prod-*"
max_execution_s = 300
max_workers = 2

[[policy.endpoint]]
match = "ep-123"
mode = "dry-run"
max_workers = 1
"""


def test_policy_for_resolves_overrides_in_file_order(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, POLICY_FILE), env={})
    chat = config.policy_for("ep-123", "prod-chat")
    assert chat.matched_overrides == ("prod-*", "ep-123")
    assert chat.max_execution_s == 300.0
    assert chat.max_workers == 1  # the later entry wins key by key
    assert chat.mode == "dry-run"
    assert chat.mode_is_explicit
    assert chat.watched
    assert chat.allow_listed
    assert not chat.always_paused
    assert chat.runaway_after_s == 330.0

    other = config.policy_for("ep-9", "staging")
    assert other.matched_overrides == ()
    assert not other.watched
    assert other.max_execution_s == 120.0
    assert other.max_workers == 1
    assert config.policy_for("ep-old", "prod-old").always_paused


def test_rule_mode_precedence(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, POLICY_FILE), env={})
    # A rule set to dry-run is dry-run everywhere.
    assert config.rule_mode("runaway_job", "ep-9", "prod-x") == "dry-run"
    # An endpoint's explicit mode beats a rule set to enforce.
    assert config.rule_mode("budget_brake", "ep-123", "prod-chat") == "dry-run"
    assert config.rule_mode("budget_brake", "ep-9", "prod-x") == "enforce"
    # Inheriting rules follow the endpoint, then policy.mode.
    assert config.rule_mode("idle_leak", "ep-123", "prod-chat") == "dry-run"
    assert config.rule_mode("idle_leak", "ep-9", "prod-x") == "enforce"
    with pytest.raises(KeyError):
        config.rule_mode("no_such_rule", "ep-9", "prod-x")


def test_global_dry_run_is_one_key_away(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace('mode = "enforce"', 'mode = "dry-run"', 1)
    config = load_config(write(tmp_path, text), env={})
    assert config == dataclasses.replace(
        default_config(env={}), policy=dataclasses.replace(default_config(env={}).policy, mode="dry-run")
    )
    assert {config.rule_mode(rule, "ep-1", "anything") for rule in CONFIGURABLE_RULES} == {"dry-run"}


def test_override_workers_min_above_resolved_max_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[[policy.endpoint]]\nmatch = "x"\nmax_workers_min = 2\n')
    assert problems_of(path) == [
        f"{path}:3: policy.endpoint[0].max_workers_min: must be <= max_workers (1), got 2"
    ]


def test_endpoint_override_matches_id_or_name_with_patterns() -> None:
    override = EndpointOverride(match="demo-*")
    assert override.matches("abc", "demo-fr")
    assert override.matches("demo-1", "x")
    assert not override.matches("abc", "prod")


def test_run_refuses_what_check_config_refuses_with_the_same_line(tmp_path: Path) -> None:
    """One validator for a log source: a regex source without a kind group used to pass check-config's
    rules and make `run` die with a traceback; now `run` exits 2 with the same FILE:LINE line."""
    path = BAD / "regex_without_kind.toml"
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "RUNPOD_API_KEY": "rpa_" + "x" * 20},
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert f"{path}:6: pings.source[0].regex: needs named groups for (?P<kind>...)" in result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------------------------------
# Ceilings: every number has one, documented in its docstring and in config.toml, and enforced


class NumericField(typing.NamedTuple):
    section: str
    key: str
    owner: str
    """The dataclass that declares it (its attribute docstring documents the range)."""
    ceiling: float | None
    """None: no ceiling (a failure of test_every_number_has_a_ceiling_in_its_docstring_and_config_toml)."""
    inclusive: bool
    kind: type
    array: bool


def _numeric_fields() -> list[NumericField]:
    """Every number a file can set, nested tables included."""
    from watchdog import config as config_module

    found: list[NumericField] = []

    def walk(cls: type, section: str) -> None:
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            hint = hints[item.name]
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
            array = typing.get_origin(hint) is tuple
            inner = typing.get_args(hint)[0] if array else hint
            limits = config_module._GPU_PRICE_LIMITS.get(item.name, {}) if cls is GpuPrice else item.metadata
            if dataclasses.is_dataclass(inner):
                walk(typing.cast(type, inner), f"{section}.{item.name}".lstrip("."))
            elif inner in (int, float) and not limits.get("derived"):
                inclusive = limits.get("le") is not None
                ceiling = limits.get("le") if inclusive else limits.get("lt")
                found.append(NumericField(section, item.name, cls.__name__, ceiling, inclusive, inner, array))

    walk(Config, "")
    return found


NUMERIC_FIELDS = _numeric_fields()


def _attribute_docstrings() -> dict[tuple[str, str], str]:
    """(class, field) -> the field's attribute docstring in watchdog/config.py."""
    docs: dict[tuple[str, str], str] = {}
    for node in ast.parse(CONFIG_SOURCE.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef):
            for statement, following in itertools.pairwise(node.body):
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                ):
                    docs[node.name, statement.target.id] = str(following.value.value)
    return docs


def _comment_above(lines: list[str], section: str, key: str) -> str:
    index = _key_line_in_section(lines, section, key)
    block = [lines[index]]
    is_key = re.compile(r"^#?\s*#?\s*[\w-]+\s*=")
    while index > 0 and lines[index - 1].lstrip().startswith("#") and not is_key.match(lines[index - 1]):
        index -= 1
        block.append(lines[index])
    return " ".join(block)


def _shown(value: float) -> str:
    from watchdog import config as config_module

    return config_module._number(value)


def test_every_number_has_a_ceiling_in_its_docstring_and_config_toml() -> None:
    """Before: only floors (monthly_eur = 2000000, max_retries = 100, stale_after_s = 86400 all loaded)."""
    docs = _attribute_docstrings()
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    assert len(NUMERIC_FIELDS) > 40
    for number in NUMERIC_FIELDS:
        name = f"{number.section}.{number.key}"
        assert number.ceiling is not None, f"{name} has no ceiling"
        shown = _shown(number.ceiling)
        assert shown in _comment_above(lines, number.section, number.key), (
            f"config.toml lacks {name}'s {shown}"
        )
        if number.owner != "GpuPrice":  # declared in watchdog/prices.py; config.toml documents it
            assert shown in docs[number.owner, number.key], f"{name}'s docstring lacks {shown}"


# Companion settings that keep the cross-section rules satisfied whatever single field is at its ceiling.
_ROOMY = {
    "budget": {"monthly_eur": 1_000_000},
    "runpod": {"max_retries": 0, "request_timeout_s": 1, "backoff_max_s": 1, "retry_after_cap_s": 1},
    "policy": {"stale_after_s": 3600, "max_workers": 1000},
    "ledger": {"rollup_retention_days": 3660},
}
_ARRAY_ENTRIES: dict[str, dict[str, typing.Any]] = {
    "budget.fixed_costs": {"name": "x", "usd_per_month": 1},
    "prices.gpu": {"gpu_type_id": "X", "pool": "P", "flex_usd_per_s": 0.1, "active_usd_per_s": 0.1},
    "policy.endpoint": {"match": "x"},
}


def _toml_with(number: NumericField, value: float) -> str:
    shown: typing.Any = [value] if number.array else value
    tables = {name: dict(values) for name, values in _ROOMY.items()}
    entries = ""
    if number.section in _ARRAY_ENTRIES:
        entry = {**_ARRAY_ENTRIES[number.section], number.key: shown}
        entries = f"[[{number.section}]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
    else:
        tables.setdefault(number.section, {})[number.key] = shown
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        for name, values in tables.items()
    )
    return text + entries


@pytest.mark.parametrize("number", NUMERIC_FIELDS, ids=[f"{n.section}.{n.key}" for n in NUMERIC_FIELDS])
def test_each_ceiling_loads_at_its_boundary_and_is_refused_past_it(
    tmp_path: Path, number: NumericField
) -> None:
    assert number.ceiling is not None, f"{number.section}.{number.key} has no ceiling"
    if number.inclusive:
        at_ceiling = number.kind(number.ceiling)
        load_config(write(tmp_path, _toml_with(number, at_ceiling), "at.toml"), env={})
        past = at_ceiling + 1 if number.kind is int else number.ceiling * 1.5
        expected = f"must be <= {_shown(number.ceiling)}, got {_shown(past)}"
    else:
        just_under = number.ceiling * 0.999
        load_config(write(tmp_path, _toml_with(number, just_under), "at.toml"), env={})
        past = float(number.ceiling)
        expected = f"must be < {_shown(number.ceiling)}, got {_shown(past)}"
    problems = problems_of(write(tmp_path, _toml_with(number, past), "past.toml"))
    assert len(problems) == 1, problems
    assert problems[0].endswith(f"{number.key}: {expected}"), problems


def test_the_stale_bound_must_let_the_daemon_look_twice(tmp_path: Path) -> None:
    """Decision: policy.stale_after_s >= 2 x runpod.poll_interval_s (a poll every 20 s and a 30 s stale
    bound loaded before, and a single missed poll made every decision 'blind')."""
    ok = write(tmp_path, "[runpod]\npoll_interval_s = 20\n[policy]\nstale_after_s = 40\n")
    assert load_config(ok, env={}).policy.stale_after_s == 40.0
    only_poll = write(tmp_path, "[runpod]\npoll_interval_s = 16\n", "poll.toml")
    assert problems_of(only_poll) == [
        f"{only_poll}:1: policy.stale_after_s: must be >= 2 x runpod.poll_interval_s (32), got 30: the "
        "daemon must get two looks at an endpoint within the stale bound, or one missed poll leaves it blind"
    ]


def test_one_call_with_its_retries_fits_in_ten_minutes(tmp_path: Path) -> None:
    """Each of max_retries, request_timeout_s and the waits may be within its ceiling while together they
    add up to an hour inside one tick (11 x (60 + 300) s); the sum is bounded too, boundary included."""
    assert MAX_CALL_WORST_CASE_S == 600
    at = write(tmp_path, "[runpod]\nmax_retries = 4\nrequest_timeout_s = 20\nretry_after_cap_s = 100\n")
    assert load_config(at, env={}).runpod.call_worst_case_s == 600  # 5 x (20 + 100)
    assert default_config(env={}).runpod.call_worst_case_s == 350  # 5 x (10 + 60)
    past = write(
        tmp_path, "[runpod]\nmax_retries = 4\nrequest_timeout_s = 20\nretry_after_cap_s = 100.2\n", "p.toml"
    )
    assert problems_of(past) == [
        f"{past}:2: runpod.max_retries: one RunPod call could take 601 s with its retries (5 attempts x "
        "(request_timeout_s 20 + 100.2 s of waiting)), over the 600 s limit: the daemon is blind while it "
        "waits; lower max_retries, request_timeout_s, backoff_max_s or retry_after_cap_s"
    ]


# ----------------------------------------------------------------------------------------------------
# Silent no-ops and ambiguities


def test_an_empty_pattern_in_the_watch_list_is_refused_too(tmp_path: Path) -> None:
    path = write(tmp_path, '[policy]\nwatch = [""]\n')
    assert problems_of(path) == [
        f'{path}:2: policy.watch: has an empty pattern, which matches no endpoint; use "*" to watch them all'
    ]


def test_two_different_patterns_matching_one_endpoint_still_apply_later_wins(tmp_path: Path) -> None:
    """Same match twice is refused (duplicate_match.toml); different patterns that both match one endpoint
    are the documented layering: file order, later entries win key by key."""
    text = (
        '[[policy.endpoint]]\nmatch = "prod-*"\nmax_workers = 2\ngrace_s = 10\n'
        '[[policy.endpoint]]\nmatch = "prod-chat"\nmax_workers = 1\n'
    )
    config = load_config(write(tmp_path, text), env={})
    chat = config.policy_for("ep-1", "prod-chat")
    assert (chat.matched_overrides, chat.max_workers, chat.grace_s) == (("prod-*", "prod-chat"), 1, 10.0)
    assert "later ones win key by key" in (EndpointOverride.__doc__ or "")
    assert "two entries with the same match are refused" in SHIPPED.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------------
# Paths: absolute where relative is a trap, the deny list where systemd lets the daemon write


def test_tls_files_and_home_relative_paths_must_be_absolute(tmp_path: Path) -> None:
    text = (
        "[metrics]\ntls_cert_file = 'tls/cert.pem'\ntls_key_file = '~/key.pem'\n"
        "[[pings.source]]\nname = 'g'\npath = '~/access.log'\n"
    )
    path = write(tmp_path, text)
    relative = "a relative path (or ~) depends on the directory and the user the daemon starts with (/ and no home under systemd)"
    assert problems_of(path) == [
        f"{path}:2: metrics.tls_cert_file: must be an absolute path, got 'tls/cert.pem': {relative}",
        f"{path}:3: metrics.tls_key_file: must be an absolute path, got '~/key.pem': {relative}",
        f"{path}:6: pings.source[0].path: must be an absolute path, got '~/access.log': {relative}",
    ]


def test_log_source_glob_check_is_shared_with_the_tailer() -> None:
    """The glob check is pure, so it lives in LogSource.problems(), the one validator the tailer uses too."""
    source = LogSource(name="g", path="/var/log/gw/access-*.log")
    assert source.problems() == [
        "path: contains glob character(s) '*': a log source is one file, patterns are not expanded"
    ]
    assert LogSource(name="g", path="/var/log/gw/access.log").problems() == []


@pytest.mark.parametrize("mode", ["0666", "0661", "0664", "0777", "0602", "666"])
def test_a_socket_mode_with_any_access_for_others_is_refused(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path, f'[control]\nsocket_mode = "{mode}"\n')
    (problem,) = problems_of(path)
    assert problem.startswith(
        f"{path}:2: control.socket_mode: must give other users no access (last digit 0)"
    )


@pytest.mark.parametrize("mode", ["0660", "0600", "0640", "660", "0700"])
def test_socket_modes_without_access_for_others_load(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path, f'[control]\nsocket_mode = "{mode}"\n')
    assert load_config(path, env={}).control.socket_mode_bits == int(mode, 8)


def test_the_deny_list_must_be_in_a_systemd_writable_directory_when_they_are_known(tmp_path: Path) -> None:
    """Before: a deny list in /etc loaded, and under ProtectSystem=strict every cut failed to write it."""
    state, runtime = tmp_path / "state", tmp_path / "run"
    state.mkdir()  # the ledger defaults to $STATE_DIRECTORY/ledger.sqlite3, whose directory must exist
    env = {"STATE_DIRECTORY": f"{state}:{tmp_path / 'state2'}", "RUNTIME_DIRECTORY": str(runtime)}
    outside = write(tmp_path, "[pings]\ncut = 'deny-list'\ndeny_list_path = '/etc/nginx/runpod-deny.txt'\n")
    assert problems_of(outside, env) == [
        f"{outside}:3: pings.deny_list_path: '/etc/nginx/runpod-deny.txt' is outside the service's writable "
        f"directories ({state}, {tmp_path / 'state2'}, {runtime}): under systemd (ProtectSystem=strict) the "
        "daemon cannot write anywhere else; put the deny list in one of them"
    ]
    sneaky = write(tmp_path, f"[pings]\ndeny_list_path = '{state}/../etc/deny.txt'\n", "sneaky.toml")
    assert len(problems_of(sneaky, env)) == 1
    for inside in (state / "deny.txt", runtime / "gateway" / "deny.txt", tmp_path / "state2" / "deny.txt"):
        good = write(tmp_path, f"[pings]\ncut = 'deny-list'\ndeny_list_path = '{inside}'\n", "good.toml")
        assert load_config(good, env=env).pings.deny_list_path == str(inside)
    # Outside systemd (directories unknown) any writable absolute path will do.
    assert (
        load_config(outside, env={}, check_files=False).pings.deny_list_path == "/etc/nginx/runpod-deny.txt"
    )


# ----------------------------------------------------------------------------------------------------
# Secrets beyond the known prefixes, and ordinary values that must not look like one


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "an Authorization header"),
        ("bearer abcdef0123456789", "a bearer token"),
        ("ASIAY34FZKBOKMUTVV7A", "an AWS access key id"),
        ("-----BEGIN RSA PRIVATE KEY-----", "a private key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "a private key"),
        ("hf_kFzMnqWcXbTyUeLpOaSdRgHjKlZxCvBnMqW", "a Hugging Face token"),
        ("ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R", "a GitHub token"),
        ("glpat-xY3zA9bC2dE5fG8hJ1kL", "a GitLab token"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", "a JSON web token"),
        ("xoxe-1-abc", "a Slack token"),
        ("sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "a 44-character random token"),
        ("3f9a2c7e1b8d4f6a0c5e9b2d7f1a4c8e3b6d9f2a", "a 40-character random token"),
    ],
)
def test_secret_shapes_are_refused_without_echoing_them(tmp_path: Path, value: str, shape: str) -> None:
    path = write(tmp_path, f"[slack]\nchannel = '{value}'\n")
    assert problems_of(path) == [f"{path}:2: slack.channel: looks like {shape}; {SECRET_MESSAGE}"]


@pytest.mark.parametrize("key", ["authorization", "private_key", "aws_secret_key", "client_secret", "passwd"])
def test_secret_key_names_are_refused(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f"[slack]\n{key} = 'x'\n")
    assert problems_of(path) == [f"{path}:2: slack.{key}: {SECRET_MESSAGE}"]


def test_a_private_key_pasted_into_a_tls_file_key_is_not_echoed(tmp_path: Path) -> None:
    """Before: 'file not found: '-----BEGIN PRIVATE KEY-----\\nMIIE...'' printed the key to the journal."""
    cert = tmp_path / "cert.pem"
    cert.write_text("cert\n")
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"
    text = f'[metrics]\ntls_cert_file = "{cert}"\ntls_key_file = """-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"""\n'
    result = run_check_config(write(tmp_path, text))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'config.toml'}:3: metrics.tls_key_file: looks like a private key; {SECRET_MESSAGE}"
    ]
    assert body not in result.stderr


ORDINARY_VALUES = """
[[budget.fixed_costs]]
name = "Hugging Face demo space (Swahili, Yoruba, Hausa and Amharic models) 2026"
usd_per_month = 10.0
[[budget.fixed_costs]]
name = "Espace de démonstration: modèles de traduction"
usd_per_month = 1.0
[[budget.fixed_costs]]
name = "Bearer instruments custody fee (authorization pending)"
usd_per_month = 1.0
[[prices.gpu]]
gpu_type_id = "NVIDIA GeForce RTX 4090 24GB PCIe Gen4 x16 (community cloud)"
pool = "ADA_24"
flex_usd_per_s = 0.00031
active_usd_per_s = 0.00021
[policy]
watch = ["vllm-7b0c3e9a1f2d4b", "tts-swahili-2026-03", "3f9a2c7e1b8d4f6a0c5e9b2d7f1a4c8e"]
allow_list = ["x9k2m4p7q1w8e5r3t6y0u2i4o7p9a1s3d5f7g9h2"]
[[policy.endpoint]]
match = "mistral-7b-instruct-v0.3-awq-Q4KM-2026-03-01"
[pings]
never_cut = ["123e4567-e89b-12d3-a456-426614174000", "10.0.0.0/8", "partner-monitoring-Zk4Xq9Wm2Lp7Rt3Vn8"]
[[pings.source]]
name = "gateway-eu-west-1-production-2026"
path = "/var/log/gateway/2026/eu-west-1/access-A7bC9dE2fG4hJ6kL8mN0pQ.jsonl"
format = "regex"
regex = '^(?P<ts>\\S+) (?P<source>(?:\\d{1,3}\\.){3}\\d{1,3}) (?P<kind>request|ping) /v2/(?P<endpoint_id>[A-Za-z0-9_-]{8,64})/'
time_field = "ts"
[slack]
channel = "#gpu-budget-alerts-2026"
"""


def test_ordinary_values_do_not_look_like_secrets(tmp_path: Path) -> None:
    """Negative control: endpoint ids (even random or UUID-shaped), GPU names, non-ASCII names, paths,
    regexes with long character classes and nested counted groups all load."""
    config = load_config(write(tmp_path, ORDINARY_VALUES), env={})
    assert config.policy.watch[2] == "3f9a2c7e1b8d4f6a0c5e9b2d7f1a4c8e"
    assert config.pings.source[0].format == "regex"
    assert config.budget.fixed_costs[1].name.startswith("Espace de démonstration")
    assert load_config(SHIPPED, env={}) == default_config(env={})


# ----------------------------------------------------------------------------------------------------
# Log regexes: a linear-time engine (RE2), so no pattern can backtrack catastrophically


@pytest.mark.parametrize(
    ("pattern", "hostile"),
    [
        (r"(a+)+$", "a" * 100_000 + "!"),
        (r"(.*a){20}", "a" * 19 + "b" * 100_000),
        (r"^(\w+\s?)*$", "word " * 20_000 + "!"),
        (r"(a|a)*b", "a" * 100_000),
    ],
    ids=["nested-plus", "counted-dot-star", "words", "alternation"],
)
def test_backtracking_patterns_load_and_run_in_linear_time(pattern: str, hostile: str) -> None:
    """Before: these loaded and ran on Python's re, where ~30 hostile characters take seconds and 100
    longer than anyone will wait, inside the daemon's tick. On RE2 100,000 characters take milliseconds, so
    they are accepted rather than refused (a nested-quantifier ban would also refuse safe patterns such as
    the IPv4 group in ORDINARY_VALUES)."""
    import time

    source = LogSource(
        name="g",
        path="/var/log/g.log",
        format="regex",
        regex=f"(?P<ts>\\S+) (?P<endpoint_id>\\S+) (?P<kind>\\S+) {pattern}",
    )
    assert source.problems() == []
    compiled = compile_log_regex(pattern)
    started = time.monotonic()
    for _ in range(10):
        compiled.search(hostile)
    assert time.monotonic() - started < 2.0


def test_log_regexes_keep_python_named_groups() -> None:
    compiled = compile_log_regex(r"^(?P<ts>\S+) (?P<endpoint_id>[\w-]+) (?P<kind>request|ping)")
    assert set(compiled.groupindex) == {"ts", "endpoint_id", "kind"}
    match = compiled.search("2026-03-01T00:00:00Z ep-1 ping /v2/ep-1/ping")
    assert match is not None
    assert match.groupdict() == {"ts": "2026-03-01T00:00:00Z", "endpoint_id": "ep-1", "kind": "ping"}


def test_backreferences_are_refused_with_the_reason(tmp_path: Path) -> None:
    text = (
        '[[pings.source]]\nname = "g"\npath = "/var/log/g.log"\nformat = "regex"\n'
        "regex = '(?P<ts>\\S+) (?P<endpoint_id>\\S+) (?P<kind>\\S+) (\\w+) \\1'\n"
    )
    path = write(tmp_path, text)
    (problem,) = problems_of(path)
    assert problem.startswith(
        f"{path}:5: pings.source[0].regex: not supported by RE2, the linear-time engine"
    )
    assert "invalid escape sequence: \\1" in problem
    bad_python = write(tmp_path, text.replace("(\\w+) \\1", "(?P<x"), "python.toml")
    assert "invalid regular expression: " in problems_of(bad_python)[0]


# ----------------------------------------------------------------------------------------------------
# The file itself: size, kind, nesting, byte-order mark


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Before: a 50 MB config took 29 s and 1 GB; now stat says no before a byte is read."""
    import time

    assert MAX_CONFIG_BYTES == 1024 * 1024
    at_limit = tmp_path / "at.toml"
    header = "[budget]\nmonthly_eur = 20.0\n"
    at_limit.write_text(header + "#" * (MAX_CONFIG_BYTES - len(header) - 1) + "\n", encoding="utf-8")
    assert at_limit.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(at_limit, env={}).budget.monthly_eur == 20.0

    over = tmp_path / "over.toml"
    over.write_bytes(at_limit.read_bytes() + b"\n")
    assert problems_of(over) == [
        f"{over}:1: (file): is {MAX_CONFIG_BYTES + 1} bytes, over the 1048576-byte (1 MiB) limit of a "
        "configuration file (the shipped one is about 15 KB): is it the right file?"
    ]
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as handle:
        handle.truncate(1 << 40)  # a sparse terabyte: reading it would never end
    started = time.monotonic()
    assert "over the 1048576-byte (1 MiB) limit" in problems_of(huge)[0]
    assert time.monotonic() - started < 1.0


def test_a_device_or_a_fifo_is_not_read_as_a_config(tmp_path: Path) -> None:
    """Before: check-config /dev/zero read until memory ran out."""
    assert problems_of(Path("/dev/zero")) == [
        "/dev/zero:1: (file): is not a regular file but a character device; a configuration is a file"
    ]
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert problems_of(fifo) == [
        f"{fifo}:1: (file): is not a regular file but a FIFO (named pipe); a configuration is a file"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = " + "[" * 10_000 + "]" * 10_000 + "\n", "arrays and inline tables nested more than 10 deep"),
        (
            "x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n",
            "arrays and inline tables nested more than 10 deep",
        ),
        (
            "[budget]\n" + ".".join(["a"] * 5_000) + " = 1\n",
            "a key or table header of more than 10 dotted parts",
        ),
        ("[" + ".".join(["a"] * 40_000) + "]\n", "a key or table header of more than 10 dotted parts"),
        (
            "x = {" + ".".join(["a"] * 40_000) + " = 1}\n",
            "a key or table header of more than 10 dotted parts",
        ),
    ],
    ids=["arrays", "inline-tables", "dotted-key", "header", "dotted-key-in-inline-table"],
)
def test_deep_nesting_is_a_clean_error_not_a_traceback(tmp_path: Path, text: str, expected: str) -> None:
    """Before: RecursionError tracebacks (arrays, inline tables, dotted keys walked by the loader), and a
    40,000-part dotted key made tomllib quadratic (seconds, and a GiB)."""
    path = write(tmp_path, text)
    result = run_check_config(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = 2 if text.startswith("[budget]") else 1
    assert result.stderr.startswith(f"{path}:{line}: syntax: {expected} (a configuration needs ")


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    assert MAX_NESTING == 10
    deep = "x = " + "[" * MAX_NESTING + "]" * MAX_NESTING + "\n" + ".".join(["y"] * MAX_NESTING) + " = 1\n"
    problems = problems_of(write(tmp_path, deep))
    assert [problem.split(": ", 2)[1] for problem in problems] == ["x", "y"]  # read, then found unknown
    assert all("unknown" in problem and "syntax" not in problem for problem in problems)


def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    """Before: 'syntax: Invalid statement (at line 1, column 1)' for a file that looks perfect."""
    text = "[policy]\nmode = 'dry-run'\n"
    with_bom = tmp_path / "bom.toml"
    with_bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_config(with_bom, env={}) == load_config(write(tmp_path, text), env={})
    stray = write(tmp_path, "[policy]\nmode = 'dry-run'\nwatch = ['\ufeffprod']\n", "stray.toml")
    assert problems_of(stray) == [
        f"{stray}:3: policy.watch: contains U+FEFF ZERO WIDTH NO-BREAK SPACE at column 11, an invisible "
        "character: delete it"
    ]


def test_non_ascii_in_ordinary_strings_is_fine_but_not_in_keys_or_choices(tmp_path: Path) -> None:
    ok = write(
        tmp_path,
        '[slack]\nchannel = "#alertes-budget-été"\n[[budget.fixed_costs]]\nname = "Espace démo"\nusd_per_month = 10\n',
    )
    assert load_config(ok, env={}).slack.channel == "#alertes-budget-été"
    bad = write(tmp_path, '[policy.rules]\nidle_leak = "dry\u2011run"\n', "bad.toml")
    assert problems_of(bad) == [
        f"{bad}:2: policy.rules.idle_leak: must be one of 'inherit', 'enforce', 'dry-run', got a string "
        "('dry\u2011run'); it contains U+2011 NON-BREAKING HYPHEN at column 17, not a plain ASCII character: "
        "retype it; did you mean 'dry-run'?"
    ]


# ----------------------------------------------------------------------------------------------------
# check-config checks what `run` will open (load_config(check_files=True), the default)


def test_the_ledger_directory_must_exist_and_the_ledger_must_not_be_a_directory(tmp_path: Path) -> None:
    """Before: check-config said OK and `run` died at start (LedgerError: directory does not exist)."""
    missing = write(tmp_path, f"[ledger]\npath = '{tmp_path / 'nope' / 'l.sqlite3'}'\n")
    assert problems_of(missing) == [
        f"{missing}:2: ledger.path: the ledger's directory '{tmp_path / 'nope'}' does not exist; create it "
        "(the daemon does not)"
    ]
    (tmp_path / "dir.sqlite3").mkdir()
    is_dir = write(tmp_path, f"[ledger]\npath = '{tmp_path / 'dir.sqlite3'}'\n", "d.toml")
    assert problems_of(is_dir) == [
        f"{is_dir}:2: ledger.path: '{tmp_path / 'dir.sqlite3'}' is a directory; name the SQLite file, e.g. "
        f"'{tmp_path / 'dir.sqlite3' / 'ledger.sqlite3'}'"
    ]
    # Readers that never write (the dashboard, snapshot) skip what only the daemon opens.
    assert (
        load_config(missing, env={}, check_files=False).ledger.resolved_path
        == tmp_path / "nope" / "l.sqlite3"
    )
    result = run_check_config(missing)
    assert result.returncode == 2 and "does not exist; create it" in result.stderr


def test_existing_log_files_must_be_regular_files(tmp_path: Path) -> None:
    """Before: a FIFO passed check-config and froze the daemon's first tick; a directory was 'watched'."""
    fifo, directory, regular = tmp_path / "fifo.log", tmp_path / "dir.log", tmp_path / "ok.log"
    os.mkfifo(fifo)
    directory.mkdir()
    regular.write_text("")
    sources = "".join(
        f"[[pings.source]]\nname = '{path.name}'\npath = '{path}'\n"
        for path in (fifo, directory, regular, tmp_path / "not-yet.log")
    )
    path = write(tmp_path, sources)
    assert problems_of(path) == [
        f"{path}:3: pings.source[0].path: is not a regular file but a FIFO (named pipe); only regular files are read",
        f"{path}:6: pings.source[1].path: is not a regular file but a directory; only regular files are read",
    ]


def test_the_control_socket_directory_must_be_creatable_and_the_path_free(tmp_path: Path) -> None:
    """Before: a socket path under a regular file passed check-config and `run` only logged that the
    dashboard could not connect; a regular file at the socket path would have been deleted at start."""
    taken = tmp_path / "notes.txt"
    taken.write_text("")
    blocked = write(tmp_path, f"[control]\nsocket_path = '{taken / 'sub' / 'ctl.sock'}'\n")
    assert problems_of(blocked) == [
        f"{blocked}:2: control.socket_path: the control socket's directory '{taken / 'sub'}' cannot be "
        f"created: '{taken}' is a regular file"
    ]
    on_a_file = write(tmp_path, f"[control]\nsocket_path = '{taken}'\n", "taken.toml")
    assert problems_of(on_a_file) == [
        f"{on_a_file}:2: control.socket_path: '{taken}' exists and is a regular file, not a socket: the "
        "daemon replaces what is there when it starts; choose another path"
    ]
    fine = write(tmp_path, f"[control]\nsocket_path = '{tmp_path / 'new' / 'dir' / 'ctl.sock'}'\n", "f.toml")
    assert load_config(fine, env={}).control.resolved_socket_path == tmp_path / "new" / "dir" / "ctl.sock"


def test_tls_files_and_the_deny_list_directory_are_checked(tmp_path: Path) -> None:
    """Existing readable TLS files load; a deny list whose directory cannot be created is refused (before:
    accepted, and every cut then failed to write it)."""
    cert, key, taken = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "notes.txt"
    for path in (cert, key, taken):
        path.write_text("x\n")
    tls = f"[metrics]\ntls_cert_file = '{cert}'\ntls_key_file = '{key}'\n"
    blocked = write(tmp_path, tls + f"[pings]\ncut = 'deny-list'\ndeny_list_path = '{taken / 'deny.txt'}'\n")
    assert problems_of(blocked) == [
        f"{blocked}:6: pings.deny_list_path: the deny list's directory '{taken}' cannot be created: "
        f"'{taken}' is a regular file"
    ]
    deny = tmp_path / "lists" / "deny.txt"
    good = write(tmp_path, tls + f"[pings]\ncut = 'deny-list'\ndeny_list_path = '{deny}'\n", "g.toml")
    config = load_config(good, env={})
    assert (config.metrics.tls_key_file, config.pings.deny_list_path) == (str(key), str(deny))
    missing = write(tmp_path, tls.replace("key.pem", "nope.pem"), "m.toml")
    assert problems_of(missing) == [
        f"{missing}:3: metrics.tls_key_file: file not found: '{tmp_path / 'nope.pem'}'"
    ]


def test_directories_systemd_creates_at_start_may_be_missing_outside_systemd(tmp_path: Path) -> None:
    """README: `sudo -u runpod-watchdog check-config /etc/runpod-watchdog/config.toml` before the first
    start, when StateDirectory=/RuntimeDirectory= do not exist yet (and /run is emptied at every boot). Under
    systemd (its variables set: ExecStartPre) they exist, and a missing one is refused."""
    name = f"runpod-watchdog-config-test-{os.getpid()}"
    state, runtime = Path("/var/lib") / name, Path("/run") / name
    assert not state.exists() and not runtime.exists()
    text = f"[ledger]\npath = '{state}/ledger.sqlite3'\n[control]\nsocket_path = '{runtime}/control.sock'\n"
    path = write(tmp_path, text)
    config = load_config(path, env={})  # what install.sh writes, checked before the first start
    assert config.ledger.resolved_path == state / "ledger.sqlite3"
    assert problems_of(path, {"STATE_DIRECTORY": str(state), "RUNTIME_DIRECTORY": str(runtime)}) == [
        f"{path}:2: ledger.path: the ledger's directory '{state}' does not exist; create it (the daemon does not)"
    ]
    deeper = write(tmp_path, f"[ledger]\npath = '{state}/db/ledger.sqlite3'\n", "deeper.toml")
    assert "does not exist; create it" in problems_of(deeper)[0]


# ----------------------------------------------------------------------------------------------------
# Which file: one search for every command


@pytest.fixture
def system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system file's path, moved under tmp_path (absent until a test writes it)."""
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setattr("watchdog.config.SYSTEM_CONFIG_PATH", path)
    return path


def test_the_search_path_order_is_option_environment_working_directory_system(
    tmp_path: Path, system_config: Path
) -> None:
    from watchdog.config import find_config

    cwd = tmp_path / "here"
    cwd.mkdir()
    named = write(tmp_path, "", "named.toml")
    env = {"RUNPOD_WATCHDOG_CONFIG": str(named)}
    assert find_config(None, {}, cwd).origin == "none"
    assert find_config(None, {}, cwd).path is None
    system_config.write_text("", encoding="utf-8")
    assert (find_config(None, {}, cwd).path, find_config(None, {}, cwd).origin) == (system_config, "system")
    local = write(cwd, "")
    assert (find_config(None, {}, cwd).path, find_config(None, {}, cwd).origin) == (
        local,
        "working directory",
    )
    assert (find_config(None, env, cwd).path, find_config(None, env, cwd).origin) == (named, "environment")
    given = tmp_path / "given.toml"
    assert (find_config(given, env, cwd).path, find_config(given, env, cwd).origin) == (given, "option")
    assert find_config(str(given), env, cwd).why == "given with --config"


def test_a_named_file_that_is_missing_fails_instead_of_falling_through(
    tmp_path: Path, system_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in --config or $RUNPOD_WATCHDOG_CONFIG must not quietly run on another file (or the
    enforcing defaults)."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[policy]\nmode = 'dry-run'\n")  # ./config.toml exists, and would be found
    missing = tmp_path / "typo.toml"
    for path, env in ((missing, {}), (None, {"RUNPOD_WATCHDOG_CONFIG": str(missing)})):
        with pytest.raises(ConfigError) as caught:
            load_config(path, env=env)
        assert caught.value.problems[0].startswith(f"{missing}:1: (file): cannot read")


def test_load_config_without_a_path_uses_the_working_directory_file(
    tmp_path: Path, system_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    system_config.write_text("[policy]\nmode = 'enforce'\n", encoding="utf-8")
    (tmp_path / "config.toml").mkdir()  # not a file: skipped, the system file is next
    assert load_config(None, env={}).source == str(system_config)
    (tmp_path / "config.toml").rmdir()
    local = write(tmp_path, "[policy]\nmode = 'dry-run'\n")
    config = load_config(None, env={})
    assert (config.source, config.policy.mode) == (str(local), "dry-run")
    local.unlink()
    system_config.unlink()
    assert load_config(None, env={}) == default_config(env={})


def test_check_config_without_a_path_searches_the_same_way(tmp_path: Path) -> None:
    write(tmp_path, "[budget]\nmonthly_eur = 0\n")
    env = {key: value for key, value in os.environ.items() if key not in _ENV_TO_DROP}
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'config.toml'}:2: budget.monthly_eur: ")
    named = write(tmp_path, "", "named.toml")
    env["RUNPOD_WATCHDOG_CONFIG"] = str(named)
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{named}: OK")
