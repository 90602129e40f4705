"""What a model is, as data: enough to rebuild it (and its preprocessing) from a run directory."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ferkit.models.preprocess import TTA_MODES

# The papers' names → timm architectures. Any other timm name is used as given.
ALIASES = {
    "efficientnet_b0": "efficientnet_b0",
    "efficientnet_b1": "efficientnet_b1",
    "efficientnet_b2": "efficientnet_b2",
    "b0": "efficientnet_b0",
    "b1": "efficientnet_b1",
    "b2": "efficientnet_b2",
    "lite0": "tf_efficientnet_lite0",
    "lite1": "tf_efficientnet_lite1",
    "lite2": "tf_efficientnet_lite2",
    "mobilenetv2": "mobilenetv2_100",
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "inception_v3": "inception_v3",
    "inceptionv3": "inception_v3",
    "densenet121": "densenet121",
}


class ModelSpec(BaseModel):
    """A timm backbone plus one of the papers' classification heads."""

    model_config = ConfigDict(extra="forbid")

    name: str = "tf_efficientnet_lite0"
    pretrained: str = Field(
        "none", description="none | hub (timm download, needs internet) | path to .safetensors/.pth"
    )
    pretrained_strict: bool = Field(
        True, description="a weights file must fit the architecture (all but the classifier head)"
    )
    head: Literal["linear", "dropout", "mlp", "probe"] = Field(
        "linear", description="probe: a linear head on [features, base head's log-probabilities] (adapt)"
    )
    base_classes: int = Field(0, ge=0, description="probe head: classes of the base model's head")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    hidden: int = Field(256, gt=0, description="width of the mlp head's hidden layer")
    in_chans: Literal[1, 3] = Field(3, description="3: grayscale replicated to RGB; 1: one-channel stem")
    input_size: int = Field(224, ge=16, description="side of the square network input")
    interpolation: Literal["auto", "bilinear", "bicubic"] = "auto"
    mean: tuple[float, ...] | None = None  # None: from the timm config of the architecture
    std: tuple[float, ...] | None = None
    eval_crop_pct: float = Field(1.0, gt=0.0, le=1.0, description="1.0 = resize only, no center crop")
    tta: Literal[TTA_MODES] | None = Field(  # type: ignore[valid-type]
        None, description="the model's own test-time augmentation, stored with its preprocessing"
    )
    kwargs: dict = Field(default_factory=dict, description="extra timm.create_model arguments")

    @property
    def timm_name(self) -> str:
        return ALIASES.get(self.name, self.name)
