"""Every named config's latency in both engines (eager Paddle and a Paddle Inference predictor), batch 1 at its
own resolution, with 1 and 2 CPU threads: the README's latency table.

Results go to a JSON file under a label (default: the checked-out commit), one measurement at a time, so a
stopped run resumes, and the same file holds the tables of several versions of the blocks:

    python benchmarks/latency_table.py [--label after] [--runs 20]         # measure (an idle machine)
    PYTHONPATH=/path/to/old/checkout python benchmarks/latency_table.py --label before   # the old blocks
    python benchmarks/latency_table.py --report                            # the markdown table
"""
from __future__ import annotations

import argparse
import subprocess
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from common import RESULTS, locked, write  # noqa: E402

import lwnas  # noqa: E402
from lwnas.deploy.export import deployable
from lwnas.deploy.latency import measure  # noqa: E402

OUTPUT = RESULTS / "latency_table.json"
ENGINES, THREADS = ("eager", "inference"), (1, 2)


def key(name: str, engine: str, threads: int) -> str:
    return f"{name}/{engine}/{threads}"


def commit() -> str:
    """The commit of the lwnas that is imported (which may be another checkout, via PYTHONPATH)."""
    where = Path(lwnas.__file__).resolve().parent.parent
    result = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def run(output: Path, label: str, runs: int, names: list[str]):
    import paddle

    paddle.set_device("cpu")
    for name in names:
        spec = lwnas.get_config(name)
        model = None
        for threads in THREADS:
            for engine in ENGINES:
                with locked(output) as document:
                    if key(name, engine, threads) in (document or {}).get(label, {}).get("ms", {}):
                        continue
                model = model or deployable(lwnas.build(spec))
                latency = measure(model, spec.resolution, 1, warmup=5, runs=runs, engine=engine, threads=threads)
                with locked(output) as document:
                    document = document or {}
                    table = document.setdefault(label, {"lwnas": str(Path(lwnas.__file__).parent), "ms": {}})
                    table["ms"][key(name, engine, threads)] = round(latency.median_ms, 3)
                    table.setdefault("engine", {})[key(name, engine, threads)] = latency.device  # which backend
                    write(output, document)
                print(f"{label} {name} {engine} {threads}t: {latency.median_ms:.2f} ms", flush=True)


def report(document: dict, labels: list[str]):
    names = sorted({k.split("/")[0] for label in labels for k in document[label]["ms"]},
                   key=lambda n: (lwnas.get_config(n).family, lwnas.count(lwnas.get_config(n)).macs))
    columns = [(label, engine, threads) for threads in THREADS for label in labels for engine in ENGINES]
    print("| config | MAdds | " + " | ".join(f"{e} {t}t ({label})" for label, e, t in columns) +
          " | inference / eager, 1t (" + ", ".join(labels) + ") |")
    print("|---" * (3 + len(columns)) + "|")
    for name in names:
        cells = [document[label]["ms"].get(key(name, e, t)) for label, e, t in columns]
        ratios = []
        for label in labels:
            ms = document[label]["ms"]
            eager, inference = ms.get(key(name, "eager", 1)), ms.get(key(name, "inference", 1))
            ratios.append(f"{inference / eager:.2f}" if eager and inference else "-")
        print(f"| {name} | {lwnas.count(lwnas.get_config(name)).macs / 1e6:.1f}M | " +
              " | ".join(f"{c:.1f}" if c else "-" for c in cells) + f" | {' / '.join(ratios)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--output", default=str(OUTPUT))
    parser.add_argument("--label", help="name of this version's table (default: the commit of the imported lwnas)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement (after 5 warm-up runs)")
    parser.add_argument("--only", nargs="*", help="these configs only (default: every named config)")
    parser.add_argument("--report", nargs="*", metavar="LABEL", help="print the table of these labels (default: all)")
    args = parser.parse_args()
    output = Path(args.output)
    if args.report is not None:
        with locked(output) as document:
            report(document, args.report or list(document))
        return
    run(output, args.label or commit(), args.runs, args.only or lwnas.config_names())


if __name__ == "__main__":
    main()
