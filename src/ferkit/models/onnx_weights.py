"""Torch weights rebuilt from a ferkit ONNX file, so the shipped models can be fine-tuned.

The shipped default is ONNX-only (a torch checkpoint beside it would not fit the package budget).
Its initialisers are named after the torch parameters; the exporter folded every BatchNorm into the
convolution before it, so a rebuilt BatchNorm is the identity plus the folded bias (exact), and
`calibrate_folded_batchnorm` later gives it real statistics for training. fp16-stored weights are
read exactly; int8 (QDQ) weights are dequantized, so a rebuilt int8 model approximates its file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ferkit.errors import FerkitError
from ferkit.inference.backends import META_CLASSES, META_MEMBERS, META_PREPROCESSING
from ferkit.models.bundle import ModelBundle
from ferkit.models.factory import build_model, model_bundle
from ferkit.models.preprocess import Preprocessing
from ferkit.models.spec import ModelSpec


class _Constants:
    """Values of the graph's constant tensors: initialisers, and Casts / DequantizeLinears of them."""

    def __init__(self, graph: onnx.GraphProto):
        self.inits = {i.name: i for i in graph.initializer}
        self.producer = {out: n for n in graph.node for out in n.output}

    def get(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is None:
            return None
        args = [self.get(i) for i in node.input]
        if any(a is None for a in args):
            return None
        if node.op_type == "Cast":
            return args[0].astype(np.float32)
        if node.op_type == "DequantizeLinear":
            q, scale = args[0].astype(np.float32), args[1].astype(np.float32)
            zero = args[2].astype(np.float32) if len(args) > 2 else np.float32(0)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and scale.size > 1:  # per-channel
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), np.reshape(zero, shape)
            return (q - zero) * scale
        return None


def _conv_inputs(graph: onnx.GraphProto) -> dict[str, str]:
    """Conv weight tensor name → its bias tensor name (the folded BatchNorm)."""
    return {n.input[1]: n.input[2] for n in graph.node if n.op_type == "Conv" and len(n.input) > 2}


def _weight_name(consts: _Constants, prefix: str, key: str) -> str:
    """The graph tensor holding parameter ``key``: as named, or the output of its Cast/Dequantize."""
    for name in (f"{prefix}{key}", f"{prefix}{key}_DequantizeLinear_Output"):
        if name in consts.inits or name in consts.producer:
            return name
    raise FerkitError(f"ONNX file has no tensor for parameter {prefix}{key}")


def _member_state(model: nn.Module, consts: _Constants, biases: dict[str, str], prefix: str) -> dict:
    """The member's state dict: convs and Linears read, each BatchNorm = identity + folded bias."""
    state: dict[str, torch.Tensor] = {}
    last_conv: str | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            tensor = _weight_name(consts, prefix, f"{name}.weight")
            state[f"{name}.weight"] = torch.from_numpy(np.array(consts.get(tensor), np.float32))
            if module.bias is not None:
                state[f"{name}.bias"] = torch.from_numpy(
                    consts.get(f"{prefix}{name}.bias").astype(np.float32)
                )
            last_conv = tensor if isinstance(module, nn.Conv2d) else None
        elif isinstance(module, nn.BatchNorm2d):
            if last_conv is None or last_conv not in biases:
                raise FerkitError(f"ONNX file: no folded convolution before BatchNorm {prefix}{name}")
            bias = consts.get(biases[last_conv]).astype(np.float32)
            state[f"{name}.weight"] = torch.ones(module.num_features)
            state[f"{name}.bias"] = torch.from_numpy(bias)
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.full((module.num_features,), 1.0 - module.eps)
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
            last_conv = None
    return state


def bundle_from_onnx(path: str | os.PathLike) -> ModelBundle:
    """The model bundle of a ferkit ONNX file that records its members' specs (see `upgrade_onnx`).

    Raises:
        FerkitError: the file is not a ferkit model, or records no member specs.
    """
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's decode errors
        raise FerkitError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if META_MEMBERS not in meta:
        raise FerkitError(
            f"{path}: records no member specs, so its torch weights cannot be rebuilt; "
            "export the model again with this ferkit version"
        )
    names = json.loads(meta[META_CLASSES])
    pp = Preprocessing.from_dict(json.loads(meta[META_PREPROCESSING]))
    specs = [ModelSpec(**s) for s in json.loads(meta[META_MEMBERS])]
    consts, biases = _Constants(model.graph), _conv_inputs(model.graph)
    bundles = []
    for i, spec in enumerate(specs):
        net = build_model(spec, len(names))
        prefix = f"0.members.{i}." if len(specs) > 1 else "0."
        net.load_state_dict(_member_state(net, consts, biases, prefix))
        member = model_bundle(net, spec, names, pp)
        member.source = {"onnx": str(path), "member": i}  # BatchNorms folded: see calibrate_…
        bundles.append(member)
    if len(bundles) == 1:
        return bundles[0]
    return ModelBundle(names, pp, members=bundles, source={"onnx": str(path)})


@torch.no_grad()
def calibrate_folded_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Give identity BatchNorms (from `bundle_from_onnx`) the statistics of real inputs, exactly
    preserving what the model computes in eval mode.

    With y the convolution output, eval BatchNorm computes y + b (b: the folded bias). Setting
    mean μ and variance σ² from data, weight √(σ²+ε) and bias b + μ computes the same, while train
    mode (batch statistics) now normalises as the original network did.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums: dict[nn.Module, list] = {m: [0.0, 0.0, 0] for m in norms}

    def hook(module, inputs, _output):
        y = inputs[0].double()
        acc = sums[module]
        acc[0] = acc[0] + y.sum(dim=(0, 2, 3))
        acc[1] = acc[1] + (y * y).sum(dim=(0, 2, 3))
        acc[2] += y.numel() // y.shape[1]

    handles = [m.register_forward_hook(hook) for m in norms]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m in norms:
        total, squares, n = sums[m]
        mean = total / n
        var = (squares / n - mean * mean).clamp_min(0)
        bias = m.bias.double() - m.running_mean.double() * m.weight / (m.running_var + m.eps).sqrt()
        m.running_mean.copy_(mean.float())
        m.running_var.copy_(var.float())
        m.weight.copy_((var + m.eps).sqrt().float())
        m.bias.copy_((bias + mean).float())
