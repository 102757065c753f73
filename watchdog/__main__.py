"""Allows ``python -m watchdog``; the installed command is ``runpod-watchdog``."""

from __future__ import annotations

from watchdog.cli import main

raise SystemExit(main())
