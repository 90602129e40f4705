"""Static int8 quantization: QDQ graph, per-channel int8 weights, activations calibrated on faces.

Why static QDQ rather than dynamic quantization: onnxruntime runs dynamic int8 convolutions as
ConvInteger, which on x86 was measured ~9x *slower* than fp32 for these EfficientNets (and lost ~14
accuracy points), while a calibrated QDQ graph is fused into QLinearConv kernels (VNNI on recent
CPUs) and ran ~2x faster than fp32 within a fraction of a point.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

CALIBRATION_BATCH = 32


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs benign warnings on the root logger (e.g. 'consider pre-processing')."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def first_conv(path: Path) -> list[str]:
    """The convolution(s) reading the raw network input."""
    graph = onnx.load(str(path)).graph
    inputs = {i.name for i in graph.input}
    return [n.name for n in graph.node if n.op_type == "Conv" and inputs & set(n.input)]


def quantize_static_int8(
    src: Path, dst: Path, calibration: np.ndarray, keep_first_conv: bool = False
) -> None:
    """Write ``dst``: ``src`` with QDQ int8 weights (per channel) and uint8 activations.

    Args:
        src: fp32 ONNX file with one input named ``input``.
        dst: output file.
        calibration: (N, C, S, S) float32 network inputs (prepared faces) for the activation ranges.
        keep_first_conv: leave the convolution on raw pixels in float.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(calibration), CALIBRATION_BATCH))

        def get_next(self) -> dict | None:
            start = next(self.batches, None)
            return None if start is None else {"input": calibration[start : start + CALIBRATION_BATCH]}

    with tempfile.TemporaryDirectory() as tmp, _quiet_root_logger():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # The heavy ops only: the classifier head, the ensemble mean and the softmax stay float,
            # so probabilities keep full resolution (a quantized softmax moves in steps of 1/255).
            op_types_to_quantize=["Conv", "MatMul"],
            nodes_to_exclude=first_conv(pre) if keep_first_conv else [],
        )
