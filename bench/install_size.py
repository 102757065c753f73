"""install_size: what a production install weighs, against the same install with the simulator extra.

How: for each variant, a fresh virtual environment (``python -m venv``), ``pip install`` of this checkout
(``.`` for the daemon alone, ``.[sim]`` with the simulator, ``.[test]`` with everything the test suite
needs), then the size of its ``site-packages`` (bytes on disk of every file, excluding pip and
setuptools, which every venv has) and the distributions installed. The baseline is the empty venv. Each
variant is measured ``REPEATS`` times (fresh venv each time) and reported as min/median/max; the figure
is deterministic up to pip's caches, so the spread shows only noise.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from bench import REPO, Result, Table, median, module_main

NAME = "install_size"
TITLE = "Install size: the daemon alone vs with the simulator extra (fresh venvs)"
ALWAYS_THERE = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
HEAVY = ("starlette", "uvicorn", "graphql-core")
VARIANTS = (("daemon only", "."), ("with [sim]", ".[sim]"))


def _site_packages(root: Path) -> Path:
    return next((root / "lib").glob("python3*/site-packages"))


def _size(site: Path) -> int:
    total = 0
    for path in site.rglob("*"):
        top = path.relative_to(site).parts[0]
        if top.startswith(ALWAYS_THERE) or not path.is_file():
            continue
        total += path.stat().st_size
    return total


def measure(spec: str) -> tuple[int, list[str]]:
    """(bytes in site-packages, distributions) of a fresh venv with ``spec`` installed (None: empty)."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        root = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=True).create(root)
        python = root / "bin" / "python"
        if spec:
            source = Path(tmp) / "source"  # a copy: building in the checkout would leave build/ behind
            shutil.copytree(
                REPO,
                source,
                ignore=shutil.ignore_patterns(
                    ".git", ".venv", ".cache", "build", "*.egg-info", "__pycache__"
                ),
            )
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec],
                cwd=source,
                check=True,
                capture_output=True,
            )
        freeze = subprocess.run(
            [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        names = sorted(line.split("==")[0].lower() for line in freeze)
        names = [n for n in names if n not in ("pip", "setuptools")]
        return _size(_site_packages(root)), names


def run(quick: bool) -> Result:
    repeats = 1 if quick else 3
    base, _ = measure("")
    rows = []
    headline = []
    sizes: dict[str, float] = {}
    for label, spec in VARIANTS:
        runs = [measure(spec) for _ in range(repeats)]
        mib = [(size - base) / 2**20 for size, _ in runs]
        names = runs[-1][1]
        sizes[label] = median(mib)
        heavy = [n for n in names if n in HEAVY]
        rows.append(
            [
                label,
                f"pip install '{spec}'",
                f"{min(mib):.1f} / {median(mib):.1f} / {max(mib):.1f}",
                str(len(names)),
                ", ".join(heavy) or "none",
            ]
        )
        headline.append((f"{label}: site-packages", f"{median(mib):.1f} MiB"))
    ratio = sizes["daemon only"] / sizes["with [sim]"]
    headline.append(("daemon only / with [sim]", f"{ratio:.2f}"))
    table = Table(
        f"site-packages above an empty venv, MiB (min / median / max of {repeats})",
        ["variant", "command", "MiB", "distributions", "web/GraphQL stack"],
        rows,
        left=2,
    )
    return Result(
        NAME,
        TITLE,
        quick,
        tables=[table],
        headline=headline,
        notes=[f"python {sys.version.split()[0]}; pip and setuptools (in every venv) are not counted"],
    )


if __name__ == "__main__":
    sys.exit(module_main(NAME, run))
