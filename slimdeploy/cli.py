"""The command line: parse arguments, call the library, print. No logic of its own.

Each subcommand lives in ``slimdeploy/commands/<name>.py`` with ``add_parser`` and
``run``; command modules, like every module of the package, import heavy libraries (TensorFlow,
the runtimes) only inside the functions that use them, so ``--help`` loads none of them.

Exit status: 0 success, 1 the work itself failed, 2 the user's input was wrong,
130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from slimdeploy import interrupts
from slimdeploy._version import __version__
from slimdeploy.errors import SlimdeployError
from slimdeploy.quiet import import_tensorflow

COMMANDS = ("train", "prune", "export", "bench", "report", "run")
# Commands whose every run starts TensorFlow in this process: it is imported quietly before
# the command runs (after argparse, so --help stays fast). `run` imports it itself once its
# configuration is checked, so `run --print-config` never pays for it; bench runs TensorFlow
# in worker subprocesses.
TENSORFLOW_COMMANDS = ("train", "prune", "export")


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="slimdeploy",
        description=(
            "Does pruning make a model faster once ONNX Runtime, OpenVINO or TensorRT have "
            "optimized it, and what does it cost in accuracy? Train a dense model, prune it "
            "(lottery-ticket style), export, benchmark and report — measured on this machine."
        ),
        epilog="Start with `slimdeploy run`; `slimdeploy COMMAND --help` explains each stage.",
    )
    parser.add_argument("--version", action="version", version=f"slimdeploy {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"slimdeploy.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"slimdeploy.commands.{name}":
                continue  # a stage not built yet
            raise
        sub = module.add_parser(subparsers, common)
        sub.set_defaults(handler=module.run)
    return parser


def _interrupted(command: str) -> int:
    sys.stderr.write(f"slimdeploy {command}: interrupted; finished work is kept (rerun with --resume where offered)\n")
    return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    # SIGTERM is treated like Ctrl-C so the same cleanup runs (temporaries removed,
    # finished work kept).
    interrupts.install()
    try:
        if args.command in TENSORFLOW_COMMANDS:
            import_tensorflow()
        result = args.handler(args)
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except SlimdeployError as exc:
        if interrupts.received():  # what a library made of the interrupt
            return _interrupted(args.command)
        if args.debug:
            raise
        sys.stderr.write(f"slimdeploy {args.command}: error: {exc}\n")
        return exc.exit_code
    except Exception as exc:  # a bug or an unexpected library failure: still one line
        if interrupts.received():
            return _interrupted(args.command)
        if args.debug:
            raise
        detail = " ".join(str(exc).split())[:300]
        sys.stderr.write(f"slimdeploy {args.command}: failed: {type(exc).__name__}: {detail} (rerun with --debug for the traceback)\n")
        return 1
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
