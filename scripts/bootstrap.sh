#!/usr/bin/env bash
# Prepares a fresh machine for the README's commands: the product's virtual environment (.venv) and,
# with --test, what the test suite drives for real: Debian's prometheus/promtool, tmux, systemd-analyze.
# The official runpod SDK is NOT installed here: tests put it in its own venv (.cache/sdk-venv) because it
# depends on PyPI `watchdog`, whose name collides with this product's package.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python >= 3.11 is required (found: $("$python" --version 2>&1))" >&2
  exit 1
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
if [ "$want_test" = 1 ]; then
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v tmux >/dev/null || missing+=(tmux)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  # the funders' HTML report is checked in a real browser (tests/test_reports_html.py)
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
fi
"$python" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d keeps the prometheus package from trying to start a system service.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# The demo needs the simulator (the `sim` extra); the tests need it too, plus the test tools.
extra="[sim]"
[ "$want_test" = 1 ] && extra="[test]"
stamp=".venv/.installed-${want_test}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}" 2>&1 | grep -v -E '^(WARNING: Location|  )' || true
  .venv/bin/python -c 'import httpx, starlette, uvicorn, graphql, prometheus_client, slack_sdk, textual' 
  touch "$stamp"
fi
