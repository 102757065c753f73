"""Make the shared dashboard fixtures importable as a plain module from the TUI tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
