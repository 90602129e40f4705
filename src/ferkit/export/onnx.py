"""Export a trained run to ONNX (fp32, fp16-stored or int8 weights), self-describing, checked against torch.

The class names and preprocessing are embedded in the file's ``metadata_props``, so
``Recognizer.from_onnx(file)`` needs nothing else. After export the file is run with onnxruntime
on sample inputs and compared with the torch model; fp16 storage halves the file, int8 is a static,
calibrated QDQ graph (`ferkit.export.quantize`), and, given a data split, the accuracy of every
version on it is reported (an int8 drop above ``INT8_WARN_POINTS`` is a warning, also stored in the
file's metadata).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ferkit.errors import FerkitError
from ferkit.export.quantize import quantize_static_int8
from ferkit.inference.backends import (
    EMBEDDINGS,
    META_CLASSES,
    META_MEMBERS,
    META_PREPROCESSING,
    ModelPaths,
    OnnxBackend,
    TorchBackend,
    as_paths,
)
from ferkit.models.preprocess import Preprocessing, prepare
from ferkit.models.spec import ModelSpec

DEFAULT_OPSET = 18  # the lowest opset the torch.export-based exporter emits
CALIBRATION_IMAGES = 512  # int8: faces from the training split that set the activation ranges
INT8_WARN_POINTS = 1.0  # int8 accuracy this far below fp32 (points) is a warning
META_INT8 = "ferkit.int8_check"


@dataclass
class ExportReport:
    """What was written and how closely it matches the torch model."""

    path: Path
    weights: str  # "fp32" | "fp16" (stored as fp16, computed in fp32) | "int8" (static QDQ)
    samples: int  # sample inputs used for the comparison
    max_diff_fp32: float  # max |p_onnx - p_torch| over all samples and classes
    max_diff_stored: float | None = None  # of the fp16/int8 file, when one was asked for
    split: str | None = None
    split_size: int = 0
    accuracy: dict[str, float] | None = None  # {"torch", "onnx_fp32"[, "onnx_fp16"|"onnx_int8"]} on the split

    def lines(self) -> list[str]:
        """Human-readable summary (the CLI prints these)."""
        size_mb = self.path.stat().st_size / 1e6
        out = [
            f"wrote {self.path} ({self.weights} weights, {size_mb:.1f} MB)",
            f"max |p_onnx - p_torch| over {self.samples} sample faces: fp32 {self.max_diff_fp32:.2e}"
            + (f", {self.weights} {self.max_diff_stored:.2e}" if self.max_diff_stored is not None else ""),
        ]
        if self.accuracy:
            acc = ", ".join(f"{k} {v:.4f}" for k, v in self.accuracy.items())
            out.append(f"accuracy on split {self.split!r} ({self.split_size} images): {acc}")
            stored = f"onnx_{self.weights}"
            if stored in self.accuracy and stored != "onnx_fp32":
                change = 100 * (self.accuracy[stored] - self.accuracy["onnx_fp32"])
                out.append(f"{self.weights} accuracy change vs fp32: {change:+.2f} points")
                if change < -INT8_WARN_POINTS:
                    out.append(f"WARNING: {self.weights} loses more than {INT8_WARN_POINTS:g} point(s)")
        return out


def sample_images(pp: Preprocessing, n: int = 64, seed: int = 0) -> np.ndarray:
    """Network inputs to compare backends on: synthetic cartoon faces and colour noise (half each)."""
    from ferkit.data.synthetic import CLASSES, draw_face

    rng = np.random.default_rng(seed)
    faces = np.stack([draw_face(CLASSES[i % len(CLASSES)], rng, pp.input_size) for i in range(n - n // 2)])
    noise = rng.integers(0, 256, (n // 2, pp.input_size, pp.input_size, 3), dtype=np.uint8)
    return np.concatenate([prepare(faces[..., None], pp), prepare(noise, pp)])


class _WithEmbeddings(torch.nn.Module):
    """What an exported file computes: (softmax probabilities, penultimate features)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.model.forward_with_features(x)
        return logits.softmax(dim=1), features


def _export_graph(model: torch.nn.Module, pp: Preprocessing, path: Path, opset: int) -> None:
    """Model + softmax → ONNX with a dynamic batch axis; outputs ``probabilities`` and ``embeddings``.

    Exporter choice: the torch.export-based exporter (``dynamo=True``, needs onnxscript). It
    specialises the static input size, so timm's TF-style "same" padding (tf_efficientnet_*) becomes
    constant Conv pads and BatchNorm is folded: a clean Conv/Clip/Add graph that onnxruntime runs
    and quantizes well. The legacy TorchScript exporter (deprecated since torch 2.9) traces that
    padding as ~200 Shape/Gather/Ceil/Pad ops evaluated on every run, which dynamic quantization
    cannot handle either. Both gave equal probabilities (max diff < 1e-6) on the models tested here.
    """
    net = _WithEmbeddings(model).eval()
    example = torch.zeros(2, pp.in_chans, pp.input_size, pp.input_size)  # batch 2: 1 would be specialised
    try:
        program = torch.onnx.export(
            net,
            (example,),
            input_names=["input"],
            output_names=["probabilities", EMBEDDINGS],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    except ImportError as exc:
        raise FerkitError(
            f"ONNX export needs onnxscript ({exc}); install it: pip install onnxscript"
        ) from None
    except Exception as exc:  # the exporter's many error types: one readable line, not its traceback
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise FerkitError(f"ONNX export failed ({type(exc).__name__}: {reason})") from None
    onnx.save(program.model_proto, str(path))


def _add_metadata(path: Path, class_names: list[str], pp: Preprocessing, specs: list[ModelSpec]) -> None:
    """Class names, preprocessing and the members' specs (what `bundle_from_onnx` rebuilds from)."""
    model = onnx.load(str(path))
    ours = (META_CLASSES, META_PREPROCESSING, META_MEMBERS)
    keep = [p for p in model.metadata_props if p.key not in ours]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    members = [s.model_dump(mode="json") for s in specs]
    for key, value in zip(ours, (class_names, pp.to_dict(), members), strict=True):
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, str(path))


def member_specs(run: ModelPaths) -> list[ModelSpec]:
    """The ModelSpec of every single model in ``run`` (an ensemble's members in order)."""
    from ferkit.models.factory import read_bundle

    def flat(bundle) -> list[ModelSpec]:
        return [s for m in bundle.members for s in flat(m)] if bundle.members else [bundle.spec]

    return [s for p in as_paths(run) for s in flat(read_bundle(p))]


def add_embeddings_output(model: onnx.ModelProto) -> None:
    """Give a file exported before embeddings existed its ``embeddings`` output, in place.

    The features are the input of each member's classifier: the first Gemm whose weight is a
    ``…head.N.weight`` initialiser (or a ProbeHead's ``head.base.weight``), one per member in graph
    order, concatenated along axis 1 as `Ensemble.forward_with_features` does.
    """
    graph = model.graph
    if any(o.name == EMBEDDINGS for o in graph.output):
        return
    taken: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Gemm" or ".head." not in node.input[1]:
            continue
        member = node.input[1].split(".head.")[0]
        taken.setdefault(member, node.input[0])
    if not taken:
        raise FerkitError("no classifier head (Gemm on a …head.N.weight) found in the ONNX graph")
    feats = list(taken.values())
    if len(feats) == 1:
        graph.node.append(onnx.helper.make_node("Identity", feats, [EMBEDDINGS]))
    else:
        graph.node.append(onnx.helper.make_node("Concat", feats, [EMBEDDINGS], axis=1))
    graph.output.append(
        onnx.helper.make_tensor_value_info(EMBEDDINGS, onnx.TensorProto.FLOAT, ["batch", None])
    )
    onnx.checker.check_model(model)


def upgrade_onnx(path: str | os.PathLike, specs: list[ModelSpec], out: str | os.PathLike) -> None:
    """An older ferkit ONNX file with the embeddings output and member specs added (atomically);
    its probabilities are checked to be exactly those of the original."""
    path, out = Path(path), Path(out)
    before = OnnxBackend.from_file(path)
    x = sample_images(before.preprocessing, 16)
    model = onnx.load(str(path))
    add_embeddings_output(model)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.tmp", dir=out.parent) as tmp:
        tmp_file = Path(tmp) / "upgraded.onnx"
        onnx.save(model, str(tmp_file))
        _add_metadata(tmp_file, before.class_names, before.preprocessing, specs)
        after = OnnxBackend.from_file(tmp_file)
        if not np.array_equal(after.probabilities(x), before.probabilities(x)):
            raise FerkitError(f"{path}: the upgraded graph changed the probabilities")
        os.replace(tmp_file, out)


def _store_fp16(src: Path, dst: Path) -> None:
    """Every float32 weight stored as float16 and cast back when the session is created.

    Half the file size; onnxruntime folds the Casts into constants at load time, so inference runs
    the same optimized float32 graph, only with weights rounded to fp16 (which trained networks
    tolerate: the difference in probabilities is printed after export).
    """
    model = onnx.load(str(src))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        name, half = init.name, onnx.numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(onnx.numpy_helper.from_array(half, f"{name}.fp16"))
        cast = onnx.helper.make_node("Cast", [f"{name}.fp16"], [name], to=onnx.TensorProto.FLOAT)
        casts.append(cast)
    nodes = casts + list(graph.node)  # casts first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _calibration(data: str | os.PathLike, pp: Preprocessing, run: ModelPaths) -> np.ndarray:
    """Prepared faces from the training split of ``data`` (resolved as in training; stratified,
    seeded subset) for int8 calibration."""
    from ferkit.data import evaluation_split, stratified_subset
    from ferkit.data.spec import run_data_spec

    paths = as_paths(run)
    trained_on = run_data_spec(paths[0]) if len(paths) == 1 else None
    try:
        train, _, _ = evaluation_split(data, "train", trained_on)
    except FerkitError:  # a source without a training split (a pool): calibrate on all of it
        train, _, _ = evaluation_split(data, "all", trained_on)
    return prepare(stratified_subset(train, CALIBRATION_IMAGES, seed=0).images, pp)


def _int8_metadata(path: Path, accuracy: dict[str, float] | None, split: str | None, n: int) -> None:
    model = onnx.load(str(path))
    check = {"calibration_images": CALIBRATION_IMAGES, "split": split, "n": n, "accuracy": accuracy}
    if accuracy:
        drop = 100 * (accuracy["onnx_fp32"] - accuracy["onnx_int8"])
        check["warning"] = f"int8 is {drop:.2f} points below fp32" if drop > INT8_WARN_POINTS else None
    model.metadata_props.add(key=META_INT8, value=json.dumps(check))
    onnx.save(model, str(path))


def _split_accuracy(
    backends: dict, data: str | os.PathLike, split: str, class_names: list[str], run: ModelPaths
) -> tuple:
    """Accuracy of each backend on one split, resolved as `ferkit evaluate` resolves it (the run's own
    split rules on its training source), labels matched to the model's classes by name."""
    from ferkit.data import evaluation_split
    from ferkit.data.classes import match_classes
    from ferkit.data.spec import run_data_spec

    paths = as_paths(run)
    ds, _, _ = evaluation_split(data, split, run_data_spec(paths[0]) if len(paths) == 1 else None)
    match = match_classes(ds.class_names, class_names)
    if match.dropped:
        raise FerkitError(f"{data}: classes {match.dropped} are not among the model's classes {class_names}")
    labels = match.to_model[ds.labels]
    pp = next(iter(backends.values())).preprocessing
    correct = dict.fromkeys(backends, 0)
    for start in range(0, len(ds), 64):
        x = prepare(ds.take(np.arange(start, min(start + 64, len(ds)))), pp)
        for name, backend in backends.items():
            correct[name] += int((backend.probabilities(x).argmax(1) == labels[start : start + 64]).sum())
    return {k: v / max(len(ds), 1) for k, v in correct.items()}, len(ds)


WEIGHTS = ("fp32", "fp16", "int8")


def export_onnx(
    run: ModelPaths,
    out: str | os.PathLike,
    weights: str = "fp32",
    opset: int = DEFAULT_OPSET,
    data: str | os.PathLike | None = None,
    split: str | None = None,
    samples: int = 64,
) -> ExportReport:
    """Export ``run`` (run directory or .pt; several → one ensemble graph) to ``out``.

    Args:
        run: run directory or checkpoint, or several (exported as one ensemble graph).
        out: the ``.onnx`` file to write (atomically, after every check passed).
        weights: "fp32"; "fp16" (stored as fp16, computed in fp32: half the size); "int8" (static
            QDQ, per-channel weights, activations calibrated on ``CALIBRATION_IMAGES`` faces of
            ``data``'s training split: needs ``data``).
        opset: ONNX opset.
        data, split: measure the accuracy of torch, ONNX fp32 and the stored version on this split.
        samples: synthetic faces on which the probabilities are compared with torch.

    Returns:
        The report: file, probability differences, accuracies.
    """
    if weights not in WEIGHTS:
        raise FerkitError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    if (data is None) != (split is None):
        raise FerkitError("give both --data and --split to measure accuracy on a split (or neither)")
    if weights == "int8" and data is None:
        raise FerkitError(
            "int8 export calibrates on real faces: give --data (its training split) and --split (checked)"
        )
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise FerkitError(f"{out}: the output file name must end in .onnx")
    torch_backend = TorchBackend.from_checkpoint(run)
    names, pp, specs = torch_backend.class_names, torch_backend.preprocessing, member_specs(run)
    x = sample_images(pp, samples)
    reference = torch_backend.probabilities(x)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.tmp", dir=out.parent) as tmp:  # same disk: atomic
        fp32 = Path(tmp) / "fp32.onnx"
        _export_graph(torch_backend.model, pp, fp32, opset)
        _add_metadata(fp32, names, pp, specs)
        backends = {"torch": torch_backend, "onnx_fp32": OnnxBackend.from_file(fp32)}
        final = fp32
        if weights != "fp32":
            final = Path(tmp) / f"{weights}.onnx"
            if weights == "fp16":
                _store_fp16(fp32, final)
            else:
                quantize_static_int8(fp32, final, _calibration(data, pp, run))
            _add_metadata(final, names, pp, specs)
            backends[f"onnx_{weights}"] = OnnxBackend.from_file(final)
        diffs = {
            k: float(np.abs(b.probabilities(x) - reference).max())
            for k, b in backends.items()
            if k != "torch"
        }
        accuracy, n = _split_accuracy(backends, data, split, names, run) if data is not None else (None, 0)
        if weights == "int8":
            _int8_metadata(final, accuracy, split, n)
        os.replace(final, out)
    stored = diffs.get(f"onnx_{weights}") if weights != "fp32" else None
    return ExportReport(out, weights, len(x), diffs["onnx_fp32"], stored, split, n, accuracy)
