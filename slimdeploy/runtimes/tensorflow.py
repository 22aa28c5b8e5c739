"""TensorFlow: the Keras model itself (a ``.keras`` file or a legacy ``.h5``), called through a tf.function
with a fixed input spec. Thread counts are process-wide: the first session of a process sets them."""

from __future__ import annotations

import numpy as np

from slimdeploy.models import count_flops, count_nonzero_params, count_params, dense_widths, load_model
from slimdeploy.quiet import import_tensorflow
from slimdeploy.runtimes.session import Availability, RuntimePlugin, Session, package_availability


def availability() -> Availability:
    return package_availability("tensorflow", ("tensorflow-cpu", "tensorflow"), "pip install tensorflow-cpu")


def _set_threads(tf, threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow already started in this process (a library user's own process, not a
        # bench worker): it keeps its thread pools, and applied_settings() reports them.
        pass


class TensorFlowSession(Session):
    runtime = "tensorflow"

    def __init__(self, artifact, batch, threads, options=None, mode="latency"):
        super().__init__(artifact, batch, threads, options, mode)
        import_tensorflow()
        import tensorflow as tf  # lazy: heavy

        _set_threads(tf, self.threads)
        self._tf = tf
        self.model = load_model(self.artifact, "Keras model")
        dims = list(self.model.input_shape[1:])
        self._shape = (self.batch, *self._static_dims(dims, tuple(dims)))
        self._dtype = np.dtype(tf.as_dtype(self.model.inputs[0].dtype).as_numpy_dtype)
        model = self.model
        # A fixed signature: one trace, no retracing per call.
        self._fn = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec(self._shape, tf.as_dtype(self._dtype))])
        self._x = None

    def set_input(self, array):
        array = self._fitting_input(array)
        self._x = self._tf.constant(array)

    def run(self):
        return self._fn(self._x).numpy()

    def applied_settings(self):
        tf = self._tf
        return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(), "tf_function": True,
                "jit_compile": False}

    def describe_model(self) -> dict:
        model = self.model
        return {"params": count_params(model), "nonzero_params": count_nonzero_params(model), "flops": count_flops(model),
                "nonzero_flops": count_flops(model, nonzero_only=True), "widths": dense_widths(model)}

    def close(self):
        self._fn = self.model = None


SESSION = TensorFlowSession

PLUGIN = RuntimePlugin(
    name="tensorflow", display_name="TensorFlow", short_name="TF",
    suffixes=(".keras", ".h5", ".hdf5"), targets=(), session=SESSION, availability=availability,
    module=__name__,
)
