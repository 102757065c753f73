"""``runpod-watchdog``: one command, several subcommands.

Each subcommand imports its module lazily, so ``check-config`` on a small VPS does not pay for uvicorn,
and a broken optional part cannot stop the others from running. Exit codes: 0 success, 1 runtime failure,
2 bad usage or bad configuration (as argparse and systemd's ExecStartPre expect).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from watchdog import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runpod-watchdog",
        description="Keep a RunPod Serverless bill inside its monthly budget.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate a configuration file and exit (0 valid, 2 invalid)")
    check.add_argument("path", nargs="?", help="config file (default: the shipped config.toml search path)")

    simulate = sub.add_parser("simulate", help="serve the built-in RunPod simulator on a loopback port")
    simulate.add_argument(
        "--listen", default="127.0.0.1:8787", help="HOST:PORT (loopback only; port 0 picks a free one)"
    )
    simulate.add_argument("--scenario", default="steady", help="named scenario (see --list-scenarios)")
    simulate.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    simulate.add_argument("--api-key", default=None, help="the one API key the simulator accepts")
    simulate.add_argument("--access-log", default=None, help="write the access log (JSON lines) here")
    simulate.add_argument("--list-scenarios", action="store_true", help="print the scenarios and exit")
    simulate.add_argument("--seed", type=int, default=0, help="random seed for scenario traffic")

    run = sub.add_parser("run", help="run the watchdog daemon")
    run.add_argument("--config", default=None, help="config file")

    snapshot = sub.add_parser("snapshot", help="print a live snapshot of a RunPod account through the client")
    snapshot.add_argument("--config", default=None, help="config file")

    tui = sub.add_parser("tui", help="open the live dashboard")
    tui.add_argument("--config", default=None, help="config file")

    demo = sub.add_parser("demo", help="simulator + daemon + dashboard telling the product's story")
    demo.add_argument("--headless", action="store_true", help="tell the story as text and exit")
    demo.add_argument("--duration", type=float, default=None, help="seconds to run (headless)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        from watchdog.config import check_config_command

        return check_config_command(args.path)
    if args.command == "snapshot":
        from watchdog.snapshot import snapshot_command

        return snapshot_command(args.config)
    if args.command == "run":
        from watchdog.daemon import run_command

        return run_command(args.config)
    if args.command in PLUGIN_COMMANDS:
        return _run_plugin_command(args)
    print(f"runpod-watchdog: unknown command {args.command!r}", file=sys.stderr)
    return 2


PLUGIN_COMMANDS: dict[str, str] = {
    "tui": "",
    "simulate": "sim",
    "demo": "sim",
}
"""Commands that live outside the headless core (the dashboard in ``tui``, the simulator in ``runpod_sim``,
the demo in ``sim_harness``), registered under the ``runpod_watchdog.commands`` entry-point group so the
core never imports them by name; the value is the extra that installs what they need."""


def _run_plugin_command(args: argparse.Namespace) -> int:
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
