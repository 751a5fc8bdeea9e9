"""ONNX Runtime session options for the node's two CPU sessions (detector, fused graph).

Both run one after the other on the same cores. With spinning, a session's threads busy-wait
for the next operator instead of sleeping: on small cores and virtual machines a wake-up costs
tens of microseconds per operator, which adds up over a detector's few hundred operators.
Spinning is stopped as soon as a run ends (``session.force_spinning_stop``), so busy threads of
one session never take the CPU from the other, or from the Python work of the frame.
"""

from __future__ import annotations


def session_options(threads: int = 0, spinning: bool = False, optimize: bool = False):
    """``onnxruntime.SessionOptions``: ``threads`` intra-op threads (0: ONNX Runtime's choice),
    ``spinning`` within a run only, ``optimize``: every graph optimisation (ORT_ENABLE_ALL)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if spinning:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options
