"""The measuring loop, run inside a worker: warm-up, then interleaved timed blocks.

The models of a group take turns in rounds, one block each (``block_warmup`` untimed calls, then
at least ``block_calls`` timed calls and ``block_time`` seconds), so machine drift lands on all of
them alike, until each has ``min_iters`` calls and ``min_time`` seconds, or ``max_iters`` calls.
Every call is timed alone (``perf_counter_ns``); every latency and block boundary is kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from slimdeploy.records.base import Record


@dataclass(frozen=True, kw_only=True)
class MeasureParams(Record):
    """The part of ``BenchSettings`` a worker measures with; the defaults live there."""

    min_iters: int
    min_time: float
    max_iters: int
    warmup_iters: int
    warmup_time: float
    block_calls: int
    block_time: float
    block_warmup: int
    instances: int
    mode: str

    @classmethod
    def from_settings(cls, settings) -> MeasureParams:
        """The cell's budget (calls, seconds, cap) shared among its ``settings.processes`` workers."""
        share = settings.processes
        return cls(min_iters=math.ceil(settings.min_iters / share), min_time=settings.min_time / share,
                   max_iters=math.ceil(settings.max_iters / share), warmup_iters=settings.warmup_iters,
                   warmup_time=settings.warmup_time, block_calls=settings.block_calls, block_time=settings.block_time,
                   block_warmup=settings.block_warmup, instances=settings.instances, mode=settings.mode)


@dataclass
class Measurement:
    samples_ns: list = field(default_factory=list)
    engine_ms: list = field(default_factory=list)
    timed_ns: int = 0
    parallelism: int = 1
    # Samples per block, in order: block k of every model ran in round k, side by side.
    blocks: list = field(default_factory=list)

    def done(self, params: MeasureParams) -> bool:
        if params.max_iters and len(self.samples_ns) >= params.max_iters:
            return True
        return len(self.samples_ns) >= params.min_iters and self.timed_ns >= params.min_time * 1e9


def _step(session, mode: str):
    return session.run_parallel if mode == "throughput" else session.run


def warm_up(session, params: MeasureParams) -> None:
    step = _step(session, params.mode)
    deadline = time.perf_counter() + params.warmup_time
    calls = 0
    while calls < params.warmup_iters or time.perf_counter() < deadline:
        step()
        calls += 1


def run_block(session, measurement: Measurement, params: MeasureParams) -> None:
    step = _step(session, params.mode)
    engine = session.engine_latency_ms if session.engine_latency_ms() is not None else None
    # Throughput mode: one step runs ``parallelism`` batches; a sample is the time per batch.
    per = session.parallelism if params.mode == "throughput" else 1
    measurement.parallelism = per
    samples, engine_ms = measurement.samples_ns, measurement.engine_ms
    cap = params.max_iters or None
    min_ns = params.block_time * 1e9
    clock = time.perf_counter_ns
    # The first calls after another model ran refill caches and wake threads: untimed.
    for _ in range(params.block_warmup):
        step()
    spent = calls = 0
    first = len(samples)
    while (calls < params.block_calls or spent < min_ns) and (cap is None or len(samples) < cap):
        start = clock()
        step()
        elapsed = clock() - start
        samples.append(elapsed / per if per > 1 else elapsed)
        spent += elapsed
        calls += 1
        if engine is not None:
            engine_ms.append(engine())
    measurement.timed_ns += spent
    if len(samples) > first:
        measurement.blocks.append(len(samples) - first)


def measure_interleaved(sessions: dict, params: MeasureParams, on_round=None) -> dict:
    """Measure every model in turn until each is done; returns name -> Measurement. ``sessions``: model
    name -> its open sessions (input set), baseline first. Round k uses instance k mod n of each model
    (identical sessions differ by several percent at batch 1: memory layout); the order of the models
    turns from round to round, so no model always follows the same other model."""
    pools = {name: (s if isinstance(s, (list, tuple)) else [s]) for name, s in sessions.items()}
    results = {name: Measurement() for name in pools}
    rounds = 0
    while True:
        pending = [name for name in pools if not results[name].done(params)]
        if not pending:
            return results
        shift = rounds % len(pending)
        for name in pending[shift:] + pending[:shift]:
            pool = pools[name]
            run_block(pool[rounds % len(pool)], results[name], params)
        rounds += 1
        if on_round is not None:
            on_round(rounds, results)


class AloneRun(NamedTuple):  # one model measured alone (``measure_alone``), in ms
    wall_median_ms: float
    median_ms: float  # the runtime's own (engine) latency where it times calls, else the wall clock's
    min_ms: float
    engine: bool


def measure_alone(session, seconds: float, mode: str = "latency") -> AloneRun:
    """One model alone for ``seconds``, as benchmark_app runs it."""
    step = _step(session, mode)
    engine = session.engine_latency_ms if session.engine_latency_ms() is not None else None
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    wall, engine_ms = [], []
    while not wall or clock() < deadline:
        start = clock()
        step()
        wall.append(clock() - start)
        if engine is not None:
            engine_ms.append(engine())
    ours = np.asarray(engine_ms) if engine_ms else np.asarray(wall) / 1e6
    return AloneRun(float(np.median(wall)) / 1e6, float(np.median(ours)), float(ours.min()), bool(engine_ms))
