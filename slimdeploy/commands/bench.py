"""`slimdeploy bench`: dense vs pruned latency across runtimes, with verdicts."""

from __future__ import annotations

import argparse

from slimdeploy.commands._shared import int_list, name_list, non_negative_float, non_negative_int, positive_int, print_json


def number_pair(text: str) -> list[float]:
    """``LOW,HIGH`` as two numbers (integers stay int); their order is checked by BenchSettings."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [int(part) if part.lstrip("+-").isdigit() else float(part) for part in parts]
    except ValueError:
        values = None
    if values is None or len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {text!r}")
    return values


def add_parser(subparsers, common):
    parser = subparsers.add_parser(
        "bench",
        parents=[common],
        help="benchmark dense vs pruned models on TensorFlow, ONNX Runtime, OpenVINO, TensorRT",
        description=(
            "Measure each model on each runtime at each batch size, each runtime in its own process "
            "with its thread count set through the runtime's own options. Per cell: warm-up, then at "
            "least --min-iters calls and --min-time seconds, models interleaved in blocks so machine "
            "drift hits all alike; every raw latency is kept. Each model is compared with the baseline "
            "model: speedup of medians with a bootstrap 95% interval, the FLOP ratio it could reach, "
            "and a verdict ('faster' only when the whole interval is above 1.05). Writes bench.json "
            "(schema: slimdeploy/schemas/bench.schema.json) and prints a verdict table."
        ),
        epilog=(
            "SOURCE is a run directory (RUN_DIR/exports/export.json and its Keras models) or artifact files "
            "(.onnx, .xml, .keras, .engine; the model's name is the file stem). "
            "Example: slimdeploy bench runs/fashion_mlp --batch 1,64,256 --crosscheck"
        ),
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="run directory or artifact files")
    parser.add_argument("--runtime", type=name_list, metavar="LIST",
                        help="comma-separated runtimes (default: tensorflow,onnxruntime,openvino,tensorrt; "
                             "unavailable ones are listed with the reason)")
    parser.add_argument("--batch", type=int_list, metavar="LIST", help="batch sizes (default: 1,64,256)")
    parser.add_argument("--threads", type=int_list, metavar="LIST", help="thread counts per runtime (default: 1)")
    parser.add_argument("--mode", choices=("latency", "throughput"),
                        help="latency: one request at a time (default); throughput: OpenVINO THROUGHPUT hint "
                             "with an async request queue (other runtimes run their synchronous loop)")
    parser.add_argument("--min-iters", type=positive_int, help="at least this many timed calls per cell, over all --processes (default: 200)")
    parser.add_argument("--min-time", type=non_negative_float, help="and at least this many seconds per cell, over all --processes (default: 2)")
    parser.add_argument("--max-iters", type=non_negative_int,
                        help="stop a cell at this many calls even before --min-time (default: 20000; 0: no cap)")
    parser.add_argument("--warmup", type=non_negative_int, help="warm-up calls per cell before timing (default: 20)")
    parser.add_argument("--instances", type=positive_int,
                        help="sessions opened per model and rotated per round, so one session's memory-layout "
                             "luck (several %% at batch 1) is not taken for a model's speed (default: 4)")
    parser.add_argument("--processes", type=positive_int,
                        help="worker processes per runtime, each measuring its share of --min-iters and --min-time; "
                             "the verdict's interval resamples them, so what one process fixes (memory layout) "
                             "is not taken for a model's speed (default: 2)")
    parser.add_argument("--baseline-model", help="the model the others are compared with (default: dense, else the first SOURCE given)")
    parser.add_argument("--models", type=name_list, metavar="LIST", help="only these models (default: all found)")
    parser.add_argument("--input-shape", type=int_list, metavar="DIMS",
                        help="input dimensions without the batch, e.g. 28,28 (default: the run's recipe or the artifacts)")
    parser.add_argument("--input-range", type=number_pair, metavar="LOW,HIGH",
                        help="value range of the generated inputs: integer inputs get ids in [LOW, HIGH), floats "
                             "uniform values in it (default: read from the model or its export, e.g. an embedding's "
                             "size for token ids; else [0, 1) for floats, [0, 128) for integers)")
    parser.add_argument("--ort-opt", choices=("disabled", "basic", "extended", "all"),
                        help="ONNX Runtime graph optimization level (default: all)")
    parser.add_argument("--precision", choices=("f32", "bf16", "f16"),
                        help="OpenVINO inference precision, set explicitly and recorded (default: f32)")
    parser.add_argument("--crosscheck", action="store_true",
                        help="also run OpenVINO's benchmark_app on each OpenVINO cell and record its median")
    parser.add_argument("--crosscheck-time", type=non_negative_float, help="whole seconds per run: slimdeploy and benchmark_app alternate, 5 to 10 runs each per cell (default: 1)")
    parser.add_argument("--seed", type=non_negative_int, help="seed for the input data and the bootstrap (default: 0)")
    parser.add_argument("--out", help="results file (default: RUN_DIR/bench.json, or ./bench.json for artifact files)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing results file")
    parser.add_argument("--resume", action="store_true",
                        help="keep the finished cells of an existing results file and measure the rest")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    parser.add_argument("--json", action="store_true", help="print the results JSON to stdout")
    return parser


def settings_from_args(args):
    import dataclasses

    from slimdeploy.bench.settings import BenchSettings

    changes = {
        "runtimes": tuple(args.runtime) if args.runtime else None,
        "batches": tuple(args.batch) if args.batch else None,
        "threads": tuple(args.threads) if args.threads else None,
        "mode": args.mode,
        "min_iters": args.min_iters,
        "min_time": args.min_time,
        "max_iters": args.max_iters,
        "warmup_iters": args.warmup,
        "instances": args.instances,
        "processes": args.processes,
        "baseline_model": args.baseline_model,
        "models": tuple(args.models) if args.models else None,
        "input_shape": tuple(args.input_shape) if args.input_shape else None,
        "input_range": tuple(args.input_range) if args.input_range else None,
        "ort_graph_optimization": args.ort_opt,
        "openvino_precision": args.precision,
        "crosscheck": True if args.crosscheck else None,
        "crosscheck_time": args.crosscheck_time,
        "seed": args.seed,
    }
    settings = dataclasses.replace(BenchSettings(), **{k: v for k, v in changes.items() if v is not None})
    if args.max_iters is None and settings.max_iters and settings.max_iters < settings.min_iters:
        settings = dataclasses.replace(settings, max_iters=settings.min_iters)
    return settings.validated()


def run(args) -> int:
    from slimdeploy.bench.api import run_bench
    from slimdeploy.bench.table import latency_table, problem_lines, verdict_table
    from slimdeploy.progress import console, progress_bar

    if args.force and args.resume:
        from slimdeploy.errors import UserError

        raise UserError("--force and --resume contradict each other: --force starts over, --resume continues")
    settings = settings_from_args(args)
    with progress_bar(not args.quiet) as progress:
        results = run_bench(args.sources, settings, args.out, force=args.force, resume=args.resume, progress=progress)
    if args.json:
        print_json(results)
    if not args.quiet:
        for note in results.get("notes", []):
            console.print(f"note: {note}")
        if results["comparisons"]:
            console.print(verdict_table(results, console.width))
        else:  # one model: nothing to compare, its latencies still answer
            console.print(latency_table(results))
        for line in problem_lines(results):
            console.print(line, markup=False)
        errors = sum(1 for c in results["cells"] if c["status"] == "error")
        ok = sum(1 for c in results["cells"] if c["status"] == "ok")
        console.print(f"{ok} cells measured, {errors} errors, {len(results['comparisons'])} comparisons, "
                      f"{results['wall_seconds']:.0f} s")
    if not any(c["status"] == "ok" for c in results["cells"]):
        raise nothing_measured(results)
    return 0


def nothing_measured(results: dict):
    """The one-line error when no cell was measured: a runtime missing here is for the user to
    fix (exit 2); cells that failed are a failure of the work (exit 1). bench.json keeps why."""
    from slimdeploy.errors import UserError, WorkError

    cells = results["cells"]
    failed = [c for c in cells if c["status"] == "error"]
    if not failed:
        reasons = {c["runtime"]: c.get("error") or "unavailable" for c in cells if c["status"] == "unavailable"}
        detail = "; ".join(f"{runtime}: {reason}" for runtime, reason in reasons.items())
        return UserError(f"nothing could be measured, no requested runtime is available here ({detail})")
    first = failed[0]
    return WorkError(f"no cell was measured: {len(failed)} of {len(cells)} cells failed; first {first['id']}: {first.get('error')}")
