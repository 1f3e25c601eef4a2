"""Read the authors' fp16 ``.tflite`` files into BN-folded float32 conv weights in Keras layouts, without TensorFlow.

Each CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV op is returned under its Keras layer name, which the
converter left in the tensor names:

* the bias constant is ``<layer>/convolution_bias`` or ``<layer>/depthwise_bias`` -> drop the last component;
* else the weight constant: ``<layer>/kernel``, ``<layer>/depthwise_kernel`` (Keras 2.2) or
  ``<layer>/convolution/ReadVariableOp``, ``<layer>/depthwise/ReadVariableOp`` (Keras 2.3) -> drop that suffix;
* else (the three deconvs have no bias and share one de-duplicated kernel) the op's output tensor,
  ``<layer>/conv2d_transpose`` or ``<layer>/BiasAdd`` -> drop the last component.

A name source is used only if that tensor belongs to this op alone, since identical constants are de-duplicated.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from efficientpose.errors import WeightsError

_CONV_OPS = frozenset(
    {tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D, tflite.BuiltinOperator.TRANSPOSE_CONV}
)
_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
}
# Suffixes the converter appends to a Keras layer name for the weight constant (longest first).
_WEIGHT_SUFFIXES = (
    "/convolution/ReadVariableOp",
    "/depthwise/ReadVariableOp",
    "/conv2d_transpose/ReadVariableOp_transposed",
    "/kernel/read_transposed",
    "/depthwise_kernel",
    "/kernel",
)


class _Graph:
    """The main subgraph of a TFLite flatbuffer with just the look-ups the reader needs."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise WeightsError(f"{path}: weight file not found")
        if not path.is_file():
            raise WeightsError(f"{path}: is not a regular file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WeightsError(f"{path}: cannot read file ({exc.strerror or exc})") from None
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise WeightsError(f"{path}: not a TFLite file (no 'TFL3' flatbuffer identifier)")
        self.path = path
        self.data = data
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() < 1:
            raise WeightsError(f"{path}: TFLite file has no subgraph")
        self.graph = self.model.Subgraphs(0)
        self.codes = [self._builtin_code(i) for i in range(self._count(self.model.OperatorCodesLength()))]
        self.ops = [self.graph.Operators(i) for i in range(self._count(self.graph.OperatorsLength()))]
        self.op_inputs = [[int(j) for j in self._as_list(op.InputsAsNumpy())] for op in self.ops]
        self.op_outputs = [[int(j) for j in self._as_list(op.OutputsAsNumpy())] for op in self.ops]
        self.producer = {t: i for i, outs in enumerate(self.op_outputs) for t in outs}
        n_tensors = self._count(self.graph.TensorsLength())
        if any(not -1 <= t < n_tensors for ts in self.op_inputs + self.op_outputs for t in ts):
            raise WeightsError(f"{path}: corrupt TFLite file (an op refers to a tensor that does not exist)")
        self.n_buffers = self._count(self.model.BuffersLength())

    def _count(self, n: int) -> int:
        """A vector length, rejected if it cannot fit in the file (corrupt lengths would loop for ages)."""
        if n < 0 or 4 * n > len(self.data):
            raise WeightsError(
                f"{self.path}: corrupt TFLite file (vector of {n} entries in a {len(self.data)}-byte file)"
            )
        return n

    @staticmethod
    def _as_list(values: Any) -> list[int]:
        """flatbuffers returns 0 instead of an empty array for an absent vector."""
        return [] if isinstance(values, int) else list(values)

    def _builtin_code(self, index: int) -> int:
        code = self.model.OperatorCodes(index)
        return max(code.BuiltinCode(), code.DeprecatedBuiltinCode())

    def op_code(self, op: int) -> int:
        return self.codes[self.ops[op].OpcodeIndex()]

    def name(self, tensor: int) -> str:
        return self.graph.Tensors(tensor).Name().decode("utf-8")

    def shape(self, tensor: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self._as_list(self.graph.Tensors(tensor).ShapeAsNumpy()))

    def source(self, tensor: int) -> int:
        """The constant behind ``tensor``: itself, or the input of the DEQUANTIZE op producing it."""
        op = self.producer.get(tensor)
        if op is not None and self.op_code(op) == tflite.BuiltinOperator.DEQUANTIZE:
            return self.op_inputs[op][0]
        return tensor

    def constant(self, tensor: int) -> np.ndarray:
        """float32 value of a constant tensor (following a DEQUANTIZE back to its fp16 buffer)."""
        src = self.source(tensor)
        t = self.graph.Tensors(src)
        if src in self.producer:
            raise WeightsError(f"{self.path}: tensor '{self.name(tensor)}' is computed, not a stored constant")
        dtype = _DTYPES.get(t.Type())
        if dtype is None:
            raise WeightsError(f"{self.path}: tensor '{self.name(src)}' has unsupported type code {t.Type()}")
        if not 0 <= t.Buffer() < self.n_buffers:
            raise WeightsError(f"{self.path}: tensor '{self.name(src)}' refers to missing buffer {t.Buffer()}")
        buffer = self.model.Buffers(t.Buffer())
        if buffer.Offset() > 1:  # large models keep the data after the flatbuffer
            raw = self.data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            raw = buffer.DataAsNumpy()
            raw = b"" if isinstance(raw, int) else raw.tobytes()
        shape = self.shape(src)
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if len(raw) != expected:
            raise WeightsError(
                f"{self.path}: tensor '{self.name(src)}' has {len(raw)} data bytes, expected {expected} for {shape}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float32)


def _strip(name: str, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _layer_name(g: _Graph, op: int, weight: int, bias: int | None, users: dict[int, int]) -> str:
    """Keras layer name of one conv-type op, from a name source that is not shared with another op."""
    if bias is not None and users[g.source(bias)] == 1:
        name = g.name(g.source(bias))
        if "/" in name:
            return name.rsplit("/", 1)[0]
    if users[g.source(weight)] == 1:
        name = _strip(g.name(g.source(weight)), _WEIGHT_SUFFIXES)
        if name:
            return name
    out = g.name(g.op_outputs[op][0])
    if "/" in out:
        return out.rsplit("/", 1)[0]
    raise WeightsError(f"{g.path}: cannot derive a Keras layer name for the op writing '{out}'")


def _read(path: Path) -> dict[str, dict[str, np.ndarray]]:
    g = _Graph(path)
    convs = [i for i in range(len(g.ops)) if g.op_code(i) in _CONV_OPS]
    # For TRANSPOSE_CONV the inputs are (output_shape, weights, input[, bias]); otherwise (input, weights[, bias]).
    parts: list[tuple[int, int, int, int | None]] = []
    for i in convs:
        ins = g.op_inputs[i]
        if g.op_code(i) == tflite.BuiltinOperator.TRANSPOSE_CONV:
            x, w, b = ins[2], ins[1], (ins[3] if len(ins) > 3 and ins[3] >= 0 else None)
        else:
            x, w, b = ins[0], ins[1], (ins[2] if len(ins) > 2 and ins[2] >= 0 else None)
        parts.append((i, x, w, b))
    users: dict[int, int] = {}
    for _, _, w, b in parts:
        for t in (w, b):
            if t is not None:
                users[g.source(t)] = users.get(g.source(t), 0) + 1

    layers: dict[str, dict[str, np.ndarray]] = {}
    for op, x, w, b in parts:
        code = g.op_code(op)
        name = _layer_name(g, op, w, b, users)
        if name in layers:
            raise WeightsError(f"{path}: two conv ops map to the same Keras layer '{name}'")
        kernel = g.constant(w)
        if kernel.ndim != 4:
            raise WeightsError(f"{path}: weight of '{name}' has shape {kernel.shape}, expected 4 dimensions")
        if code == tflite.BuiltinOperator.CONV_2D:  # (out, kh, kw, in) -> (kh, kw, in, out)
            entry = {"kernel": np.ascontiguousarray(kernel.transpose(1, 2, 3, 0))}
            out_ch = kernel.shape[0]
        elif code == tflite.BuiltinOperator.DEPTHWISE_CONV_2D:  # (1, kh, kw, C*M) -> (kh, kw, C, M)
            in_ch = g.shape(x)[-1]
            out_ch = kernel.shape[3]
            if kernel.shape[0] != 1 or in_ch <= 0 or out_ch % in_ch:
                raise WeightsError(f"{path}: depthwise weight of '{name}' has shape {kernel.shape} for {in_ch} inputs")
            entry = {"depthwise_kernel": np.ascontiguousarray(kernel[0].reshape(*kernel.shape[1:3], in_ch, -1))}
        else:  # TRANSPOSE_CONV: (out, kh, kw, in) -> (kh, kw, out, in)
            entry = {"kernel": np.ascontiguousarray(kernel.transpose(1, 2, 0, 3))}
            out_ch = kernel.shape[0]
        bias = g.constant(b) if b is not None else np.zeros(out_ch, dtype=np.float32)
        if bias.shape != (out_ch,):
            raise WeightsError(f"{path}: bias of '{name}' has shape {bias.shape}, expected ({out_ch},)")
        entry["bias"] = bias
        layers[name] = entry
    if not layers:
        raise WeightsError(f"{path}: TFLite file contains no convolution ops")
    return layers


def _corrupt(path: Path, exc: Exception) -> WeightsError:
    """One-line error for the struct/index/value errors flatbuffers raises when reading past a truncated file."""
    if isinstance(exc, (struct.error, IndexError)):
        size = path.stat().st_size if path.is_file() else 0
        return WeightsError(f"{path}: truncated or corrupt TFLite file (data points past the end of its {size} bytes)")
    reason = str(exc).splitlines()[0] if str(exc) else ""
    return WeightsError(f"{path}: corrupt TFLite file ({type(exc).__name__}{': ' + reason if reason else ''})")


def read_tflite(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Keras layer name of each CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV -> {kind: float32 array in Keras layout}.

    Kinds: "kernel" (kh, kw, in, out) for CONV_2D, "depthwise_kernel" (kh, kw, C, 1) for DEPTHWISE_CONV_2D,
    "kernel" (kh, kw, out, in) for TRANSPOSE_CONV, and always "bias" (out,) — zeros when the op has no bias
    input (the deconvs), which is exactly what the op computes. Batch norm is already folded into both.
    """
    path = Path(path)
    try:
        return _read(path)
    except WeightsError:
        raise
    except Exception as exc:  # flatbuffers reads past the end of truncated files with struct/index/value errors
        raise _corrupt(path, exc) from None


def tflite_io(path: str | Path) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Input and output tensors of the main subgraph as {"inputs"/"outputs": [(name, shape), ...]}, in order."""
    path = Path(path)
    try:
        g = _Graph(path)
        io = {}
        for key, indices in (("inputs", g.graph.InputsAsNumpy()), ("outputs", g.graph.OutputsAsNumpy())):
            io[key] = [(g.name(int(t)), g.shape(int(t))) for t in g._as_list(indices)]
        return io
    except WeightsError:
        raise
    except Exception as exc:
        raise _corrupt(path, exc) from None
