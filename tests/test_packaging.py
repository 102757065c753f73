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


def test_the_daemon_package_never_imports_textual_or_the_tui() -> None:
    """Import every module under watchdog/ in a fresh interpreter and look at what got loaded."""
    code = (
        "import importlib, pkgutil, sys, watchdog\n"
        "for m in pkgutil.walk_packages(watchdog.__path__, 'watchdog.'):\n"
        "    if m.name != 'watchdog.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'tui'))\n"
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
