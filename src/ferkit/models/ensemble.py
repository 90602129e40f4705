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
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log mean probability, the members' features side by side, in member order)."""
        outputs = [m.forward_with_features(x) for m in self.members]
        log_probs = torch.stack([logits.log_softmax(dim=1) for logits, _ in outputs])
        mean = torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
        return mean, torch.cat([features for _, features in outputs], dim=1)


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
