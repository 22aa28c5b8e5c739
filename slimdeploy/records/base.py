"""The base of every typed record: a frozen dataclass that reads and writes one JSON object.

A record's fields are the keys its file has today, in the order they are written; reading
and writing go through ``from_json``/``to_json`` only, so a file's shape is defined once.

- Keys a record does not model are kept in ``extra`` and written back as they were: a file
  from a newer or older version loses nothing on a round trip.
- A field whose value is ``ABSENT`` was not in the file and is not written: "missing" and
  ``null`` stay different, as they are in the files.
- Fields typed as another ``Record`` (or a list/dict of them) are read as that record.
- ``SCHEMA_VERSION`` (when set) is checked once, in ``from_json``: a file from a newer
  schema is refused with a one-line error naming it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from slimdeploy import fsutil
from slimdeploy.errors import UserError
from slimdeploy.records.schema import json_schema

R = TypeVar("R", bound="Record")


class _Absent:
    """A key that was not in the file (distinct from ``null``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()
_NOT_KEYS = {"extra", "_order"}


def present(value: Any, default: Any = None) -> Any:
    """A record field's value, ``default`` where the file did not have it (``ABSENT``)."""
    return default if value is ABSENT else value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Record:
    # Keys of the file this record does not model, kept so a round trip loses nothing.
    extra: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    # The key order of the file this record was read from: a file written back keeps its layout.
    _order: tuple = dataclasses.field(default=(), compare=False, repr=False)

    # The newest schema_version this code reads (None: the file has no version).
    SCHEMA_VERSION: ClassVar[int | None] = None
    # What the file is called in error messages ("lottery.json").
    WHAT: ClassVar[str] = "record"
    # What to do about a file from a newer schema.
    REMEDY: ClassVar[str] = "upgrade slimdeploy"

    # --- reading ---------------------------------------------------------------------
    @classmethod
    def from_json(cls: type[R], raw: Any, source: str | Path | None = None, *, keep_order: bool = False) -> R:
        """The record held by ``raw`` (a parsed JSON object); ``source`` names it in errors.
        ``keep_order``: write it back with the file's key order (a file read, not facts being built)."""
        where = str(source) if source is not None else cls.WHAT
        if not isinstance(raw, dict):
            raise UserError(f"{where} is not a {cls.WHAT} (expected a JSON object, found {type(raw).__name__})")
        cls._check_schema(raw, where)
        hints = field_types(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name in _NOT_KEYS or field.name not in raw:
                continue
            values[field.name] = _decode(hints[field.name], raw[field.name], f"{where}: {field.name}", keep_order)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.name not in _NOT_KEYS
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UserError(f"{where} is not a complete {cls.WHAT}: missing {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)} - _NOT_KEYS
        values["extra"] = {k: v for k, v in raw.items() if k not in known}
        return cls(**values, _order=tuple(raw) if keep_order else ())

    @classmethod
    def load(cls: type[R], path: str | Path, what: str | None = None) -> R:
        """The record a file holds (``validated``); one-line errors name the file."""
        what = what or cls.WHAT
        return cls.validated(fsutil.read_json(path, what), path, what)

    @classmethod
    def validated(cls: type[R], raw: Any, path: str | Path, what: str | None = None) -> R:
        """The one check of a file's content: a JSON object, its schema version (required of a versioned
        file), the JSON Schema generated from the record, the record's own ``check``; then the record,
        keeping the file's key order."""
        where = f"{what or cls.WHAT} {path}"
        if not isinstance(raw, dict):
            raise UserError(f"{where} is not a JSON object")
        if cls.SCHEMA_VERSION is not None:
            check_schema_version(raw, where, cls.SCHEMA_VERSION, required=True, remedy=cls.REMEDY)
        _validate(raw, cls, where)
        cls.check(raw, where)
        return cls.from_json(raw, path, keep_order=True)

    @classmethod
    def check(cls, raw: dict, where: str) -> None:
        """What the file must hold beyond its schema (a record overrides it); raise UserError."""

    @classmethod
    def _check_schema(cls, raw: dict, where: str) -> None:
        if cls.SCHEMA_VERSION is not None:
            check_schema_version(raw, where, cls.SCHEMA_VERSION)

    # --- writing ---------------------------------------------------------------------
    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            if field.name in _NOT_KEYS:
                continue
            value = getattr(self, field.name)
            if value is ABSENT:
                continue
            out[field.name] = _encode(value)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        if self._order:
            out = {**{k: out[k] for k in self._order if k in out}, **out}
        return out

    def save(self, path: str | Path) -> None:
        fsutil.write_json(path, self.to_json())

    # --- convenience -----------------------------------------------------------------
    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)


def check_schema_version(raw: dict, where: str, newest: int, *, required: bool = False,
                         remedy: str = "upgrade slimdeploy") -> None:
    """The one schema check of every slimdeploy file: versions 1..``newest`` are read; a file
    without ``schema_version`` is refused only when ``required``."""
    version = raw.get("schema_version")
    if version is None:
        if required:
            raise UserError(f"{where} has no schema_version: not a slimdeploy file")
        return
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= newest:
        readable = ", ".join(str(v) for v in range(1, newest + 1))
        raise UserError(f"{where} has schema_version {version!r}; this slimdeploy reads version {readable} ({remedy})")


_VALIDATORS: dict[type, Any] = {}


def _validate(raw: dict, cls: type[Record], where: str) -> None:
    import jsonschema  # lazy: only reading a file needs it

    if cls not in _VALIDATORS:  # the schema is generated from type hints: once per record type
        _VALIDATORS[cls] = jsonschema.Draft202012Validator(json_schema(cls))
    error = jsonschema.exceptions.best_match(_VALIDATORS[cls].iter_errors(raw))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise UserError(f"{where} does not match the {cls.WHAT} schema at {at}: {error.message[:200]}")


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict] = {}


def constraint(default: Any = dataclasses.MISSING, *, required: bool = False, **schema: Any) -> Any:
    """A field with JSON Schema constraints beyond its type (``enum``, ``minimum``...), for
    ``records.schema``: ``status: str = constraint("pending", enum=CELL_STATUSES)``; ``required``:
    a file must have the key although code building the record may leave it to its default."""
    return dataclasses.field(default=default, metadata={"schema": schema, "required": required})


def field_types(cls: type) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _record_type(hint: Any) -> type | None:
    """The Record class ``hint`` names, directly or as ``X | None``."""
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            found = _record_type(arg)
            if found is not None:
                return found
    return None


def _decode(hint: Any, value: Any, where: str, keep_order: bool) -> Any:
    record = _record_type(hint)
    if record is not None:
        return value if value is None else record.from_json(value, where, keep_order=keep_order)
    origin = typing.get_origin(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        # ``list[Round] | None`` and the like: decode with the first container that fits.
        for arg in typing.get_args(hint):
            arg_origin = typing.get_origin(arg)
            if arg_origin in (list, tuple) and isinstance(value, list):
                return _decode(arg, value, where, keep_order)
            if arg_origin is dict and isinstance(value, dict):
                return _decode(arg, value, where, keep_order)
        return value
    args = typing.get_args(hint)
    if origin in (list, tuple) and isinstance(value, list) and args:
        inner = _record_type(args[0])
        if inner is not None:
            items = [v if v is None else inner.from_json(v, f"{where}[{i}]", keep_order=keep_order) for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        inner = _record_type(args[1])
        if inner is not None:
            return {k: v if v is None else inner.from_json(v, f"{where}.{k}", keep_order=keep_order) for k, v in value.items()}
    return value
