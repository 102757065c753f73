"""Configuration: the shipped file, the model, the environment, secrets, and every way a file can be wrong.

A config mistake costs money silently, so these tests pin the exact problem line a user sees
(``FILE:LINE: key: message``) for each kind of mistake, through the real ``check-config`` command.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import pickle
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from watchdog.config import (
    SECRET_MESSAGE,
    Config,
    ConfigError,
    EndpointOverride,
    Secret,
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
    ("secret_value.toml", f"3: slack.channel: {SECRET_MESSAGE}"),
    (
        "non_url.toml",
        "4: runpod.rest_url: must be an http(s) URL with a host, got a string ('api.runpod.io/v2')",
    ),
    (
        "bad_enum.toml",
        "3: policy.mode: must be one of 'enforce', 'dry-run', got a string ('enforcing'); "
        "did you mean 'enforce'?",
    ),
    ("threshold_out_of_range.toml", "3: budget.alert_thresholds: must be in (0, 2], got 2.5"),
    ("syntax_error.toml", "4: syntax: Illegal character '\\n' (at line 4, column 17)"),
    ("missing_required.toml", "6: budget.fixed_costs[1].usd_per_month: missing required key"),
    ("duplicate_gpu.toml", "9: prices.gpu[1].gpu_type_id: duplicate GPU type id 'NVIDIA RTX A6000'"),
    ("regex_without_kind.toml", "6: pings.source[0].regex: needs named groups for (?P<kind>...)"),
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
        f"{path}:2: budget.monthly_eur: {SECRET_MESSAGE}",
        f"{path}:4: slack.channel: {SECRET_MESSAGE}",
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
    config = load_config(path, env={"STATE_DIRECTORY": str(tmp_path / "state")})
    assert config.ledger.resolved_path == tmp_path / "state" / "db" / "watch.sqlite3"


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
