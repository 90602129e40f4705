"""Several trained models as one network: the mean of their probabilities.

This is how `ferkit evaluate --ensemble` scores runs together; as a module it can also be saved,
exported to one ONNX file and served by the `Recognizer` like any single model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ferkit.errors import FerkitError
from ferkit.models.bundle import ModelBundle


class Ensemble(nn.Module):
    """Returns log(mean of the members' probabilities), so softmax(output) is that mean.

    Callers that apply a softmax to a model's output (backends, ONNX export, metrics) therefore
    treat an ensemble exactly like a single model.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([m(x).log_softmax(dim=1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def ensemble_bundle(bundles: list[ModelBundle], sources: list[str]) -> ModelBundle:
    """One bundle holding every member's; they must share class names and preprocessing, because an
    ensemble is fed one input batch."""
    first, where = bundles[0], sources[0]
    for bundle, source in zip(bundles[1:], sources[1:], strict=True):
        for key in ("class_names", "preprocessing"):
            mine, theirs = getattr(bundle, key), getattr(first, key)
            if mine != theirs:
                raise FerkitError(
                    f"{source}: {key} {mine} differ from {where}'s {theirs}; "
                    "only models with the same classes and preprocessing can form one ensemble"
                )
    return ModelBundle(list(first.class_names), first.preprocessing, members=list(bundles))
