"""Shared fixtures. Area-specific fixtures live next to their tests."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SDK_VERSION = "1.12.0"
SDK_VENV = REPO / ".cache" / "sdk-venv"


def _sdk_python() -> Path:
    return SDK_VENV / "bin" / "python"


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The official runpod SDK in its OWN virtual environment (never the product's: it depends on PyPI
    `watchdog`, which would shadow this product's package). Built once, reused across runs."""
    python = _sdk_python()
    probe = [str(python), "-c", f"import runpod, sys; sys.exit(runpod.__version__ != {SDK_VERSION!r})"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    try:
        SDK_VENV.parent.mkdir(parents=True, exist_ok=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(SDK_VENV)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"runpod=={SDK_VERSION}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        subprocess.run(probe, check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        message = (
            f"SDK ORACLE SKIPPED: could not install runpod=={SDK_VERSION} into {SDK_VENV}: {detail[-400:]}"
        )
        print(f"\n*** {message} ***", file=sys.stderr)
        pytest.skip(message)
    return python


@pytest.fixture
def sdk_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for SDK subprocesses: HOME points at an empty dir so ~/.runpod/config.toml
    on the developer's machine can never leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    env["PYTHONUNBUFFERED"] = "1"
    return env
