"""Stage settings that make their own command line (open_lth's hparams idea): a ``Settings``
dataclass whose fields are declared with ``setting(...)`` (default, flag, help and check, once).
``validated()`` runs each field's ``check`` (value -> error message or None), then
``check_together()``, and returns ``normalized()`` settings or raises a one-line ``UserError``.
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
            aliases: tuple[str, ...] = (), help_for: dict[str, str] | None = None) -> Any:
    """A settings field. ``flag``: its CLI option (None: TOML and the API only); ``help``: without the
    default, which is added (or ``shown`` in words; "" leaves it out); ``parse``: argparse ``type``;
    ``switch``: ``store_true``; ``aliases``: older spellings; ``help_for``: the whole help text where
    a command adds the option for another use (``add_arguments(use=...)``)."""
    metadata = {"flag": flag, "help": help, "check": check, "parse": parse, "choices": choices, "metavar": metavar,
                "shown": shown, "switch": switch, "aliases": tuple(aliases), "help_for": help_for or {}}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def show_default(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class Settings:
    def validated(self: S) -> S:
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            message = check(getattr(self, field.name)) if check is not None else None
            if message:
                raise UserError(message)
        self.check_together()
        return self.normalized()

    def check_together(self) -> None:
        """Rules that involve more than one field (override; raise UserError)."""

    def normalized(self: S) -> S:
        """The settings in canonical form after the checks passed (override where needed)."""
        return self

    @classmethod
    def help_of(cls, name: str) -> str:
        return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None,
                      use: str | None = None) -> None:
        """One option per field with a flag (or only the fields named in ``only``, in that order),
        each with its help for ``use`` where it has one."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("flag")}
        for name in (only if only is not None else tuple(fields)):
            meta = fields[name].metadata
            kwargs: dict[str, Any] = {"dest": name, "default": None,
                                      "help": meta["help_for"].get(use) or _help(fields[name])}
            if meta["switch"]:
                kwargs["action"] = "store_true"
            else:
                kwargs.update({key: meta[key] for key in ("choices", "metavar") if meta[key] is not None})
                if meta["parse"] is not None:
                    kwargs["type"] = meta["parse"]
            parser.add_argument(meta["flag"], *meta["aliases"], **kwargs)

    @classmethod
    def changes_from_args(cls, args: argparse.Namespace) -> dict:
        """The fields the user set on the command line."""
        changes = {}
        for field in dataclasses.fields(cls):
            if not field.metadata.get("flag") or not hasattr(args, field.name):
                continue
            value = getattr(args, field.name)
            if value is None or (field.metadata["switch"] and value is False):
                continue
            as_tuple = isinstance(value, list) and isinstance(_default(field), tuple)
            changes[field.name] = tuple(value) if as_tuple else value
        return changes

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace, base: S | None = None) -> S:
        return dataclasses.replace(base if base is not None else cls(), **cls.changes_from_args(args)).validated()

    @classmethod
    def from_dict(cls: type[S], raw: Any, source: str = "settings") -> S:
        """Settings from a TOML table: unknown keys are an error; lists become tuples where the default is one."""
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
    if meta["help"] is None:
        return None
    # argparse formats help with %: a computed default is escaped; ``shown`` is argparse text.
    shown = meta["shown"] if meta["shown"] is not None else show_default(_default(field)).replace("%", "%%")
    return meta["help"] if meta["switch"] or shown == "" else f"{meta['help']} (default: {shown})"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (not a bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
