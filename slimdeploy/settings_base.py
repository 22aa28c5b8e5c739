"""Stage settings that make their own command line (open_lth's hparams idea).

A stage's settings are a dataclass deriving from ``Settings`` whose fields are declared with
``setting(...)``: the default, the flag, its help and its check live together, once.

- ``Settings.add_arguments(parser)`` adds one option per field that has a flag; the help ends
  with the field's default (or ``shown``), so the CLI never restates a default.
- ``Settings.from_args(args, base=None)`` is ``base`` (default: the defaults) with every option
  the user gave, validated.
- ``validated()`` is the one validation convention: each field's ``check`` (value -> error
  message or None), then ``check_together()`` for rules between fields. It returns the
  settings (normalised by ``normalized()`` where a class needs that), or raises a one-line
  ``UserError``.
- ``from_dict`` reads a TOML table (``slimdeploy run``); unknown keys are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, TypeVar

from slimdeploy.errors import UserError

S = TypeVar("S", bound="Settings")
Check = Callable[[Any], "str | None"]


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            flag: str | None = None, help: str | None = None, check: Check | None = None,
            parse: Callable[[str], Any] | None = None, choices: tuple | None = None,
            metavar: str | None = None, shown: str | None = None, switch: bool = False,
            aliases: tuple[str, ...] = ()) -> Any:
    """A settings field.

    flag:     the CLI option (None: settable from TOML/the API only).
    help:     its help text, without the default (added from the field).
    check:    value -> a one-line error message, or None when the value is fine.
    parse:    argparse ``type`` (text -> value); lists stay lists and become tuples where the
              default is a tuple.
    shown:    how the default reads in the help when the value itself does not say it
              (``None`` defaults usually need words); "" leaves the default out.
    switch:   a ``store_true`` flag (the field becomes True when given).
    aliases:  older spellings of the flag still accepted.
    """
    metadata = {"flag": flag, "help": help, "check": check, "parse": parse, "choices": choices,
                "metavar": metavar, "shown": shown, "switch": switch, "aliases": tuple(aliases)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def show_default(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class Settings:
    """Mixin for a stage's settings dataclass (see the module docstring)."""

    # --- checks ----------------------------------------------------------------------
    def validated(self: S) -> S:
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            if check is not None:
                message = check(getattr(self, field.name))
                if message:
                    raise UserError(message)
        self.check_together()
        return self.normalized()

    def check_together(self) -> None:
        """Rules that involve more than one field (override; raise UserError)."""

    def normalized(self: S) -> S:
        """The settings in canonical form after the checks passed (override where needed)."""
        return self

    # --- command line ----------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
        """One option per field with a flag (or only the fields named in ``only``, in that order)."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("flag")}
        for name in (only if only is not None else tuple(fields)):
            field = fields[name]
            meta = field.metadata
            kwargs: dict[str, Any] = {"dest": field.name, "default": None, "help": _help(field)}
            if meta["switch"]:
                kwargs["action"] = "store_true"
            else:
                for key in ("choices", "metavar"):
                    if meta[key] is not None:
                        kwargs[key] = meta[key]
                if meta["parse"] is not None:
                    kwargs["type"] = meta["parse"]
            parser.add_argument(meta["flag"], *meta["aliases"], **kwargs)

    @classmethod
    def changes_from_args(cls, args: argparse.Namespace) -> dict:
        """The fields the user set on the command line (options not given are absent)."""
        changes = {}
        for field in dataclasses.fields(cls):
            if not field.metadata.get("flag") or not hasattr(args, field.name):
                continue
            value = getattr(args, field.name)
            if value is None or (field.metadata["switch"] and value is False):
                continue
            if isinstance(value, list) and _default(field) is not None and isinstance(_default(field), tuple):
                value = tuple(value)
            changes[field.name] = value
        return changes

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace, base: S | None = None) -> S:
        return dataclasses.replace(base if base is not None else cls(), **cls.changes_from_args(args)).validated()

    # --- files -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[S], raw: Any, source: str = "settings") -> S:
        """Settings from a TOML table: unknown keys are an error, lists become tuples where the
        field's default is a tuple, and ``validated()`` runs."""
        if not isinstance(raw, dict):
            raise UserError(f"{source} must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise UserError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
        values = {}
        for key, value in raw.items():
            if isinstance(_default(fields[key]), tuple):
                if not isinstance(value, (list, tuple)):
                    raise UserError(f"{source}: {key} must be a list, got {value!r}")
                value = tuple(value)
            values[key] = value
        try:
            settings = cls(**values)
        except TypeError as exc:
            raise UserError(f"{source}: {exc}") from exc
        return settings.validated()

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _help(field: dataclasses.Field) -> str | None:
    meta = field.metadata
    text = meta["help"]
    if text is None:
        return None
    # argparse formats help with %: a computed default is escaped; ``shown`` is argparse text.
    shown = meta["shown"] if meta["shown"] is not None else show_default(_default(field)).replace("%", "%%")
    if meta["switch"] or shown == "":
        return text
    return f"{text} (default: {shown})"


# --- checks shared by the stages' fields ------------------------------------------------
def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (not a bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
