"""The JSON Schema of a record's file, generated from the record (a dataclass) itself: its fields'
types, which fields are required (those without a default), and the constraints a field declares in
its ``schema`` metadata (``records.base.constraint``). Keys a record does not model are allowed (they
are kept in ``extra``); private fields (``_order``) and ``extra`` are not keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", tuple: "array",
            dict: "object", type(None): "null"}


def json_schema(record: type) -> dict:
    """The schema of ``record``'s JSON object (draft 2020-12), sub-records inlined."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": record.WHAT, **_object(record, ())}


def _object(record: type, outer: tuple) -> dict:
    if record in outer:  # a record inside itself (a round's controls are rounds): checked at the top
        return {"type": "object"}
    outer = (*outer, record)
    hints = typing.get_type_hints(record)
    properties, required = {}, []
    for field in dataclasses.fields(record):
        if field.name == "extra" or field.name.startswith("_"):
            continue
        properties[field.name] = {**_of(hints[field.name], outer), **field.metadata.get("schema", {})}
        if field.metadata.get("required") or (field.default is dataclasses.MISSING
                                              and field.default_factory is dataclasses.MISSING):
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _of(hint: Any, outer: tuple) -> dict:
    if dataclasses.is_dataclass(hint):
        return _object(hint, outer)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        return {"anyOf": [_of(arg, outer) for arg in args]}
    if origin in (list, tuple):
        return {"type": "array", **({"items": _of(args[0], outer)} if args else {})}
    if origin is dict:
        return {"type": "object", **({"additionalProperties": _of(args[1], outer)} if len(args) == 2 else {})}
    if hint is Any or hint not in _SCALARS:
        return {}
    return {"type": ["integer", "number"]} if hint is float else {"type": _SCALARS[hint]}

