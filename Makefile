# The README's two commands: `make demo` (the product on its built-in simulator, no API key) and
# `make test` (lint, architecture contracts, types, then every test with the real Prometheus, promtool,
# systemd-analyze, tmux and runpod SDK).
.PHONY: demo test lint bench clean

demo:
	@scripts/bootstrap.sh
	.venv/bin/runpod-watchdog demo

test:
	@scripts/bootstrap.sh --test
	$(MAKE) --no-print-directory lint
	.venv/bin/python -m pytest -q -rs

# Style, the architecture contracts (import-linter, in pyproject.toml) and the static types (mypy).
lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache
	.venv/bin/mypy

bench:
	@scripts/bootstrap.sh --test
	.venv/bin/python -m bench

clean:
	rm -rf .venv .cache .pytest_cache .ruff_cache
