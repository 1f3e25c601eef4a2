"""Parameter and FLOP counts in the EfficientPose paper's conventions (architecture.md §8), for any nn.Module.

Parameters ("paper"): every stored tensor of the state dict, i.e. weights, biases, batch-norm running mean/var and
the fixed bilinear transposed convs, but not ``num_batches_tracked`` and not the two intermediate-supervision heads.

FLOPs: a forward pass at batch 1 is traced with hooks, so whatever runs is counted, each call again:

* 2 x multiply-adds of every Conv2d (dense, depthwise, SE 1x1), ConvTranspose2d and Linear; biases, batch norm
  (foldable), pooling, concatenation and residual adds cost nothing;
* elementwise multiplies per output element: Swish/SiLU 1, E-swish 2 (sigmoid product and beta), PReLU 1; ReLU,
  ReLU6 and sigmoid 0; SqueezeExcite 2 per element of its input (spatial mean + rescale).

This reproduces the paper's numbers within 0.1 % (architecture.md §8.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import torch
from torch import nn

from efficientpose.models.layers import ESwish, SqueezeExcite, Swish

SIDE_HEADS: tuple[str, ...] = ("pafs_head", "confs1_head")
"""Submodule names of EfficientPose's intermediate-supervision heads, left out of the paper's counts."""

# Elementwise multiplies per element of the module's output (or, for SE, of its input: same shape).
ELEMENTWISE_COST: dict[type[nn.Module], int] = {
    Swish: 1,
    nn.SiLU: 1,
    ESwish: 2,
    nn.PReLU: 1,
    SqueezeExcite: 2,
}


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def count_parameters(model: nn.Module, convention: Literal["paper", "all"] = "paper",
                     exclude: Sequence[str] = SIDE_HEADS) -> int:
    """Number of stored values: "paper" leaves out submodules named in ``exclude`` (the side heads), "all" not."""
    if convention not in ("paper", "all"):
        raise ValueError(f"unknown convention {convention!r}; expected 'paper' or 'all'")
    skip = exclude if convention == "paper" else ()
    seen: set[int] = set()
    total = 0
    for name, tensor in model.state_dict(keep_vars=True).items():
        if name.endswith("num_batches_tracked") or _under(name, skip) or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel()
    return total


def _conv_flops(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    if isinstance(module, nn.ConvTranspose2d):  # every input value is scattered through a k x k x out/groups kernel
        return 2 * inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    return 2 * output.numel() * (module.in_channels // module.groups) * kh * kw


def _module_flops(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return _conv_flops(module, inputs, output)
    if isinstance(module, nn.Linear):
        return 2 * output.numel() * module.in_features
    for cls, cost in ELEMENTWISE_COST.items():
        if isinstance(module, cls):
            return cost * (inputs[0] if isinstance(module, SqueezeExcite) else output).numel()
    return 0


def _counted(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, *ELEMENTWISE_COST))


def flops_by_module(model: nn.Module, input_size: int | tuple[int, int], *, include_side_heads: bool = False,
                    side_heads: Sequence[str] = SIDE_HEADS, in_channels: int = 3) -> dict[str, int]:
    """FLOPs per submodule name for one batch-1 forward pass (see the module docstring for the convention).

    With ``include_side_heads`` the model's ``forward_all`` runs if it has one; otherwise ``forward`` runs and the
    ``side_heads`` submodules are ignored even if called. A model on the meta device is traced without computing.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    skip = () if include_side_heads else side_heads
    counts: dict[str, int] = {}

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            counts[name] = counts.get(name, 0) + _module_flops(module, inputs, output)
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules()
               if _counted(m) and not _under(n, skip)]
    was_training = model.training
    try:
        model.eval()
        x = torch.zeros(1, in_channels, h, w, device=device, dtype=dtype)
        run = getattr(model, "forward_all", None) if include_side_heads else None
        with torch.no_grad():
            (run or model)(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return counts


def count_flops(model: nn.Module, input_size: int | tuple[int, int], *, include_side_heads: bool = False,
                side_heads: Sequence[str] = SIDE_HEADS, in_channels: int = 3) -> int:
    """Total FLOPs of one batch-1 forward pass at ``input_size`` in the paper's convention."""
    return sum(flops_by_module(model, input_size, include_side_heads=include_side_heads, side_heads=side_heads,
                               in_channels=in_channels).values())
