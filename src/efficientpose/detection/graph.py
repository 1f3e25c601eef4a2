"""A TFLite float graph as a PyTorch module, op by op, read with the package's own flatbuffer reader.

Made for MediaPipe's ``pose_detection.tflite`` (fp16 weights, some stored sparse): its ops are PAD, CONV_2D,
DEPTHWISE_CONV_2D, ADD, RESHAPE, DEPTH_TO_SPACE, RESIZE_BILINEAR and CONCATENATION, with DEQUANTIZE/DENSIFY on
constants, which are folded here into float32 weights. Activations are kept NCHW; ops with NHWC meaning
(reshape, concatenation axis, depth-to-space) are rewritten for that layout. The module is built once and
exported to ONNX, so running it never needs torch (see :mod:`efficientpose.detection.runtime`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tflite
import torch
import torch.nn.functional as F
from torch import nn

from efficientpose.errors import WeightsError
from efficientpose.weights.tflite import _DTYPES, _corrupt, _Graph

_OP = tflite.BuiltinOperator
_CONSTANT_OPS = frozenset({_OP.DEQUANTIZE, _OP.DENSIFY})
_ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: None,
    tflite.ActivationFunctionType.RELU: "relu",
    tflite.ActivationFunctionType.RELU6: "relu6",
}


def _options(op: tflite.Operator, cls: type) -> object:
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _densify(values: np.ndarray, sparsity: tflite.SparsityParameters, shape: tuple[int, ...]) -> np.ndarray:
    """TFLite's sparse storage (per dimension DENSE or SPARSE_CSR, in traversal order) -> a dense array.

    Supports the identity traversal order without block maps, which is what the converter writes for
    magnitude-pruned weights; anything else is refused rather than guessed."""
    order = [int(i) for i in _Graph._as_list(sparsity.TraversalOrderAsNumpy())]
    if order != list(range(len(shape))) or sparsity.BlockMapLength():
        raise ValueError("sparse tensor with a block map or a non-identity traversal order")
    # ``positions``: for every stored prefix, its flat dense index so far and its position among stored prefixes.
    flat = np.zeros(1, dtype=np.int64)
    for d, size in enumerate(shape):
        meta = sparsity.DimMetadata(d)
        if meta.Format() == tflite.DimensionType.DENSE:
            if meta.DenseSize() != size:
                raise ValueError(f"dense size {meta.DenseSize()} of dimension {d} is not {size}")
            flat = (flat[:, None] * size + np.arange(size)).reshape(-1)
            continue
        segments = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType())
        indices = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())
        if len(segments) != len(flat) + 1:
            raise ValueError(f"dimension {d}: {len(segments)} segments for {len(flat)} rows")
        counts = np.diff(segments)
        flat = np.repeat(flat, counts) * size + indices[segments[0]:segments[-1]]
    if len(flat) != values.size:
        raise ValueError(f"{values.size} stored values for {len(flat)} sparse positions")
    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    dense[flat] = values.reshape(-1)
    return dense.reshape(shape)


def _index_vector(table: object, kind: int) -> np.ndarray:
    """The Int32/Uint16/Uint8 vector of a sparse dimension as int64."""
    cls = {tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
           tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
           tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector}.get(kind)
    if cls is None or table is None:
        raise ValueError(f"unsupported sparse index vector type {kind}")
    vector = cls()
    vector.Init(table.Bytes, table.Pos)
    return np.asarray(_Graph._as_list(vector.ValuesAsNumpy()), dtype=np.int64)


class _Constants:
    """float32 values of the graph's constant tensors, following DEQUANTIZE and DENSIFY back to a buffer."""

    def __init__(self, g: _Graph) -> None:
        self.g = g

    def stored(self, tensor: int) -> np.ndarray:
        g = self.g
        t = g.graph.Tensors(tensor)
        dtype = _DTYPES.get(t.Type())
        if dtype is None or not 0 <= t.Buffer() < g.n_buffers:
            raise WeightsError(f"{g.path}: constant '{g.name(tensor)}' has type {t.Type()} or no buffer")
        buffer = g.model.Buffers(t.Buffer())
        if buffer.Offset() > 1:
            raw = g.data[buffer.Offset(): buffer.Offset() + buffer.Size()]
        else:
            raw = buffer.DataAsNumpy()
            raw = b"" if isinstance(raw, int) else raw.tobytes()
        values = np.frombuffer(raw, dtype=dtype)
        shape = g.shape(tensor)
        if t.Sparsity() is not None:
            return _densify(values, t.Sparsity(), shape)
        if values.size != int(np.prod(shape, dtype=np.int64)):
            raise WeightsError(f"{g.path}: constant '{g.name(tensor)}' has {values.size} values for {shape}")
        return values.reshape(shape)

    def value(self, tensor: int) -> np.ndarray:
        op = self.g.producer.get(tensor)
        if op is None:
            return self.stored(tensor)
        if self.g.op_code(op) not in _CONSTANT_OPS:
            raise WeightsError(f"{self.g.path}: tensor '{self.g.name(tensor)}' is computed, not a constant")
        value = self.value(self.g.op_inputs[op][0])
        return value.astype(np.float32) if self.g.op_code(op) == _OP.DEQUANTIZE else value


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis; the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFLiteNet(nn.Module):
    """The main subgraph of a float TFLite file as a module: input NCHW float32, output the graph's outputs
    concatenated along the last axis (for the pose detector: (N, 2254, 12 + 1), regressors then score logit)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        try:
            self._build(_Graph(path))
        except WeightsError:
            raise
        except (ValueError, KeyError) as exc:
            raise WeightsError(f"{path}: cannot run this TFLite graph ({exc})") from None
        except Exception as exc:  # flatbuffers raises struct/index errors on truncated files
            raise _corrupt(path, exc) from None

    def _const(self, name: str, value: np.ndarray) -> str:
        self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
        return name

    def _build(self, g: _Graph) -> None:
        consts = _Constants(g)
        inputs = [int(t) for t in g._as_list(g.graph.InputsAsNumpy())]
        self.outputs = [int(t) for t in g._as_list(g.graph.OutputsAsNumpy())]
        if len(inputs) != 1 or len(g.shape(inputs[0])) != 4:
            raise WeightsError(f"{g.path}: expected one NHWC image input, got {[g.shape(t) for t in inputs]}")
        self.input = inputs[0]
        self.input_shape = g.shape(self.input)
        self.rank = {self.input: 4}
        self.steps: list[tuple] = []
        for i, code in enumerate(g.op_code(j) for j in range(len(g.ops))):
            if code in _CONSTANT_OPS:
                continue
            op, ins, out = g.ops[i], g.op_inputs[i], g.op_outputs[i][0]
            self.rank[out] = len(g.shape(out))
            if code in (_OP.CONV_2D, _OP.DEPTHWISE_CONV_2D):
                self.steps.append(self._conv(g, consts, i, op, code, ins, out))
            elif code == _OP.ADD:
                act = _ACTIVATIONS[_options(op, tflite.AddOptions).FusedActivationFunction()]
                self.steps.append(("add", ins[:2], out, act))
            elif code == _OP.PAD:
                pads = consts.value(ins[1]).astype(np.int64)  # NHWC (4, 2)
                self.steps.append(("pad", ins[:1], out, (int(pads[2, 0]), int(pads[2, 1]),
                                                         int(pads[1, 0]), int(pads[1, 1]),
                                                         int(pads[3, 0]), int(pads[3, 1]))))
            elif code == _OP.RESHAPE:
                self.steps.append(("reshape", ins[:1], out, tuple(g.shape(out)[1:])))
            elif code == _OP.DEPTH_TO_SPACE:
                block = _options(op, tflite.DepthToSpaceOptions).BlockSize()
                self.steps.append(("depth_to_space", ins[:1], out, block))
            elif code == _OP.RESIZE_BILINEAR:
                opts = _options(op, tflite.ResizeBilinearOptions)
                if opts.AlignCorners() or not opts.HalfPixelCenters():
                    raise WeightsError(f"{g.path}: RESIZE_BILINEAR without half-pixel centres is not supported")
                self.steps.append(("resize", ins[:1], out, tuple(g.shape(out)[1:3])))
            elif code == _OP.CONCATENATION:
                opts = _options(op, tflite.ConcatenationOptions)
                if _ACTIVATIONS[opts.FusedActivationFunction()] is not None:
                    raise WeightsError(f"{g.path}: fused activation on CONCATENATION is not supported")
                axis = opts.Axis() % self.rank[out]
                if self.rank[out] == 4:
                    axis = (0, 2, 3, 1)[axis]
                self.steps.append(("concat", ins, out, axis))
            else:
                raise WeightsError(f"{g.path}: TFLite op code {code} is not supported")

    def _conv(self, g: _Graph, consts: _Constants, i: int, op: tflite.Operator, code: int, ins: list[int],
              out: int) -> tuple:
        depthwise = code == _OP.DEPTHWISE_CONV_2D
        opts = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
        if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
            raise WeightsError(f"{g.path}: dilated convolutions are not supported")
        act = _ACTIVATIONS.get(opts.FusedActivationFunction(), "unsupported")
        if act == "unsupported":
            raise WeightsError(f"{g.path}: activation {opts.FusedActivationFunction()} is not supported")
        kernel = consts.value(ins[1])
        if depthwise:  # (1, kh, kw, C*M) -> (C*M, 1, kh, kw)
            if opts.DepthMultiplier() != 1:
                raise WeightsError(f"{g.path}: depth multipliers other than 1 are not supported")
            weight = kernel[0].transpose(2, 0, 1)[:, None]
        else:  # (out, kh, kw, in) -> (out, in, kh, kw)
            weight = kernel.transpose(0, 3, 1, 2)
        bias = consts.value(ins[2]) if len(ins) > 2 and ins[2] >= 0 else np.zeros(weight.shape[0], np.float32)
        h, w = g.shape(ins[0])[1:3]
        kh, kw = weight.shape[2:]
        stride = (opts.StrideH(), opts.StrideW())
        if opts.Padding() == tflite.Padding.SAME:
            (top, bottom), (left, right) = _same_padding(h, kh, stride[0]), _same_padding(w, kw, stride[1])
        else:
            top = bottom = left = right = 0
        groups = weight.shape[0] if depthwise else 1
        return ("conv", ins[:1], out, (self._const(f"w{i}", weight), self._const(f"b{i}", bias), stride,
                                       (left, right, top, bottom), groups, act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {self.input: x}
        for kind, ins, out, arg in self.steps:
            a = env[ins[0]]
            if kind == "conv":
                weight, bias, stride, pad, groups, act = arg
                if pad[0] == pad[1] and pad[2] == pad[3]:
                    y = F.conv2d(a, getattr(self, weight), getattr(self, bias), stride, (pad[2], pad[0]), 1, groups)
                else:
                    y = F.conv2d(F.pad(a, pad), getattr(self, weight), getattr(self, bias), stride, 0, 1, groups)
                y = _activate(y, act)
            elif kind == "add":
                y = _activate(a + env[ins[1]], arg)
            elif kind == "pad":
                y = F.pad(a, arg)
            elif kind == "reshape":  # NHWC element order, as the graph means it
                y = (a.permute(0, 2, 3, 1) if a.dim() == 4 else a).reshape(a.shape[0], *arg)
                if y.dim() == 4:
                    y = y.permute(0, 3, 1, 2)
            elif kind == "depth_to_space":  # TF's DCR order: channel = (row * block + col) * C_out + c
                n, c, h, w = a.shape
                y = a.reshape(n, arg, arg, c // (arg * arg), h, w).permute(0, 3, 4, 1, 5, 2)
                y = y.reshape(n, c // (arg * arg), h * arg, w * arg)
            elif kind == "resize":
                y = F.interpolate(a, size=arg, mode="bilinear", align_corners=False)
            else:  # concat
                y = torch.cat([env[t] for t in ins], dim=arg)
            env[out] = y
        results = [env[t] if env[t].dim() != 4 else env[t].permute(0, 2, 3, 1) for t in self.outputs]
        return torch.cat(results, dim=-1) if len(results) > 1 else results[0]


def _activate(x: torch.Tensor, act: str | None) -> torch.Tensor:
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return F.relu6(x)
    return x
