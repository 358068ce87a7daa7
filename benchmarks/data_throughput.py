"""Images/s and peak resident memory of lwnas' streamed data path against a plain paddle.vision pipeline
(DatasetFolder + RandomResizedCrop + flip + normalize) doing the same work, in the same run, at 224 px.

It writes a generated JPEG ImageFolder (256-500 px, 10 classes) into a temporary folder, then times each
(pipeline, loader workers, set size) in a fresh process: the loader alone, batch 64, over --batches batches,
with peak memory as the main process's maximum resident set plus its largest worker's. The set sizes show
whether memory grows with the data set (it must not, for the streamed path).

    python benchmarks/data_throughput.py [--images 5000 20000] [--workers 0 1 2] [--batches 20]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH, RESOLUTION, CLASSES = 64, 224, 10


def make_folder(root: Path, images: int, seed: int = 0):
    """JPEGs of 256-500 px per side: smooth colour fields with noise, so they compress like photos."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        label = i % CLASSES
        path = root / "train" / f"class{label}" / f"{i}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = rng.integers(256, 501, size=2)
        ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
        base = np.stack([np.sin(6 * xs + label), np.cos(5 * ys - label), np.sin(4 * (xs + ys))], axis=-1)
        pixels = np.clip(127 + 100 * base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)


def loader(pipeline: str, root: Path, workers: int):
    import paddle

    if pipeline == "lwnas":
        from lwnas.train import data
        from lwnas.train.loop import loaders
        from lwnas.train.settings import TrainConfig

        train_set = data.load(str(root), "train", RESOLUTION, stream=True)
        # torchvision's and paddle.vision's crop scale (8-100% of the area), so both pipelines do the same work
        config = TrainConfig(batch_size=BATCH, resolution=RESOLUTION, workers=workers, crop_scale=0.08)
        return loaders(train_set, train_set, config)[2]
    from paddle.vision import transforms
    from paddle.vision.datasets import DatasetFolder

    transform = transforms.Compose([transforms.RandomResizedCrop(RESOLUTION), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406],
                                                                                [0.229, 0.224, 0.225])])
    dataset = DatasetFolder(str(root / "train"), transform=transform)
    return paddle.io.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)


def measure(pipeline: str, root: Path, workers: int, batches: int) -> dict:
    """In this process: images/s over `batches` batches after one warm-up batch, and peak memory."""
    start = None
    seen = 0
    for i, (images, _) in enumerate(loader(pipeline, root, workers)):
        if i == 0:
            start = time.perf_counter()
            continue
        seen += images.shape[0]
        if i == batches:
            break
    rate = seen / (time.perf_counter() - start)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss +
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"images_per_s": round(rate, 1), "peak_mib": round(peak)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--folder", help="reuse (or fill) this folder instead of a temporary one")
    parser.add_argument("--one", nargs=3, metavar=("PIPELINE", "ROOT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a measurement in its own process, so that peak memory is its own
        pipeline, root, workers = args.one
        print(json.dumps(measure(pipeline, Path(root), int(workers), args.batches)))
        return
    with tempfile.TemporaryDirectory(prefix="lwnas-data-") as scratch:
        base = Path(args.folder or scratch)
        print("| images | loader workers | lwnas streamed: images/s | peak MiB | paddle.vision: images/s | peak MiB "
              "| ratio |")
        print("|---|---|---|---|---|---|---|")
        for images in sorted(args.images):
            root = base / f"set{images}"
            make_folder(root, images)
            for workers in args.workers:
                results = {}
                for pipeline in ("lwnas", "plain"):
                    out = subprocess.run([sys.executable, __file__, "--batches", str(args.batches), "--one", pipeline,
                                          str(root), str(workers)], capture_output=True, text=True, check=True)
                    results[pipeline] = json.loads(out.stdout.strip().splitlines()[-1])
                ours, plain = results["lwnas"], results["plain"]
                print(f"| {images} | {workers} | {ours['images_per_s']} | {ours['peak_mib']} | "
                      f"{plain['images_per_s']} | {plain['peak_mib']} | "
                      f"{ours['images_per_s'] / plain['images_per_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
