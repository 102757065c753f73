"""The systemd unit and the installer, checked the way a sysadmin would meet them.

- ``systemd-analyze security --offline=true`` scores the unit (0 = best, 10 = worst) and must stay at or
  below 1.5; 1.1 is the floor for a daemon that needs outbound network (tested-recipes §1a).
- ``systemd-analyze verify`` prints nothing for a clean unit whose ExecStart exists; it only fails (rc 1)
  on a missing executable and merely warns on unknown keys, hence "prints nothing" rather than "rc 0".
- ``scripts/install.sh`` into a temporary root: venv, unit, config, credentials directory, upgrade.

The installer tests pass ``--no-deps``: the package itself is built and installed for real (the console
script, ``--version`` and ``check-config`` run from the staged venv), but its dependencies are not
downloaded, which keeps the test at a few seconds and independent of the package index. A full install
(``sudo scripts/install.sh``) is what systemd/README-snippet.md documents.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "runpod-watchdog.service"
INSTALL = REPO / "scripts" / "install.sh"
UNINSTALL = REPO / "scripts" / "uninstall.sh"
DEFAULT_EXE = "/opt/runpod-watchdog/venv/bin/runpod-watchdog"
MAX_EXPOSURE = 1.5

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="!!! systemd-analyze NOT FOUND: the unit's security score and verify checks DID NOT RUN "
    "(apt install systemd; CI has it) !!!",
)


# ----------------------------------------------------------------------------------------------------
# Helpers


def _directives(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}``; keeps repeated keys (LoadCredential=, SystemCallFilter=),
    which configparser cannot."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections.setdefault(current, []).append((key.strip(), value.strip()))
    return sections


def _values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def _exposure(unit: Path) -> tuple[int, float, str]:
    """Run the offline security scorer with the CI threshold; return (rc, overall exposure, output)."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--threshold=15", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no overall exposure level in:\n{result.stdout}\n{result.stderr}"
    return result.returncode, float(match.group(1)), result.stdout


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )


def _copy_with_exe(tmp_path: Path, exe: str) -> Path:
    """The unit, its ExecStart/ExecStartPre pointed at ``exe``; named as installed (verify checks it)."""
    target = tmp_path / "runpod-watchdog.service"
    target.write_text(UNIT.read_text(encoding="utf-8").replace(DEFAULT_EXE, exe), encoding="utf-8")
    return target


def _console_script() -> str:
    """This test run's own ``runpod-watchdog`` (next to the interpreter), a real executable."""
    exe = Path(sys.executable).parent / "runpod-watchdog"
    found = str(exe) if exe.exists() else shutil.which("runpod-watchdog")
    assert found, "runpod-watchdog is not installed in the test environment (pip install -e .)"
    return found


# ----------------------------------------------------------------------------------------------------
# The unit file


@needs_analyze
def test_security_exposure_is_at_most_1_5() -> None:
    rc, exposure, output = _exposure(UNIT)
    # --threshold is on a 0-100 scale: 15 means "fail above 1.5".
    assert rc == 0, output
    assert exposure <= MAX_EXPOSURE, output


@needs_analyze
def test_verify_prints_nothing_when_execstart_exists(tmp_path: Path) -> None:
    result = _verify(_copy_with_exe(tmp_path, _console_script()))
    assert (result.stdout + result.stderr) == "", result.stdout + result.stderr
    assert result.returncode == 0


@needs_analyze
def test_verify_check_is_alive(tmp_path: Path) -> None:
    """Negative control: the same check must complain when the executable does not exist."""
    result = _verify(_copy_with_exe(tmp_path, str(tmp_path / "no-such-runpod-watchdog")))
    assert "not executable" in result.stdout + result.stderr


def test_unit_declares_notify_watchdog_credentials_and_start_limits() -> None:
    unit = _directives(UNIT.read_text(encoding="utf-8"))
    svc = "Service"
    assert _values(unit, svc, "Type") == ["notify"]
    assert _values(unit, svc, "NotifyAccess") == ["main"]
    assert _values(unit, svc, "WatchdogSec") == ["60"]
    assert sorted(_values(unit, svc, "LoadCredential")) == [
        "RUNPOD_API_KEY:/etc/runpod-watchdog/credentials/RUNPOD_API_KEY",
        "SLACK_WEBHOOK_URL:/etc/runpod-watchdog/credentials/SLACK_WEBHOOK_URL",
    ]
    # Start limits are [Unit] keys; in [Service] systemd ignores them with only a warning.
    assert _values(unit, "Unit", "StartLimitIntervalSec") == ["600"]
    assert _values(unit, "Unit", "StartLimitBurst") == ["5"]
    assert not _values(unit, svc, "StartLimitIntervalSec")
    assert not _values(unit, svc, "StartLimitBurst")
    assert _values(unit, svc, "Restart") == ["on-failure"]
    assert _values(unit, svc, "ExecStartPre") == [
        f"{DEFAULT_EXE} check-config ${{CONFIGURATION_DIRECTORY}}/config.toml"
    ]
    assert _values(unit, svc, "ExecStart") == [
        f"{DEFAULT_EXE} run --config ${{CONFIGURATION_DIRECTORY}}/config.toml"
    ]


def test_unit_sets_an_open_file_limit_with_room_for_the_control_socket() -> None:
    """Robustness: systemd's default 1024 descriptors is shared by RunPod's pool, the ledger, tailed logs,
    /metrics and the control socket's clients; the unit sets its own, well above the control cap."""
    unit = _directives(UNIT.read_text(encoding="utf-8"))
    (limit,) = _values(unit, "Service", "LimitNOFILE")
    assert limit.isdigit(), f"LimitNOFILE={limit}: one number sets soft and hard alike"
    assert 4096 <= int(limit) <= 524288  # 524288: systemd's own hard ceiling; more buys nothing


def test_unit_uses_a_fixed_group_readable_identity() -> None:
    """TUI users read the ledger and reach the control socket through the service group."""
    unit = _directives(UNIT.read_text(encoding="utf-8"))
    keys = {k for k, _ in unit["Service"]}
    assert "DynamicUser" not in keys
    assert "ProcSubset" not in keys  # tested-recipes §1: do not use ProcSubset=pid
    assert _values(unit, "Service", "User") == ["runpod-watchdog"]
    assert _values(unit, "Service", "Group") == ["runpod-watchdog"]
    assert _values(unit, "Service", "StateDirectoryMode") == ["0750"]
    assert _values(unit, "Service", "RuntimeDirectoryMode") == ["0750"]
    assert _values(unit, "Service", "UMask") == ["0027"]
    assert _values(unit, "Service", "CapabilityBoundingSet") == [""]


# ----------------------------------------------------------------------------------------------------
# The installer, into a temporary root


def _fake_bin(tmp_path: Path) -> tuple[Path, Path]:
    """Stand-ins for the commands a staged install must never run; each logs its call."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "forbidden-calls.log"
    for name in ("systemctl", "useradd", "groupadd", "userdel", "groupdel", "usermod"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 0\n', encoding="utf-8")
        script.chmod(0o755)
    return bin_dir, log


def _run(script: Path, *args: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert result.returncode == 0, f"{script.name} {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _install(root: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        INSTALL,
        "--root", str(root),
        "--prefix", str(root / "opt" / "runpod-watchdog"),
        "--from", str(REPO),
        "--python", sys.executable,
        "--no-deps",
        bin_dir=bin_dir,
    )  # fmt: skip


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One staged install, then a config edit by the "admin", then the upgrade (a second run)."""
    tmp = tmp_path_factory.mktemp("install")
    root = tmp / "root"
    bin_dir, log = _fake_bin(tmp)
    first = _install(root, bin_dir)
    config = root / "etc" / "runpod-watchdog" / "config.toml"
    shipped = config.read_text(encoding="utf-8")
    config.write_text(shipped + "\n# edited by the admin\n", encoding="utf-8")
    second = _install(root, bin_dir)
    return {"root": root, "log": log, "first": first, "second": second, "shipped": shipped, "tmp": tmp}


def _unit_exe(root: Path, key: str) -> list[str]:
    unit = _directives((root / "etc/systemd/system/runpod-watchdog.service").read_text(encoding="utf-8"))
    (line,) = _values(unit, "Service", key)
    return line.split()


@pytest.mark.slow
def test_install_puts_a_runnable_venv_under_the_root(staged: dict[str, object]) -> None:
    root = staged["root"]
    assert isinstance(root, Path)
    argv = _unit_exe(root, "ExecStart")
    exe = Path(argv[0])
    assert exe == root / "opt/runpod-watchdog/venv/bin/runpod-watchdog"
    assert exe.is_file()
    assert os.access(exe, os.X_OK)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("runpod-watchdog ")
    # An isolated venv: nothing leaks in from the system Python, and never the runpod SDK.
    pyvenv = (root / "opt/runpod-watchdog/venv/pyvenv.cfg").read_text(encoding="utf-8")
    assert "include-system-site-packages = false" in pyvenv
    freeze = subprocess.run(
        [root / "opt/runpod-watchdog/venv/bin/python", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    names = {line.split("==")[0].lower() for line in freeze.stdout.splitlines()}
    assert "runpod-watchdog" in names
    assert "runpod" not in names


@pytest.mark.slow
def test_installed_execstartpre_accepts_the_shipped_config(staged: dict[str, object]) -> None:
    """The unit's own ExecStartPre line, with the variables systemd would set, on the installed file."""
    root, tmp = staged["root"], staged["tmp"]
    assert isinstance(root, Path)
    assert isinstance(tmp, Path)
    # check-config checks that the files it names can be made: systemd creates StateDirectory= and
    # RuntimeDirectory= before ExecStartPre runs, so the test does the same under its own root and points
    # a copy of the installed file at them (the paths themselves are checked in the next test).
    state, runtime, etc = tmp / "var/lib/runpod-watchdog", tmp / "run/runpod-watchdog", tmp / "etc"
    for directory in (state, runtime, etc):
        directory.mkdir(parents=True, exist_ok=True)
    installed = (root / "etc/runpod-watchdog/config.toml").read_text(encoding="utf-8")
    (etc / "config.toml").write_text(
        installed.replace("/var/lib/runpod-watchdog", str(state)).replace(
            "/run/runpod-watchdog", str(runtime)
        ),
        encoding="utf-8",
    )
    argv = [a.replace("${CONFIGURATION_DIRECTORY}", str(etc)) for a in _unit_exe(root, "ExecStartPre")]
    env = {"PATH": "/usr/bin:/bin", "CONFIGURATION_DIRECTORY": str(etc), "STATE_DIRECTORY": str(state)}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env, cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert f"ledger {state}/ledger.sqlite3" in result.stdout
    # Without the StateDirectory the same check names the missing directory instead of passing.
    state.rmdir()
    missing = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env, cwd=tmp)
    assert missing.returncode == 2
    assert f"'{state}' does not exist" in missing.stderr


@pytest.mark.slow
def test_installed_config_points_the_tui_at_the_daemons_files(staged: dict[str, object]) -> None:
    import tomllib

    root, first = staged["root"], staged["first"]
    assert isinstance(root, Path)
    assert isinstance(first, subprocess.CompletedProcess)
    assert "WARNING" not in first.stderr
    config = tomllib.loads((root / "etc/runpod-watchdog/config.toml").read_text(encoding="utf-8"))
    assert config["ledger"]["path"] == "/var/lib/runpod-watchdog/ledger.sqlite3"
    assert config["control"]["socket_path"] == "/run/runpod-watchdog/control.sock"


@pytest.mark.slow
@needs_analyze
def test_installed_unit_verifies_clean_and_scores_the_same(staged: dict[str, object]) -> None:
    """The staged unit's ExecStart exists, so verify runs on the installed file itself."""
    root = staged["root"]
    assert isinstance(root, Path)
    unit = root / "etc/systemd/system/runpod-watchdog.service"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    result = _verify(unit)
    assert (result.stdout + result.stderr) == ""
    rc, exposure, output = _exposure(unit)
    assert rc == 0, output
    assert exposure <= MAX_EXPOSURE


@pytest.mark.slow
def test_install_config_and_credentials(staged: dict[str, object]) -> None:
    root = staged["root"]
    assert isinstance(root, Path)
    etc = root / "etc/runpod-watchdog"
    config = etc / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    credentials = etc / "credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    # Instructions only: the installer never writes a key.
    assert sorted(p.name for p in credentials.iterdir()) == ["README"]
    readme = (credentials / "README").read_text(encoding="utf-8")
    assert "install -m 0600 /dev/stdin /etc/runpod-watchdog/credentials/RUNPOD_API_KEY" in readme
    assert stat.S_IMODE((credentials / "README").stat().st_mode) == 0o600


@pytest.mark.slow
def test_second_run_is_an_upgrade_that_keeps_the_admins_config(staged: dict[str, object]) -> None:
    root, second, shipped = staged["root"], staged["second"], staged["shipped"]
    assert isinstance(root, Path)
    assert isinstance(second, subprocess.CompletedProcess)
    config = (root / "etc/runpod-watchdog/config.toml").read_text(encoding="utf-8")
    assert config.endswith("# edited by the admin\n")
    assert "kept" in second.stdout
    example = root / "opt/runpod-watchdog/share/config.toml.example"
    assert example.read_text(encoding="utf-8") == (REPO / "config.toml").read_text(encoding="utf-8")
    assert config.startswith(shipped)


@pytest.mark.slow
def test_staged_install_never_touches_systemd_or_users(staged: dict[str, object]) -> None:
    log, first = staged["log"], staged["first"]
    assert isinstance(log, Path)
    assert isinstance(first, subprocess.CompletedProcess)
    assert not log.exists(), log.read_text(encoding="utf-8")
    # ...and still tells the admin what to do next.
    for step in (
        "install -m 0600 /dev/stdin /etc/runpod-watchdog/credentials/RUNPOD_API_KEY",
        "systemctl daemon-reload && sudo systemctl enable --now runpod-watchdog",
        "journalctl -u runpod-watchdog -f",
        "usermod -aG runpod-watchdog $USER",
    ):
        assert step in first.stdout


@pytest.mark.slow
def test_uninstall_keeps_ledger_and_config_unless_purged(tmp_path: Path) -> None:
    root = tmp_path / "root"
    bin_dir, log = _fake_bin(tmp_path)
    _install(root, bin_dir)
    ledger = root / "var/lib/runpod-watchdog/ledger.sqlite3"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"SQLite format 3\x00")
    prefix = ("--root", str(root), "--prefix", str(root / "opt/runpod-watchdog"))

    _run(UNINSTALL, *prefix, bin_dir=bin_dir)
    assert not (root / "etc/systemd/system/runpod-watchdog.service").exists()
    assert not (root / "opt/runpod-watchdog/venv").exists()
    assert ledger.exists()
    assert (root / "etc/runpod-watchdog/config.toml").exists()

    _run(UNINSTALL, *prefix, "--purge", bin_dir=bin_dir)
    assert not ledger.parent.exists()
    assert not (root / "etc/runpod-watchdog").exists()
    assert not log.exists(), log.read_text(encoding="utf-8")


def test_install_refuses_a_prefix_outside_a_staging_root(tmp_path: Path) -> None:
    """A venv cannot be moved after creation; staging one in the real /opt would leak onto the host."""
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(tmp_path / "root"), "--prefix", "/opt/runpod-watchdog"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "must be inside --root" in result.stderr
