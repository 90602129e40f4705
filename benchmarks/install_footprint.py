"""Install footprint of ferkit's two installs, measured in fresh virtual environments.

  light  pip install ferkit            inference on photos: ONNX models, YuNet, onnxruntime, Pillow
  full   pip install 'ferkit[train]'   adds torch, timm, scikit-learn, matplotlib, ... for training

For each: the venv's size on disk minus that of an empty venv (so pip itself is not counted), the
``pip install`` wall time, and the time from a cold start to the first prediction: a new process
running ``ferkit predict`` on the photo shipped in the package (import, model and detector load,
detection, classification, output). Both installs are timed in interleaved rounds in a rotating
order; ``--drop-caches`` (root, Linux) empties the page cache before each cold run, and a warm run
(files cached) follows each cold one. Medians are reported, with the load average.

    .venv/bin/python benchmarks/install_footprint.py --rounds 5 --drop-caches
    .venv/bin/python benchmarks/install_footprint.py --rounds 9 --drop-caches --keep /tmp/venvs  # reusable
    .venv/bin/python benchmarks/install_footprint.py --wheel dist/ferkit-0.1.0-py3-none-any.whl
    python3 benchmarks/install_footprint.py --check /tmp/light --budget 300   # CI: size only, exit 1 if over
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
INSTALLS = {"light": "", "full": "[train]"}


# The venvs must see only what was installed into them (not a source tree on PYTHONPATH).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, env=CLEAN_ENV, **kw)
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    return res


def build_wheel(out: Path) -> Path:
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)])
    return next(out.glob("ferkit-*.whl"))


def dir_mb(path: Path) -> float:
    total = sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 2**20


def biggest(venv: Path, n: int = 6) -> str:
    """The largest top-level entries of a venv's site-packages (a package and its ``.libs`` together)."""
    sizes: dict[str, float] = {}
    for entry in next(venv.glob("lib/python*/site-packages")).iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")):
            key = entry.name.removesuffix(".libs").replace("opencv_python_headless", "cv2")
            sizes[key] = sizes.get(key, 0.0) + dir_mb(entry)
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {v:.0f}" for k, v in top)


def make_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    return path / "bin"


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def first_prediction(bin_dir: Path, out: Path) -> float:
    """Seconds for a new ``ferkit predict`` process on the bundled photo, JSON written."""
    photo = next(bin_dir.parent.glob("lib/python*/site-packages/ferkit/assets/astronaut.jpg"))
    start = time.perf_counter()
    run([bin_dir / "ferkit", "predict", str(photo), "--json", str(out)], cwd=out.parent)
    return time.perf_counter() - start


def check_budget(venv: Path, budget_mb: float) -> None:
    """Exit 1 when ``venv`` (minus an empty venv) is larger than ``budget_mb``: a size is deterministic."""
    with tempfile.TemporaryDirectory() as scratch:
        size = dir_mb(venv) - dir_mb(make_venv(Path(scratch) / "empty").parent)
    verdict = "within" if size <= budget_mb else "OVER"
    print(f"{venv}: {size:.0f} MB, {verdict} the {budget_mb:.0f} MB budget; largest (MB): {biggest(venv)}")
    if size > budget_mb:
        raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, help="ferkit wheel to install (default: build one from this tree)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--drop-caches", action="store_true", help="empty the page cache before each cold run")
    ap.add_argument("--keep", type=Path, help="keep the venvs in this folder, and reuse those found there")
    ap.add_argument("--check", type=Path, metavar="VENV", help="only measure this venv against --budget")
    ap.add_argument("--budget", type=float, default=300.0, help="MB allowed for --check (default 300)")
    args = ap.parse_args()
    if args.check:
        check_budget(args.check, args.budget)
        return

    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        wheel = args.wheel or build_wheel(Path(scratch) / "dist")
        empty = dir_mb(make_venv(Path(scratch) / "empty").parent)
        bins, rows = {}, {}
        for name, extra in INSTALLS.items():
            pip_s = float("nan")
            bins[name] = tmp / name / "bin"
            if not (bins[name] / "ferkit").exists():
                make_venv(tmp / name)
                start = time.perf_counter()
                run([bins[name] / "pip", "install", "--no-cache-dir", f"{wheel}{extra}"])
                pip_s = time.perf_counter() - start
                print(f"{name}: installed in {pip_s:.0f} s", flush=True)
            rows[name] = {
                "size_mb": dir_mb(tmp / name) - empty,
                "pip_s": pip_s,  # nan: a kept venv was reused
                "biggest": biggest(tmp / name),
                "torch": any((tmp / name / "lib").glob("python*/site-packages/torch")),
                "cold": [],
                "warm": [],
            }
        dropped = True
        order = list(INSTALLS)
        for r in range(args.rounds):
            for name in order[r % 2 :] + order[: r % 2]:
                if args.drop_caches:
                    dropped &= drop_caches()
                rows[name]["cold"].append(first_prediction(bins[name], Path(scratch) / f"{name}.json"))
                rows[name]["warm"].append(first_prediction(bins[name], Path(scratch) / f"{name}.json"))
                print(f"round {r + 1} {name}: cold {rows[name]['cold'][-1]:.2f} s, "
                      f"warm {rows[name]['warm'][-1]:.2f} s", flush=True)  # fmt: skip

    print(f"machine: {machine()}; load average after: {load_average()}; Python {sys.version.split()[0]}")
    cold = (
        "page cache dropped before each cold run"
        if args.drop_caches and dropped
        else "page cache NOT dropped"
    )
    print(f"{args.rounds} interleaved rounds, medians; {cold}; sizes exclude an empty venv ({empty:.0f} MB)")
    print(f"{'install':<8} {'size MB':>8} {'pip s':>7} {'torch':>6} {'cold first prediction s':>24} "
          f"{'warm s':>7}")  # fmt: skip
    for name, row in rows.items():
        print(
            f"{name:<8} {row['size_mb']:>8.0f} {row['pip_s']:>7.0f} {'yes' if row['torch'] else 'no':>6} "
            f"{statistics.median(row['cold']):>24.2f} {statistics.median(row['warm']):>7.2f}"
        )
    for name, row in rows.items():
        print(f"{name} largest packages (MB): {row['biggest']}")
    light, full = rows["light"], rows["full"]
    print(
        f"full / light: size x{full['size_mb'] / light['size_mb']:.1f}, cold first prediction "
        f"x{statistics.median(full['cold']) / statistics.median(light['cold']):.2f}"
    )


if __name__ == "__main__":
    main()
