"""The command line: parse arguments, call the library, print. No logic of its own.

Each subcommand lives in ``slimdeploy/commands/<name>.py`` with ``add_parser`` and ``run``;
``--help`` loads no heavy library. Exit status: 0 success, 1 the work itself failed, 2 the
user's input was wrong, 130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback.
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
# Commands whose every run starts TensorFlow here: imported quietly after argparse (`run` imports
# it once its configuration is checked; bench runs TensorFlow in worker subprocesses).
TENSORFLOW_COMMANDS = ("train", "prune", "export")


class _Parser(argparse.ArgumentParser):
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
        module = importlib.import_module(f"slimdeploy.commands.{name}")
        module.add_parser(subparsers, common).set_defaults(handler=module.run)
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
    interrupts.install()  # SIGTERM as Ctrl-C: the same cleanup runs
    try:
        if args.command in TENSORFLOW_COMMANDS:
            import_tensorflow()
        result = args.handler(args)
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except Exception as exc:
        if interrupts.received():  # what a library made of the interrupt
            return _interrupted(args.command)
        if args.debug:
            raise
        if isinstance(exc, SlimdeployError):
            sys.stderr.write(f"slimdeploy {args.command}: error: {exc}\n")
            return exc.exit_code
        # A bug or an unexpected library failure: still one line.
        detail = " ".join(str(exc).split())[:300]
        sys.stderr.write(f"slimdeploy {args.command}: failed: {type(exc).__name__}: {detail} (rerun with --debug for the traceback)\n")
        return 1
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
