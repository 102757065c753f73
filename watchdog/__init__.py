"""runpod-watchdog: keeps a RunPod Serverless bill inside a small monthly budget.

The package is named ``watchdog`` for historical reasons; it is distributed as ``runpod-watchdog`` and
must never be confused with the PyPI ``watchdog`` package (filesystem events), which the runpod SDK
depends on. A test asserts that ``import watchdog`` resolves to this repository.

Everything here is headless: nothing under ``watchdog/`` imports Textual or the ``tui`` package.
"""

from __future__ import annotations

__version__ = "0.1.0"
