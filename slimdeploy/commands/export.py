"""`slimdeploy export`: deployable artifacts, each verified against the Keras model it came from."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from slimdeploy.commands._shared import add_run_data_arguments, print_json
from slimdeploy.export.api import ExportFailed, export_source
from slimdeploy.export.settings import ExportSettings, target_choices
from slimdeploy.parsers import positive_float
from slimdeploy.progress import console, progress_bar
from slimdeploy.records.export import ExportManifest
from slimdeploy.tasks import DEFAULT_TASK

FIELD_OPTIONS = ("precisions", "calibration_size", "calibration_method", "opset", "batch",
                 "openvino_inference_precision", "profile_batches", "trt_opt_batch", "sparse_weights")


def add_parser(subparsers, common):
    choices = target_choices()  # the export registry's targets (plug-ins too) and "all"
    parser = subparsers.add_parser(
        "export",
        parents=[common],
        help="export models to ONNX, OpenVINO IR, TensorRT and LiteRT, each verified against Keras",
        description=(
            "Export SOURCE — a .keras file, or a run directory (its dense model and every ticket: "
            "RUN_DIR/<mode>/ticket.keras) — to ONNX (tf2onnx), OpenVINO IR (.xml + .bin), TensorRT "
            "engines and LiteRT (.tflite, TensorFlow's converter); with --precision fp32,int8 (or all) also a post-training static INT8 variant of "
            "each model (<model>-int8: ONNX Runtime QDQ quantization, NNCF for OpenVINO, calibrated on "
            "the first --calibration-size validation images; `slimdeploy run` makes them by default). Every artifact is loaded in its own runtime and "
            "checked against Keras on the validation and test images: fp32 must match within 1e-4 and "
            f"agree on >= 99.9% of {DEFAULT_TASK.agreement_items}; fp16/bf16 within their declared tolerance and >= 99%; "
            f"INT8 must keep test {DEFAULT_TASK.metric_label} within "
            f"{DEFAULT_TASK.points(DEFAULT_TASK.int8_max_drop):g} point of Keras's and agree on "
            f">= {DEFAULT_TASK.int8_min_agreement:.0%} of {DEFAULT_TASK.agreement_items}. "
            "Writes DIR/export.json. "
            "An artifact that fails is kept only as NAME.failed, marked valid: false, and the exit "
            "status is 1."
        ),
        epilog=(
            "TensorRT needs the tensorrt package (pip install 'slimdeploy[tensorrt]') and an NVIDIA GPU; "
            "where they are missing, --target tensorrt says what is missing and --target all skips it "
            "and records why. LiteRT needs ai-edge-litert (pip install 'slimdeploy[litert]'), likewise. Exit status: 0 all verified, 1 an artifact failed verification, 2 bad input."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="a .keras file or a run directory (from `slimdeploy train`/`prune`)")
    parser.add_argument("--target", action="append", choices=choices, metavar="{" + ",".join(choices) + "}",
                        help="what to export; repeat for several (default: all — every target this machine can build)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: RUN_DIR/exports, or exports/ beside the .keras file)")
    ExportSettings.add_arguments(parser, only=FIELD_OPTIONS)
    add_run_data_arguments(parser, "verification")
    parser.add_argument("--scale", type=positive_float,
                        help="lone model file: divide the verification inputs by this number (default: IDX Fashion-MNIST "
                             "pixels /255, an .npz unchanged); a run directory uses the scaling it was trained with")
    ExportSettings.add_arguments(parser, only=("verify_limit",))
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--force", action="store_true", help="replace an existing export in DIR")
    state.add_argument("--resume", action="store_true",
                        help="continue an interrupted export: artifacts already verified (and unchanged since) are kept, "
                             "the rest exported; a finished export is shown as it is")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    parser.add_argument("--json", action="store_true", help="print export.json to stdout")
    return parser


def run(args) -> int:
    # --target repeats (append), so it is read here; every other option is a field's own.
    settings = ExportSettings.from_args(args, ExportSettings(targets=args.target) if args.target else None)
    try:
        with progress_bar(not args.quiet) as progress:
            manifest = export_source(args.source, settings, args.out, force=args.force, resume=args.resume,
                                     progress=progress, data=args.data, data_override=args.data_override,
                                     scale=args.scale,
                                     on_notice=lambda text: console.print(f"[yellow]notice[/yellow] {escape(text)}"))
    except ExportFailed as exc:
        _report(exc.manifest, args)
        raise
    _report(manifest, args)
    return 0


def _report(manifest: dict, args) -> None:
    if args.json:
        print_json(manifest)
    if args.quiet:
        return
    record = ExportManifest.from_json(manifest)
    console.print(summary_table(record))
    for a in record.failed():
        console.print(f"[red]failed[/red] {escape(a.model)} → {a.target}: {escape(a.error or 'unknown error')}")
    for skip in record.skipped or []:
        what = f"{skip.target} {skip.precision}" if skip.precision else skip.target
        console.print(f"[yellow]skipped[/yellow] {what}: {escape(skip.reason)}")


def summary_table(manifest: ExportManifest) -> Table:
    """One row per artifact; sizes in MB; the task's test score in the artifact's runtime beside Keras's."""
    precisions = manifest.precisions
    table = Table(title=f"{len(manifest.artifacts)} artifacts: {', '.join(map(str, precisions))}",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for column in ("model", "target", "math", "MB", "gzip", "max|Δ|", "agree", DEFAULT_TASK.metric_short, "Keras", "ok"):
        table.add_column(column, justify="left" if column in ("model", "target", "math", "ok") else "right", no_wrap=True)
    for a in manifest.artifacts:
        table.add_row(a.model, a.target, a.inference_precision or "—", _mb(a.bytes), _mb(a.gzip_bytes),
                      _shown(a.max_abs_diff, ".0e"), _shown(a.top1_agreement, ".2%"), _shown(a.test_accuracy, ".4f"),
                      _shown(a.keras_test_accuracy, ".4f"), "[green]yes[/green]" if a.valid else "[red]NO[/red]")
    return table


def _shown(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _mb(n) -> str:
    return "—" if n is None else f"{n / 1e6:.2f}"
