"""The machine and libraries a result was made on (``environment.describe()``), as bench.json and
export.json record them."""

from __future__ import annotations

import dataclasses

from slimdeploy.environment import ISA_FEATURES
from slimdeploy.records.base import ABSENT, Record, constraint


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cpu(Record):
    WHAT = "cpu record"

    model: str = ABSENT
    flags: list = ABSENT
    logical_cores: int | None = ABSENT
    arch: str = ABSENT
    isa: list = constraint(ABSENT, items={"enum": list(ISA_FEATURES)})
    isa_note: str = ABSENT
    usable_cores: int = ABSENT


@dataclasses.dataclass(frozen=True, kw_only=True)
class Environment(Record):
    WHAT = "environment record"

    cpu: Cpu = ABSENT
    os: str = ABSENT
    python: str = ABSENT
    libraries: dict = ABSENT  # distribution name -> version
    git_commit: str | None = ABSENT
    devices: dict = ABSENT  # runtime name -> that runtime's own facts about the device (its plug-in reads them)
