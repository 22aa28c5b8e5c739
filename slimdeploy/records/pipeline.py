"""``RUN_DIR/run.json``: what `slimdeploy run` was asked to do and which stages have finished."""

from __future__ import annotations

import dataclasses

from slimdeploy.records.base import Record

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageRecord(Record):
    """One finished stage: ``{"done": true, "seconds": 3.44}``."""

    WHAT = "run stage"

    done: bool = False
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord(Record):
    """``config`` is the whole configuration as ``--print-config`` shows it (with nulls);
    ``stages`` maps a stage name (``train``, ``prune:structured``, ...) to its record."""

    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "run state"

    schema_version: int = SCHEMA_VERSION
    config: dict = dataclasses.field(default_factory=dict)
    stages: dict[str, StageRecord] = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)

    def done(self, stage: str) -> bool:
        record = self.stages.get(stage)
        return record is not None and bool(record.done)

    def with_stage(self, stage: str, seconds: float) -> "RunRecord":
        return self.replace(stages={**self.stages, stage: StageRecord(done=True, seconds=round(seconds, 2))})
