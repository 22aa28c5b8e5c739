"""Import TensorFlow without its C++ start-up lines on stderr.

TensorFlow 2.21 prints "oneDNN custom operations are on..." through absl before its
logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not silence it. The file
descriptor is muted only for the import; Python errors still surface afterwards.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Retracing notices are advice for TF developers; each pruning round builds new
    # models, so they would fill the user's terminal.
    tensorflow.get_logger().setLevel("ERROR")
