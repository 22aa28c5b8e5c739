"""Typed records of the run directory's JSON files (see docs/ARCHITECTURE.md for their shapes).

``base.Record`` is the frozen-dataclass base with ``from_json``/``to_json``/``load``/``save``;
each stage's records live beside it (``run``, ``lottery``, ``export``, ``bench``).
"""
