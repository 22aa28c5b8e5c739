"""LiteRT (formerly TensorFlow Lite) on the CPU: a ``.tflite`` file run by ``ai_edge_litert``'s
``Interpreter`` with its default XNNPACK delegate, ``num_threads`` the cell's thread count.

The converter writes the input with batch 1 and records the batch it was given in the shape
signature: a dynamic one (-1) is resized to the session's batch; a static one runs only its own
(XNNPACK cannot reshape a graph holding that batch as a constant), so the plugin accepts no reshape.
A timed call is ``invoke()`` and the copy of the output (a view would block the next ``invoke``).
LiteRT's Python API has no op profiler (``PLUGIN.profile_unsupported`` says so).
"""

from __future__ import annotations

import numpy as np

from slimdeploy.quiet import native_stderr_muted
from slimdeploy.runtimes.session import PROFILE_UNSUPPORTED, Availability, RuntimePlugin, Session, package_availability

LIBRARY = "ai_edge_litert"
INSTALL_HINT = "pip install 'slimdeploy[litert]'"


def availability() -> Availability:
    return package_availability(LIBRARY, ("ai-edge-litert",), INSTALL_HINT)


def _interpreter(artifact, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter  # lazy: optional

    with native_stderr_muted():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (C++)
        return Interpreter(model_path=str(artifact), num_threads=threads)


def _signature(detail: dict) -> list[int]:
    """The input's dimensions as converted, -1 where dynamic (older files: its shape)."""
    signature = detail.get("shape_signature")
    return [int(d) for d in (detail["shape"] if signature is None or len(signature) == 0 else signature)]


def _batch_dim(detail: dict) -> int | None:
    dims = _signature(detail)
    return None if not dims or dims[0] < 0 else dims[0]


class LiteRtSession(Session):
    runtime = "litert"

    @classmethod
    def batch_bounds(cls, artifact):
        detail = _single_input(_interpreter(artifact, 1), artifact)
        return _batch_dim(detail), None

    def __init__(self, artifact, batch, threads, options=None, mode="latency"):
        super().__init__(artifact, batch, threads, options, mode)
        self.interpreter = _interpreter(self.artifact, self.threads)
        detail = _single_input(self.interpreter, self.artifact)
        signature = _signature(detail)
        fixed = _batch_dim(detail)
        if fixed is not None and fixed != self.batch:
            raise ValueError(f"{self.artifact} has a static batch size of {fixed}; it cannot run batch {self.batch} "
                             "(export it with --batch dynamic)")
        dims = [None if d < 0 else d for d in signature[1:]]
        self._shape = (self.batch, *self._static_dims(dims, signature))
        self._dtype = np.dtype(detail["dtype"])
        self._input_index = int(detail["index"])
        with native_stderr_muted():  # the delegate's INFO line, printed once when it is applied
            if tuple(int(d) for d in detail["shape"]) != self._shape:
                self.interpreter.resize_tensor_input(self._input_index, list(self._shape))
            self.interpreter.allocate_tensors()
        outputs = self.interpreter.get_output_details()
        self._output_index = int(outputs[0]["index"])

    def set_input(self, array):
        array = self._fitting_input(array)
        self.interpreter.set_tensor(self._input_index, array)

    def run(self):
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output_index)

    def applied_settings(self):
        return {"num_threads": self.threads, "xnnpack": self._delegated(), "resized_to": list(self._shape)}

    def _delegated(self) -> bool | None:
        """Whether a delegate (XNNPACK) took over nodes of the graph; None where this LiteRT does not say."""
        try:
            return any(op.get("op_name") == "DELEGATE" for op in self.interpreter._get_ops_details())
        except Exception:  # a private helper: absent or changed in another version
            return None

    def close(self):
        self.interpreter = None


def _single_input(interpreter, artifact) -> dict:
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ValueError(f"{artifact} has {len(inputs)} inputs; slimdeploy benchmarks single-input models")
    return inputs[0]


SESSION = LiteRtSession

PLUGIN = RuntimePlugin(
    name="litert", display_name="LiteRT", short_name="LRT",
    suffixes=(".tflite",), targets=("litert",), session=SESSION, availability=availability,
    accepts_reshape=False,  # a dynamic batch is resized per session; a static one runs only its own
    library=f"{LIBRARY}.interpreter",
    profile_unsupported=f"{PROFILE_UNSUPPORTED}: LiteRT's Python API (ai_edge_litert.interpreter) has no per-op profiler",
    module=__name__,
)
