"""The product's import package is named ``watchdog``, like a popular PyPI package that the runpod SDK
depends on. These tests keep the two apart and keep the daemon headless."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_import_watchdog_resolves_to_this_repository() -> None:
    import watchdog

    assert Path(watchdog.__file__).resolve().is_relative_to(REPO / "watchdog")


def test_pypi_watchdog_and_runpod_sdk_are_not_in_the_product_environment() -> None:
    for distribution in ("watchdog", "runpod"):
        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.distribution(distribution)


def test_distribution_and_command_are_named_runpod_watchdog() -> None:
    dist = importlib.metadata.distribution("runpod-watchdog")
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"runpod-watchdog": "watchdog.cli:main"}
    assert "watchdog" not in scripts


def test_the_daemon_package_never_imports_the_dashboard_the_simulator_or_a_web_stack() -> None:
    """Import every module under watchdog/ in a fresh interpreter and look at what got loaded."""
    code = (
        "import importlib, pkgutil, sys, watchdog\n"
        "for m in pkgutil.walk_packages(watchdog.__path__, 'watchdog.'):\n"
        "    if m.name != 'watchdog.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "heavy = ('textual', 'tui', 'runpod_sim', 'sim_harness', 'starlette', 'uvicorn', 'graphql')\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_cli_version_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("runpod-watchdog ")


def test_every_public_name_of_the_ledger_is_exported() -> None:
    import inspect

    from watchdog import ledger

    public = {
        name
        for name, value in vars(ledger).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == ledger.__name__
    }
    assert public <= set(ledger.__all__)
    assert all(hasattr(ledger, name) for name in ledger.__all__)


@pytest.mark.slow
def test_a_production_install_is_lean_and_runs_the_daemon(tmp_path: Path) -> None:
    """``pip install .`` with no extras, in a fresh virtual environment: no web server or GraphQL stack
    (the simulator is the ``sim`` extra), and ``runpod-watchdog run`` works from it against a simulator
    served from this (test) environment."""
    import os
    import shutil
    import signal
    import time
    import venv

    from runpod_sim.app import DEFAULT_API_KEY, RateLimits
    from runpod_sim.registry import build_simulator
    from runpod_sim.serve import serve_in_thread
    from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS
    from watchdog.clock import SystemClock
    from watchdog.ledger import LedgerReader

    lean = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(lean)
    python = lean / "bin" / "python"
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "build", "*.egg-info", "__pycache__"),
    )
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.split()}
    unwanted = {"starlette", "uvicorn", "graphql-core", "runpod", "watchdog", "sqlite-utils", "click"}
    assert not installed & unwanted, installed
    assert "httpx" in installed and "runpod-watchdog" in installed

    sim = build_simulator("steady", clock=SystemClock())
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    with serve_in_thread(sim, rate_limits=limits) as base_url:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[runpod]\ngraphql_url = "{base_url}/graphql"\nrest_url = "{base_url}/v2"\n'
            f'runtime_url = "{base_url}/v2"\npoll_interval_s = 1.0\nbilling_interval_s = 5.0\n'
            f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n[metrics]\nenabled = false\n'
            f'[control]\nsocket_path = "{tmp_path / "ctl.sock"}"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "NOTIFY_"))}
        env["RUNPOD_API_KEY"] = DEFAULT_API_KEY
        daemon = subprocess.Popen(
            [str(lean / "bin" / "runpod-watchdog"), "run", "--config", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            ticks = 0
            while time.monotonic() < deadline and ticks < 2 and daemon.poll() is None:
                time.sleep(0.5)
                if (tmp_path / "ledger.sqlite3").exists():
                    reader = LedgerReader.open(tmp_path / "ledger.sqlite3")
                    try:
                        ticks = sum(1 for tick in reader.ticks_since(0) if tick.ok)
                    finally:
                        reader.close()
            assert ticks >= 2, daemon.stderr.read() if daemon.poll() is not None else "no ok tick in 60 s"
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
    assert daemon.returncode == 0, err
    simulate = subprocess.run(
        [str(lean / "bin" / "runpod-watchdog"), "simulate", "--list-scenarios"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert simulate.returncode == 2
    assert "pip install 'runpod-watchdog[sim]'" in simulate.stderr and "Traceback" not in simulate.stderr


def test_the_daemon_process_loads_no_numpy_nor_httpxs_command_line_client() -> None:
    """httpx imports its command-line client (click, rich, pygments) when click is installed; ``run`` hides
    it (3.7 MB of RSS), and click stays importable for the rest. The ledger is plain sqlite3: no
    sqlite-utils, which brought click, dateutil and pluggy (4.5 MiB) and numpy when installed (the report
    extra)."""
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('numpy') is not None\n"  # installed here (the report extra)
        "assert importlib.util.find_spec('click') is not None\n"  # installed here (the sim extra)
        "from watchdog import cli\n"
        "cli._import_lean()\n"
        "import watchdog.daemon.service, watchdog.ledger\n"
        "heavy = {'numpy', 'pandas', 'rich', 'pygments', 'click', 'sqlite_utils', 'dateutil', 'pluggy'}\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & heavy))\n"
        "import click\n"
        "print(click.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "click"]
