# mypy: disable-error-code="import-not-found,import-untyped,misc"
"""Quantize the exported model to int8: run by `companion models export --quantize int8` in the
throwaway venv (which has `onnx`; the service's environment does not need it).

onnxruntime's dynamic quantization: the weights of every MatMul become int8, per output channel,
once; activations are quantized at run time per batch. The word-embedding table stays float (it
is a lookup, not a product), which kept the vectors closest to fp32's among the variants measured
(on this project's docs: cosine to fp32 min 0.986, mean 0.993; quantizing every operator gave min
0.980; per-tensor weights 0.859; `reduce_range` 0.564). Usage: `python _onnx_quantize.py IN OUT`.
"""

from __future__ import annotations

import sys


def quantize(source: str, target: str) -> None:
    """Write the int8 model quantized from `source` to `target`."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # it advises pre-processing, meant for CNNs
    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )


if __name__ == "__main__":
    quantize(sys.argv[1], sys.argv[2])
