"""Train and evaluate variants over several seeds: one run per variant is not enough to rank them.

On the demo corpus, the same variant and settings trained twice differed by up to 10 LVE (x1e-4),
more than the gaps between variants in a single run. This script trains every RUN x SEED with
`talking-head train` (the settings of --config plus the seed and the run's model overrides),
evaluates SE and UE with `talking-head evaluate`, and writes WORK/seeds.md: LVE per seed, mean and
standard deviation. Resumable: finished reports are kept. It reuses the work folder of
`scripts/results.py` (corpus, encoders, feature cache), so run `make results` first or point
--corpus / --encoders / --cache elsewhere.

Usage: python scripts/seeds.py --work build/results --seeds 0 1 2 \\
           --run full:full:lambda_con=1e-4 --run two-stage:two-stage --run baseline:baseline
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "talking_head.app.cli"]
SUBSETS = ("SE", "UE")


def parse_run(text: str) -> tuple[str, str, dict]:
    """NAME:VARIANT[:key=value,...] -> (name, variant, model overrides)."""
    name, variant, *rest = text.split(":")
    overrides = {}
    for item in (rest[0].split(",") if rest and rest[0] else []):
        key, value = item.split("=")
        overrides[key] = json.loads(value)
    return name, variant, overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "results")
    parser.add_argument("--corpus", type=Path, help="default: WORK/corpus")
    parser.add_argument("--encoders", type=Path, help="folder with context/ and emotion/ (default: WORK/encoders)")
    parser.add_argument("--cache", type=Path, help="feature cache (default: WORK/cache)")
    parser.add_argument("--config", type=Path, default=ROOT / "scripts" / "demo_training.json")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run", action="append", default=[], help="NAME:VARIANT[:key=value,...] (model overrides)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--table-only", action="store_true", help="write the table from the reports there are")
    args = parser.parse_args(argv)
    runs = [parse_run(r) for r in args.run] or [parse_run(r) for r in ("full:full", "two-stage:two-stage", "baseline:baseline")]
    w = args.work
    corpus, cache = args.corpus or w / "corpus", args.cache or w / "cache"
    encoders = args.encoders or w / "encoders"
    todo = [(name, variant, overrides, seed) for name, variant, overrides in runs for seed in args.seeds
            if not (w / "seeds" / "reports" / f"{name}_s{seed}" / "report.json").is_file()]
    if args.table_only:
        todo = []
    while todo:
        batch, todo = todo[: args.parallel], todo[args.parallel :]
        jobs = [_start(w, corpus, encoders, cache, args.config, args.epochs, *job) for job in batch]
        if any(job.wait() for job in jobs):
            raise SystemExit("a run failed; see its log in WORK/seeds/logs")
    table = seeds_markdown(w / "seeds" / "reports", [r[0] for r in runs], args.seeds)
    (w / "seeds.md").write_text(table + "\n")
    print(table)
    return 0


def _start(w: Path, corpus: Path, encoders: Path, cache: Path, base: Path, epochs: int, name: str, variant: str, overrides: dict, seed: int):
    """Train, then evaluate, one run in a background shell (one thread)."""
    run = f"{name}_s{seed}"
    settings = json.loads(base.read_text())
    settings["seed"] = seed
    settings["model"] = {**settings.get("model", {}), **overrides}
    config = w / "seeds" / "configs" / f"{run}.json"
    logs = w / "seeds" / "logs"
    for folder in (config.parent, logs):
        folder.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(settings, indent=1) + "\n")
    bundle, report = w / "seeds" / "bundles" / run, w / "seeds" / "reports" / run
    enc = ["--context-encoder", encoders / "context", "--emotion-encoder", encoders / "emotion", "--cache", cache]
    train = CLI + ["train", "--data", corpus, "--out", bundle, "--variant", variant, "--epochs", epochs, "--config", config, "--resume", *enc]
    evaluate = CLI + ["evaluate", "--data", corpus, "--bundle", bundle, "--out", report, "--subsets", ",".join(SUBSETS), "--cache", cache]
    script = " && ".join(" ".join(_quote(c) for c in command) for command in (train, evaluate))
    print(f"$ {run}: talking-head train ... && talking-head evaluate ...", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(logs / f"{run}.log", "w") as log:
        return subprocess.Popen(["sh", "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT)


def _quote(part) -> str:
    text = str(part)
    return "'" + text.replace("'", "'\\''") + "'"


def seeds_markdown(reports: Path, names: list[str], seeds: list[int]) -> str:
    """LVE (x1e-4) per seed and their mean +- standard deviation, SE and UE, plus template-only."""
    lines = ["| model | " + " | ".join(f"{s} seed {seed}" for s in SUBSETS for seed in seeds) + " | " + " | ".join(f"{s} mean ± sd" for s in SUBSETS) + " |"]
    lines.append("| --- " * (1 + len(SUBSETS) * (len(seeds) + 1)) + "|")
    template = None
    for name in names:
        values: dict[str, list[float | None]] = {s: [] for s in SUBSETS}
        for seed in seeds:
            path = reports / f"{name}_s{seed}" / "report.json"
            subsets = json.loads(path.read_text())["subsets"] if path.is_file() else {}
            for s in SUBSETS:
                values[s].append(subsets[s]["model"]["lve"] * 1e4 if s in subsets else None)
            if template is None and all(s in subsets for s in SUBSETS):
                template = {s: subsets[s]["template"]["lve"] * 1e4 for s in SUBSETS}
        cells = [f"{v:.2f}" if v is not None else "-" for s in SUBSETS for v in values[s]]
        for s in SUBSETS:
            done = [v for v in values[s] if v is not None]
            cells.append(f"{statistics.mean(done):.2f} ± {statistics.stdev(done):.2f}" if len(done) > 1 else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if template:
        lines.append("| template only (no motion) | " + " | ".join(f"{template[s]:.2f}" for s in SUBSETS for _ in seeds) + " | " + " | ".join(f"{template[s]:.2f}" for s in SUBSETS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
