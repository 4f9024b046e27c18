"""Keep TensorFlow quiet and modest: no log spam, no all-cores thread pools, no GPU grab.

Call `quiet_tensorflow()` before importing tensorflow anywhere in this package.
Thread counts are set only once (TF refuses changes after its runtime starts).
"""

from __future__ import annotations

import logging
import os

DEFAULT_TF_THREADS = 2  # intra- and inter-op threads: the reader is I/O bound, workers run in parallel
_configured = False


def quiet_tensorflow(threads: int | None = None) -> None:
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF prints its oneDNN notice twice through absl, before any log level applies; oneDNN speeds up math
    # ops, and TF here only parses records and decodes images.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if _configured:
        return
    import tensorflow as tf

    for name in ("tensorflow", "absl"):  # absl: TFDS' own deprecation chatter on every read
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        tf.config.set_visible_devices([], "GPU")  # decoding is CPU work; leave the GPU to the models
    except (RuntimeError, ValueError):
        pass  # runtime already initialised by the caller: keep its settings
    n = threads or DEFAULT_TF_THREADS
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        pass
    _configured = True
