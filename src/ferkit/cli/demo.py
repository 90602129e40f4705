"""`ferkit demo`: the main job on built-in defaults, fully offline."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from ferkit.fileio import atomic_write_text

PHOTO = "astronaut.jpg"  # Eileen Collins, NASA (public domain), as shipped by scikit-image


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the annotated photo and JSON.")] = Path(
        "ferkit-demo"
    ),
    model: Annotated[
        str, typer.Option("--model", help="Shipped model: default (accurate) | fast (the fast tier).")
    ] = "default",
) -> None:
    """Recognise the expression in a bundled public-domain photo with the model shipped in the package."""
    from ferkit.inference import Recognizer
    from ferkit.inference.annotate import annotate, write_image
    from ferkit.inference.recognizer import read_image

    detector = "yunet"  # shipped in the package, like the model and the photo
    recognizer = Recognizer.default(model, detector=detector)
    with resources.as_file(resources.files("ferkit") / "assets" / PHOTO) as photo:
        image = read_image(photo)
    result = recognizer.predict_images([image], sources=[PHOTO])[0]
    size = f"{image.shape[1]}x{image.shape[0]}"
    typer.echo(f"ferkit demo: shipped {model!r} model, {detector} face detector, photo {PHOTO} ({size})")
    if not result.faces:
        typer.echo("no face found")
    for i, face in enumerate(result.faces):
        top3 = sorted(face.probabilities.items(), key=lambda kv: -kv[1])[:3]
        ranked = ", ".join(f"{name} {p:.2f}" for name, p in top3)
        typer.echo(f"face {i} at x={face.box[0]} y={face.box[1]} w={face.box[2]} h={face.box[3]}: "
                   f"{face.label} ({face.score:.2f}); top 3: {ranked}")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "astronaut_annotated.jpg", annotate(image, result.faces))
    atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2))
    typer.echo(f"wrote {out / 'astronaut_annotated.jpg'} and {out / 'result.json'}")
