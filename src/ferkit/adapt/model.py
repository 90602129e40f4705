"""The adapted model as an ordinary ferkit bundle: each member's backbone with a `ProbeHead`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ferkit.adapt.probe import LinearMap
from ferkit.models.bundle import ModelBundle


def probe_member(member: ModelBundle, head: LinearMap, class_names: list[str]) -> ModelBundle:
    """``member`` with its classifier kept as the probe's base head and ``head`` on top."""
    state = {k: v for k, v in member.state_dict.items() if k.startswith("backbone.")}
    weight, bias = member.classifier()
    state["head.base.weight"], state["head.base.bias"] = weight.float(), bias.float()
    state["head.probe.weight"] = torch.from_numpy(np.asarray(head.weight, np.float32))
    state["head.probe.bias"] = torch.from_numpy(np.asarray(head.bias, np.float32))
    spec = member.spec.model_copy(
        update={"head": "probe", "base_classes": len(member.class_names), "dropout": 0.0, "tta": "flip"}
    )
    pp = replace(member.preprocessing, tta="flip")  # fitted and validated on both views
    return ModelBundle(list(class_names), pp, spec, state, source=dict(member.source))


def adapted_bundle(members: list[ModelBundle], source: dict) -> ModelBundle:
    """One member as it is, several as their ensemble (mean probability)."""
    if len(members) == 1:
        members[0].source = {**members[0].source, **source}
        return members[0]
    first = members[0]
    return ModelBundle(list(first.class_names), first.preprocessing, members=members, source=source)
