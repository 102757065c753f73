"""``runpod-watchdog``: one command, several subcommands, and the bodies of the core ones.

The modules under ``watchdog/`` are libraries; what a command does with them (load the configuration or
exit 2, print, choose an exit code) lives here. Subcommands import their modules lazily, so
``check-config`` on a small VPS does not pay for the daemon, and a broken optional part cannot stop the
others. The dashboard, the simulator and the demo live outside the headless core and register themselves
as entry points (:data:`PLUGIN_COMMANDS`). Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad
configuration (as argparse and systemd's ExecStartPre expect).

Every command finds its configuration with :func:`watchdog.config.find_config` (``--config PATH``, else
``$RUNPOD_WATCHDOG_CONFIG``, else ``./config.toml``, else ``/etc/runpod-watchdog/config.toml``). Every
command that talks to RunPod takes ``--simulator URL``: it sets, for this process, exactly the environment
``runpod-watchdog simulate`` prints (:func:`watchdog.config.simulator_environment`), so pointing a command
at the simulator is one flag and can never be half done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from watchdog import __version__
from watchdog.config import (
    CONFIG_SEARCH_PATH,
    SIMULATOR_DROPPED_VARIABLES,
    Config,
    Secrets,
    dry_run_everywhere,
    find_config,
    load_config,
    load_secrets,
    simulator_environment,
)
from watchdog.errors import ConfigError

PLUGIN_COMMANDS: dict[str, str] = {
    "tui": "",
    "simulate": "sim",
    "demo": "sim",
}
"""Commands that live outside the headless core (the dashboard in ``tui``, the simulator in ``runpod_sim``,
the demo in ``sim_harness``), registered under the ``runpod_watchdog.commands`` entry-point group so the
core never imports them by name; the value is the extra that installs what they need."""


_SEARCHED = CONFIG_SEARCH_PATH.removeprefix("--config PATH, else ")
CONFIG_HELP = f"config file (default: {_SEARCHED})"
SIMULATOR_HELP = (
    "talk to the built-in simulator at URL (http://127.0.0.1:PORT, as `runpod-watchdog simulate` prints) "
    "instead of RunPod: sets the three RunPod URLs and the simulator's published key, and ignores "
    "SLACK_WEBHOOK_URL and systemd credentials (the same as sourcing the lines `simulate` prints)"
)
RUN_DESCRIPTION = f"""\
Run the watchdog daemon until SIGTERM (RUNPOD_API_KEY from the environment or a systemd credential).

The configuration is searched:
  {CONFIG_SEARCH_PATH}.
The mode is the file's policy.mode ("enforce" in the shipped config.toml: it patches, cancels and pauses
at RunPod from the first tick); the daemon logs at start which mode it is in and why. A safe first
contact: `runpod-watchdog snapshot`, then `runpod-watchdog plan` (what run would change now), then
`run --dry-run` for a week, then `run`.

Without a configuration file, run refuses to enforce the built-in defaults (exit 2) unless --dry-run is
given. Exit codes: 0 after SIGTERM, 2 for a bad or missing configuration, a missing or rejected key, or a
ledger held by another instance."""
PLAN_DESCRIPTION = f"""\
Read RunPod once and print what `run` would do now, as a diff, without doing it: each endpoint change
(`ep-x  workersMax 3 → 1`, `executionTimeoutMs none → 120000`), each job it would cancel (by id), each
proposal and alert, with its € figure; then the month's spend and the date the budget brake would fire at
the current rate. It changes nothing at RunPod and opens no ledger.

The configuration is searched:
  {CONFIG_SEARCH_PATH}.
Job ids come from what the daemon's first tick reads, and from the heartbeats in the last MiB of each
[[pings.source]] log. Exit codes: 0 the plan was printed; 1 with --exit-code when run would change
something; 2 bad configuration, no or rejected API key, or RunPod could not be read."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runpod-watchdog",
        description="Keep a RunPod Serverless bill inside its monthly budget.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate a configuration file and exit (0 valid, 2 invalid)")
    check.add_argument(
        "path",
        nargs="?",
        help=CONFIG_HELP,
    )

    simulate = sub.add_parser("simulate", help="serve the built-in RunPod simulator on a loopback port")
    simulate.add_argument(
        "--listen", default="127.0.0.1:8787", help="HOST:PORT (loopback only; port 0 picks a free one)"
    )
    simulate.add_argument("--scenario", default="steady", help="named scenario (see --list-scenarios)")
    simulate.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    simulate.add_argument("--api-key", default=None, help="the one API key the simulator accepts")
    simulate.add_argument("--access-log", default=None, help="write the access log (JSON lines) here")
    simulate.add_argument(
        "--env-file",
        default=None,
        metavar="PATH",
        help="write the environment that points runpod-watchdog at this simulator to PATH (source it: "
        "`. PATH`); the same lines are printed at start",
    )
    simulate.add_argument("--list-scenarios", action="store_true", help="print the scenarios and exit")
    simulate.add_argument("--seed", type=int, default=0, help="random seed for scenario traffic")
    simulate.add_argument(
        "--external-workers",
        action="store_true",
        help="the main endpoint waits for real runpod SDK workers; prints the environment they need",
    )
    simulate.add_argument(
        "--no-graphql", action="store_true", help="serve GraphQL as retired (410 Gone), as in 2027"
    )
    simulate.add_argument(
        "--spend-rate",
        type=float,
        default=None,
        metavar="USD_PER_HR",
        help="the account's spend-rate cap, checked when a worker starts (default 80; inf: no cap)",
    )

    run = sub.add_parser(
        "run",
        help="run the watchdog daemon",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", default=None, metavar="PATH", help=CONFIG_HELP)
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing at RunPod for this run, whatever the configuration's modes say: record every "
        "decision as a proposal (the only way to run on the built-in defaults)",
    )
    run.add_argument("--simulator", default=None, metavar="URL", help=SIMULATOR_HELP)

    snapshot = sub.add_parser("snapshot", help="print a live snapshot of a RunPod account through the client")
    snapshot.add_argument("--config", default=None, metavar="PATH", help=CONFIG_HELP)
    snapshot.add_argument("--simulator", default=None, metavar="URL", help=SIMULATOR_HELP)

    plan = sub.add_parser(
        "plan",
        help="what `run` would change now, as a diff, without changing anything",
        description=PLAN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("--config", default=None, metavar="PATH", help=CONFIG_HELP)
    plan.add_argument("--simulator", default=None, metavar="URL", help=SIMULATOR_HELP)
    plan.add_argument(
        "--exit-code", action="store_true", help="exit 1 when `run` would change something (for scripts)"
    )

    tui = sub.add_parser("tui", help="open the live dashboard")
    tui.add_argument("--config", default=None, metavar="PATH", help=CONFIG_HELP)

    demo = sub.add_parser("demo", help="simulator + daemon + dashboard telling the product's story")
    demo.add_argument("--headless", action="store_true", help="tell the story as text and exit")
    demo.add_argument("--duration", type=float, default=None, help="seconds to run (headless)")

    report = sub.add_parser("report", help="a month's spending report for funders (from the ledger)")
    report.add_argument("--month", required=True, help="the UTC month, YYYY-MM")
    report.add_argument("--format", choices=("md", "html", "csv"), default="md", help="output format (md)")
    report.add_argument("--out", default=".", help="directory to write the report into (default: here)")
    report.add_argument("--config", default=None, help="config file")

    compare = sub.add_parser("compare", help="the seed's provider table, recomputed from measured traffic")
    compare.add_argument("--requests", type=int, default=None, help="requests a month (default: measured)")
    compare.add_argument(
        "--seconds", type=float, default=None, help="GPU seconds a request (default: measured)"
    )
    compare.add_argument("--gpu", default=None, help="RunPod GPU type, e.g. 'A6000' (default: every type)")
    compare.add_argument("--month", default=None, help="the measured UTC month, YYYY-MM (default: this one)")
    compare.add_argument("--config", default=None, help="config file")

    whatif = sub.add_parser("whatif", help="replay recorded arrivals against candidate endpoint settings")
    whatif.add_argument(
        "endpoint", nargs="?", default=None, help="endpoint id or name (default: the only one)"
    )
    whatif.add_argument("--days", type=float, default=30.0, help="days of recorded arrivals to replay (30)")
    whatif.add_argument(
        "--until", default=None, help="end of the replayed days, UTC (YYYY-MM-DD or ISO time; default: now)"
    )
    whatif.add_argument(
        "--max-wait-p95",
        type=float,
        default=None,
        help="wait (s, p95) the cheapest fit may add (default: today's)",
    )
    whatif.add_argument(
        "--cold-start-s", type=float, default=None, help="a shorter cold start to try (FlashBoot), seconds"
    )
    whatif.add_argument(
        "--baseline-cold-start-s",
        type=float,
        default=None,
        help="today's cold start, seconds (default: measured)",
    )
    whatif.add_argument(
        "--exec-s",
        type=float,
        default=None,
        help="execution seconds where the ledger has none (default: measured)",
    )
    whatif.add_argument(
        "--speed",
        action="append",
        default=[],
        metavar="GPU=FACTOR",
        help="execution time on GPU relative to the RTX A6000 (repeatable; default: the documented table)",
    )
    whatif.add_argument(
        "--batch-times",
        default="00:00,06:00,12:00,18:00",
        help="UTC times free requests are held for (HH:MM,...)",
    )
    whatif.add_argument("--config", default=None, help="config file")

    checklist = sub.add_parser(
        "checklist", help="the pre-launch checklist for one endpoint (exit 0 passed, 1 failed)"
    )
    checklist.add_argument("endpoint", help="endpoint id or name")
    checklist.add_argument(
        "--answer", action="append", default=[], metavar="KEY=VALUE", help="record a manual step's answer"
    )
    checklist.add_argument("--answers-file", default=None, help="where manual answers are kept (JSON)")
    checklist.add_argument("--report-dir", default=None, help="where the impact report is written")
    checklist.add_argument(
        "--live", action="store_true", help="also read the endpoint from RunPod (needs the API key)"
    )
    checklist.add_argument("--config", default=None, help="config file")
    checklist.add_argument("--simulator", default=None, metavar="URL", help=SIMULATOR_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    simulator = getattr(args, "simulator", None)
    if simulator is not None:
        try:
            os.environ.update(simulator_environment(simulator))
        except ConfigError as error:
            print(f"runpod-watchdog {args.command}: {error}", file=sys.stderr)
            return 2
        for name in SIMULATOR_DROPPED_VARIABLES:
            os.environ.pop(name, None)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        return check_config(args.path)
    if args.command == "snapshot":
        return snapshot(args.config)
    if args.command == "plan":
        return plan(args.config, exit_code=args.exit_code)
    if args.command == "run":
        return run(args.config, dry_run=args.dry_run)
    if args.command == "report":
        return report(args)
    if args.command == "compare":
        return compare(args)
    if args.command == "whatif":
        return whatif(args)
    if args.command == "checklist":
        return checklist(args)
    if args.command in PLUGIN_COMMANDS:
        return _run_plugin_command(args)
    print(f"runpod-watchdog: unknown command {args.command!r}", file=sys.stderr)
    return 2


class ExitCode(Exception):
    """Leave the command with this exit code (the message is already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def load_or_exit(path: str | None, *, check_files: bool = True) -> tuple[Config, Secrets]:
    """The configuration and secrets, or every problem as ``FILE:LINE: key: message`` on stderr and
    :class:`ExitCode` 2: the one way every command starts."""
    try:
        return load_config(path, check_files=check_files), load_secrets()
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise ExitCode(2) from None


def check_config(path: str | None) -> int:
    """``runpod-watchdog check-config [PATH]``: 0 and a summary on stdout, or 2 and the problems on stderr."""
    try:
        config, secrets = load_or_exit(path)
    except ExitCode as exit_code:
        return exit_code.code
    print(f"{config.summary()}, RunPod API key: {secrets.runpod_api_key_origin}")
    return 0


def snapshot(config_path: str | None) -> int:
    """``runpod-watchdog snapshot``: one read-only look at the account. 0, 1 if RunPod could not be read,
    2 for a bad config or a missing/rejected key. It opens none of the daemon's files, so it does not
    check them (it runs as any user)."""
    from watchdog.errors import RunPodAuthError, RunPodError
    from watchdog.snapshot import snapshot_text

    try:
        config, secrets = load_or_exit(config_path, check_files=False)
    except ExitCode as exit_code:
        return exit_code.code
    if secrets.runpod_api_key is None:
        print(
            "runpod-watchdog snapshot: RUNPOD_API_KEY is not set (or add --simulator URL to look at the "
            "built-in simulator)",
            file=sys.stderr,
        )
        return 2
    try:
        text = asyncio.run(snapshot_text(config, secrets.runpod_api_key))
    except RunPodAuthError as exc:
        print(f"runpod-watchdog snapshot: RunPod rejected the API key: {exc}", file=sys.stderr)
        return 2
    except RunPodError as exc:
        print(f"runpod-watchdog snapshot: {exc.title}: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


def plan(config_path: str | None, *, exit_code: bool = False) -> int:
    """``runpod-watchdog plan``: what ``run`` would do now, printed, nothing done. 0; 1 with ``exit_code``
    when ``run`` would change something; 2 for a bad config, a missing or rejected key, or a RunPod that
    could not be read (a script must never take "could not look" for "nothing to change")."""
    from watchdog.plan import PlanError, make_plan, plan_text

    location = find_config(config_path)
    try:
        config, secrets = load_or_exit(config_path, check_files=False)
    except ExitCode as code:
        return code.code
    if secrets.runpod_api_key is None:
        print(
            "runpod-watchdog plan: RUNPOD_API_KEY is not set (or add --simulator URL to plan against the "
            "built-in simulator)",
            file=sys.stderr,
        )
        return 2
    try:
        result = asyncio.run(make_plan(config, secrets.runpod_api_key))
    except PlanError as exc:
        if exc.auth_rejected:
            print(f"runpod-watchdog plan: RunPod rejected the API key: {exc}", file=sys.stderr)
        else:
            print(
                f"runpod-watchdog plan: RunPod could not be read, so there is no plan: {exc}", file=sys.stderr
            )
        return 2
    where = (
        f"{location.path} ({location.why})"
        if location.path is not None
        else f"the built-in defaults ({location.why})"
    )
    print(
        plan_text(result, usd_per_eur=config.budget.usd_per_eur, source=f"{where}, mode {config.policy.mode}")
    )
    return 1 if exit_code and result.would_change else 0


NO_CONFIG_MESSAGE = (
    f"runpod-watchdog run: no configuration file found (searched {CONFIG_SEARCH_PATH}); refusing to "
    "enforce the built-in defaults. Give one with --config PATH (see what it would do first: "
    "runpod-watchdog plan --config PATH), or add --dry-run to watch with the built-in defaults and change "
    "nothing"
)


OPTIONAL_IMPORTS_HIDDEN: dict[str, tuple[str, ...]] = {
    # httpx loads its own command-line client when click is installed, and with it rich and pygments:
    # 3.7 MB. A server install (no extras) has no click since the ledger dropped sqlite-utils, but the sim
    # extra (uvicorn) and the test tools bring it.
    "httpx": ("click",),
}
"""Module → the optional packages it imports when installed and the daemon never uses."""


def _import_lean() -> None:
    """Import the daemon's libraries with the optional packages they would load for nothing hidden
    (:data:`OPTIONAL_IMPORTS_HIDDEN`), then make those importable again for anything else in the process.
    Only ``run`` does this: the long-lived process on a 1 GB VPS."""
    import importlib

    for module, hidden in OPTIONAL_IMPORTS_HIDDEN.items():
        if module in sys.modules or any(name in sys.modules for name in hidden):
            continue
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            importlib.import_module(module)
        finally:
            for name in hidden:
                del sys.modules[name]


def run(config_path: str | None, *, dry_run: bool = False) -> int:
    """``runpod-watchdog run``: the daemon until SIGTERM (0); 2 for a bad or missing config (enforcing the
    built-in defaults is refused: only ``dry_run`` runs on them), a rejected key or a ledger held by another
    instance. ``dry_run`` overrides every mode of the configuration for this run."""
    import logging

    _import_lean()
    from watchdog.daemon.service import StartupError, serve
    from watchdog.logs import SecretRedactor, setup_logging
    from watchdog.plan import mode_reason

    _harden_process()
    redactor = setup_logging("INFO", SecretRedactor())
    log = logging.getLogger("watchdog.daemon")
    location = find_config(config_path)
    if location.path is None and not dry_run:
        print(NO_CONFIG_MESSAGE, file=sys.stderr)
        return 2
    path = str(location.path) if location.path is not None else None
    try:
        config, secrets = load_or_exit(path)
    except ExitCode as exit_code:
        return exit_code.code
    for secret in (secrets.runpod_api_key, secrets.slack_webhook_url):
        if secret is not None:
            redactor.add(secret.reveal())
    if location.path is None:
        log.warning("%s: using the built-in defaults, in dry-run mode (--dry-run)", location.why)
    else:
        log.info("configuration %s (%s)", location.path, location.why)
    log.info("%s", mode_reason(config, location, forced_dry_run=dry_run))
    if dry_run:
        config = dry_run_everywhere(config)
    try:
        return asyncio.run(serve(config, secrets, path))
    except (StartupError, ConfigError) as exc:
        logging.getLogger("watchdog.daemon").error("cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 0


def report(args: argparse.Namespace) -> int:
    """``runpod-watchdog report --month YYYY-MM``: the month's report for funders, written to files.
    0, 1 if the ledger cannot be read, 2 for bad usage or a bad config."""
    from watchdog.errors import LedgerError
    from watchdog.reports.commands import run_report

    try:
        config, _ = load_or_exit(args.config, check_files=False)
    except ExitCode as exit_code:
        return exit_code.code
    try:
        return run_report(config, month=args.month, fmt=args.format, out_dir=args.out)
    except LedgerError as exc:
        print(f"runpod-watchdog report: {exc}", file=sys.stderr)
        return 1


def compare(args: argparse.Namespace) -> int:
    """``runpod-watchdog compare``: the seed's provider table from measured (or given) traffic."""
    from watchdog.errors import LedgerError
    from watchdog.reports.commands import run_compare

    try:
        config, _ = load_or_exit(args.config, check_files=False)
    except ExitCode as exit_code:
        return exit_code.code
    try:
        return run_compare(
            config, requests=args.requests, seconds=args.seconds, gpu=args.gpu, month=args.month
        )
    except LedgerError as exc:
        print(f"runpod-watchdog compare: {exc}", file=sys.stderr)
        return 1


def whatif(args: argparse.Namespace) -> int:
    """``runpod-watchdog whatif [ENDPOINT]``: recorded arrivals replayed against candidate settings."""
    from watchdog.errors import LedgerError
    from watchdog.reports.commands import run_whatif

    try:
        config, _ = load_or_exit(args.config, check_files=False)
    except ExitCode as exit_code:
        return exit_code.code
    try:
        return run_whatif(config, args)
    except LedgerError as exc:
        print(f"runpod-watchdog whatif: {exc}", file=sys.stderr)
        return 1


def checklist(args: argparse.Namespace) -> int:
    """``runpod-watchdog checklist ENDPOINT``: 0 every check passed, 1 a check failed or a manual step is
    unanswered, 2 bad usage or config."""
    from watchdog.errors import LedgerError
    from watchdog.reports.commands import run_checklist

    try:
        config, secrets = load_or_exit(args.config, check_files=False)
    except ExitCode as exit_code:
        return exit_code.code
    try:
        return run_checklist(config, secrets, args)
    except LedgerError as exc:
        print(f"runpod-watchdog checklist: {exc}", file=sys.stderr)
        return 2


def _harden_process() -> None:
    """What the daemon writes (ledger, deny list, socket) is for its owner and group only, whatever umask
    it was started with; and it never dumps core (a core file would hold the API key), whatever the
    unit's ``LimitCORE`` says."""
    import os
    import resource

    os.umask(os.umask(0) | 0o007)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run_plugin_command(args: argparse.Namespace) -> int:
    from importlib.metadata import entry_points  # here, not at the top: `run` never needs it (0.75 MiB)

    commands = {ep.name: ep for ep in entry_points(group="runpod_watchdog.commands")}
    extra = PLUGIN_COMMANDS[args.command]
    install = f"pip install 'runpod-watchdog[{extra}]'" if extra else "reinstall runpod-watchdog"
    if args.command not in commands:
        print(f"runpod-watchdog: the {args.command!r} command is not installed ({install})", file=sys.stderr)
        return 2
    try:
        command: Callable[[argparse.Namespace], int] = commands[args.command].load()
    except ImportError as exc:
        print(
            f"runpod-watchdog {args.command}: {exc.name or exc} is not installed; {install}",
            file=sys.stderr,
        )
        return 2
    return command(args)


if __name__ == "__main__":
    raise SystemExit(main())
