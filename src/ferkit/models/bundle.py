"""The model bundle: everything a trained model file holds, as one typed object.

A bundle is stored inside a ``.pt`` file as plain data (strings, numbers, lists, dicts, tensors) so
it is read with ``torch.load(weights_only=True)``: loading a model file never runs code from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ferkit.errors import FerkitError
from ferkit.models.preprocess import Preprocessing
from ferkit.models.spec import ModelSpec


@dataclass
class ModelBundle:
    """A single model (``spec`` + ``state_dict``) or an ensemble (``members``), with what inference needs.

    Attributes:
        class_names: output classes, in logit order.
        preprocessing: how face crops become network input.
        spec: architecture and head (``pretrained`` is always ``"none"``: the weights are here).
        state_dict: parameter name → tensor.
        members: the bundles of an ensemble's models (then ``spec`` is None and ``state_dict`` empty).
        source: training metadata (run, epoch, selection metrics), free-form JSON-like data.
    """

    class_names: list[str]
    preprocessing: Preprocessing
    spec: ModelSpec | None = None
    state_dict: dict[str, Any] = field(default_factory=dict, repr=False)
    members: list[ModelBundle] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def classifier(self) -> tuple[Any, Any]:
        """(weight, bias) of a linear or dropout head's Linear layer (``head.N``), as stored."""
        key = next(k for k in self.state_dict if k.startswith("head.") and k.endswith(".weight"))
        return self.state_dict[key], self.state_dict[key.removesuffix("weight") + "bias"]

    def to_dict(self) -> dict:
        """The plain-data form saved in model files (readable by older ferkit versions too)."""
        out: dict[str, Any] = {
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing.to_dict(),
        }
        if self.members:
            out["members"] = [m.to_dict() for m in self.members]
        else:
            out["spec"] = self.spec.model_dump(mode="json") if self.spec else None
            out["state_dict"] = dict(self.state_dict)
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelBundle:
        """Validate the plain-data form; anything else is a FerkitError naming ``where``."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"expected a dict, found {type(data).__name__}")
            names = data["class_names"]
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                raise TypeError("class_names must be a list of strings")
            pp = Preprocessing.from_dict(data["preprocessing"])
            source = data.get("source") or {}
            if "members" in data:
                members = [cls.from_dict(m, f"{where} (member {i})") for i, m in enumerate(data["members"])]
                return cls(list(names), pp, members=members, source=source)
            state = data["state_dict"]
            if not isinstance(state, dict) or not all(
                hasattr(v, "is_floating_point") for v in state.values()
            ):
                raise TypeError("state_dict must map parameter names to tensors")
            return cls(list(names), pp, ModelSpec(**data["spec"]), state, source=source)
        except ValidationError as exc:
            reason = "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise FerkitError(f"not a ferkit model file: {where} (model bundle: {reason})") from None
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
            raise FerkitError(f"not a ferkit model file: {where} (model bundle: {reason})") from None
