"""Regenerate the README's results: corpus, encoders, the Table 2 variants, baseline, tuning, figures.

Every step is a documented `talking-head` command, printed before it runs, and is skipped when its
output already exists, so an interrupted run continues where it stopped (delete a step's folder to
redo it). `make results` runs this with WORK=build/results; the whole chain takes about an hour and
a half on a 2-core CPU. With --install-demo the demo model (see pick_demo) is packed into weights/demo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "talking_head.app.cli"]
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"

# Table 2 of the paper plus the baseline; all share corpus, encoders and settings.
RUNS = {  # in training order: the demo model first
    "full": ("full", {}),
    "baseline": ("baseline", {}),
    "two-stage": ("two-stage", {}),
    "single-stage": ("single-stage", {}),
}
TUNING_MODES = ("convex", "direct")


def run(command: list[str], threads: int | None = None, background: bool = False):
    print("$ talking-head " + " ".join(str(c) for c in command[len(CLI):]), flush=True)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if background:
        return subprocess.Popen([str(c) for c in command], env=env)
    subprocess.run([str(c) for c in command], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "results")
    parser.add_argument("--utterances", type=int, default=4000, help="speech set size for the encoders")
    parser.add_argument("--encoder-epochs", type=int, default=4)
    parser.add_argument("--emotion-lr", type=float, default=2e-4, help="fine-tuning rate of the emotion classifier")
    parser.add_argument("--encoder-minutes", type=float, default=40.0, help="training-time cap of the content encoder")
    parser.add_argument("--epochs", type=int, default=8, help="generator epochs per variant")
    parser.add_argument("--config", type=Path, default=ROOT / "scripts" / "demo_training.json", help="training settings for every variant")
    parser.add_argument("--parallel", type=int, default=2, help="variants trained at once (one thread each)")
    parser.add_argument("--report-only", action="store_true", help="evaluate and report the bundles as they are (no further training)")
    parser.add_argument("--install-demo", action="store_true", help="pack the demo model (lowest SE + UE lip error with head motion) into weights/demo")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    corpus, speech, enc, cache = w / "corpus", w / "speech", w / "encoders", w / "cache"

    if not (corpus / "corpus.json").is_file():
        run(CLI + ["corpus", "build", "--out", corpus])
    if not (speech / "labels.jsonl").is_file():
        run(CLI + ["corpus", "speech", "--out", speech, "--utterances", args.utterances])
    if not (enc / "context" / "training.json").is_file():
        run(CLI + ["encoders", "content", "--speech", speech, "--out", enc / "context", "--epochs", args.encoder_epochs, "--minutes", args.encoder_minutes, "--resume"])
    if not (enc / "emotion" / "training.json").is_file():
        run(CLI + ["encoders", "emotion", "--speech", speech, "--out", enc / "emotion", "--init", enc / "context", "--epochs", 3, "--lr", args.emotion_lr, "--minutes", args.encoder_minutes / 2, "--resume"])

    encoders = ["--context-encoder", enc / "context", "--emotion-encoder", enc / "emotion", "--cache", cache]
    # Features first, in one process, so parallel trainings only read the cache.
    todo = [name for name in RUNS if not (w / "bundles" / name / "train_log.csv").is_file() or _unfinished(w / "bundles" / name, args.epochs)]
    if args.report_only:
        todo = []
    if todo:
        run(CLI + ["train", "--data", corpus, "--out", w / "bundles" / "features-only", "--variant", "baseline", "--epochs", "0", *encoders])
    pending = list(todo)
    while pending:
        batch, pending = pending[: args.parallel], pending[args.parallel :]
        jobs = [
            run(CLI + ["train", "--data", corpus, "--out", w / "bundles" / name, "--variant", RUNS[name][0], "--epochs", args.epochs, "--config", _config(w, name, args.config), "--resume", *encoders],
                threads=max(1, (os.cpu_count() or 2) // len(batch)), background=True)
            for name in batch
        ]
        if any(job.wait() for job in jobs):
            raise SystemExit("a training run failed")

    for name in RUNS:
        report = w / "reports" / name
        if not (report / "report.json").is_file():
            run(CLI + ["evaluate", "--data", corpus, "--bundle", w / "bundles" / name, "--out", report, "--subsets", "SN,SE,UN,UE" if name in ("full", "two-stage") else "SE,UE", "--cache", cache])

    demo = pick_demo(w)
    print(f"demo model: {demo} (lowest SE + UE lip error of the variants with head motion)", flush=True)
    if not (w / "reports" / demo / "report.json").is_file():
        raise SystemExit(f"no report for {demo}")
    unseen = json.loads((corpus / "corpus.json").read_text())
    unseen = [s["name"] for s in unseen["subjects"] if s.get("split") == "unseen"]
    styles = w / "styles" / demo
    for mode in TUNING_MODES:
        for subject in unseen:
            style = styles / mode / f"{subject}.json"
            if not style.is_file():
                run(CLI + ["tune", "--bundle", w / "bundles" / demo, "--data", corpus, "--subject", subject, "--mode", mode, "--out", style, "--device", "cpu", "--evaluate", "0"])
    tuning = w / "reports" / f"tuning-{demo}.json"
    if not tuning.is_file():
        from talking_head.training.evaluate import evaluate_styles

        own_pivot_styles(w / "bundles" / demo, styles / "convex", styles / "subject")
        print("$ (evaluate_styles) unseen emotional clips without and with tuned styles", flush=True)
        folders = {"subject": styles / "subject"} | {m: styles / m for m in TUNING_MODES}
        result = evaluate_styles(corpus, w / "bundles" / demo, folders, cache=cache)
        tuning.write_text(json.dumps(result, indent=2) + "\n")

    images = ROOT / "docs" / "images"
    for name in ("lip_distance.png", "head_motion.png"):
        shutil.copy2(w / "reports" / demo / name, images / f"results_{name}")
    if args.install_demo:
        target = ROOT / "weights" / "demo"
        if target.exists():
            shutil.rmtree(target)
        run(CLI + ["bundle", "pack", w / "bundles" / demo, "--out", target])
        (target / "README.md").write_text(model_card(w, target, demo))
    write_readme(args.readme, results_markdown(w))
    print(f"updated {args.readme} (results section) and {images}/results_*.png")
    return 0


def own_pivot_styles(bundle: Path, tuned: Path, out: Path) -> None:
    """The tuned styles' speaking style with its own pivot (no fitted alpha): what choosing the
    speaking style alone buys, separated from fitting the person embedding."""
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.style import Style

    model = ModelBundle.load(bundle)
    pivots = model.model.person_embeddings().detach().numpy()
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(tuned.glob("*.json")):
        style = Style.load(path)
        i = model.config.subject_index(style.subject)
        style.alpha = [float(j == i) for j in range(len(pivots))]
        style.p = [float(x) for x in pivots[i]]
        style.name = f"{style.name} (speaking style {style.subject}, own pivot)"
        style.save(out / path.name)


def pick_demo(w: Path) -> str:
    def lip(name: str) -> float:
        subsets = json.loads((w / "reports" / name / "report.json").read_text())["subsets"]
        return subsets["SE"]["model"]["lve"] + subsets["UE"]["model"]["lve"]

    return min(("full", "two-stage", "single-stage"), key=lip)


def _config(w: Path, name: str, base: Path) -> Path:
    """The shared settings with this run's model overrides."""
    settings = json.loads(base.read_text())
    settings["model"] = {**settings.get("model", {}), **RUNS[name][1]}
    path = w / "configs" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n")
    return path


def _unfinished(bundle: Path, epochs: int) -> bool:
    state = bundle / "checkpoint" / "state.json"
    return not state.is_file() or json.loads(state.read_text())["epoch"] < epochs


def results_markdown(w: Path) -> str:
    reports = {name: json.loads((w / "reports" / name / "report.json").read_text()) for name in RUNS}
    enc = {k: json.loads((w / "encoders" / k / "training.json").read_text()) for k in ("context", "emotion")}
    demo = pick_demo(w)
    tuning = json.loads((w / "reports" / f"tuning-{demo}.json").read_text())
    lines = ["Measured by `make results` on the demo corpus (14 synthetic subjects, 6 seen; test clips never trained on).", ""]
    lines += [
        f"Encoders (trained here on {enc['context']['train_utterances']} synthetic utterances; held-out voices "
        f"{', '.join(enc['context']['held_out_speakers'])}): phone error rate {enc['context']['phone_error_rate_held_out']:.1%}, "
        f"emotion accuracy {enc['emotion']['emotion_accuracy_held_out']:.1%}.",
        "",
        "Faces (Table 2 of the paper; lip = LVE, face = max face vertex error, METHOD.md section 11; x1e-4, lower is better; "
        "SE/UE = seen/unseen subjects' emotional test clips, unseen subjects animated with the first seen subject's style):",
        "",
        "| model | epochs | SE lip | SE face | UE lip | UE face |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = [("template only (no motion)", reports["full"], "template")] + [(name, reports[name], "model") for name in RUNS]
    lam = json.loads((w / "configs" / "full.json").read_text())["model"].get("lambda_con")
    labels = {"full": f"two-stage + Lcon (full, lambda_con {lam})", "baseline": "baseline (FaceFormer-style)"}
    for label, report, key in rows:
        cell = lambda subset, metric, report=report, key=key: f"{report['subsets'][subset][key][metric] * 1e4:.2f}" if subset in report["subsets"] else "-"
        epochs = "-" if key == "template" else str(len((w / "bundles" / label / "train_log.csv").read_text().strip().splitlines()) - 1)
        lines.append(f"| {labels.get(label, label)} | {epochs} | {cell('SE', 'lve')} | {cell('SE', 'max_face')} | {cell('UE', 'lve')} | {cell('UE', 'max_face')} |")
    full = reports[demo]["subsets"]
    if "SN" in full and "UN" in full:
        lines += ["", f"Neutral test clips, {demo} model: SN lip {full['SN']['model']['lve'] * 1e4:.2f} (template only {full['SN']['template']['lve'] * 1e4:.2f}), "
                  f"UN lip {full['UN']['model']['lve'] * 1e4:.2f} (template only {full['UN']['template']['lve'] * 1e4:.2f})."]
    t = tuning["rows"]
    lines += [
        "",
        f"The demo bundle (`weights/demo`) is the {demo} model: the lowest SE + UE lip error of the variants with head motion (all but the baseline).",
        "",
        f"Personalized tuning of the {demo} model (6 clips per unseen subject, one more to stop early; scored on the {tuning['clips']} unseen emotional clips tuning never saw):",
        "",
        "| style | UE lip (LVE x1e-4) | change |",
        "| --- | --- | --- |",
        f"| none (first seen subject's style) | {t['none']['lve'] * 1e4:.2f} | |",
    ]
    if "subject" in t:
        lines.append(f"| speaking style picked by tuning, its own pivot (no fitting) | {t['subject']['lve'] * 1e4:.2f} | {t['subject']['lve_change_percent']:+.1f}% |")
    for mode in TUNING_MODES:
        lines.append(f"| {mode} tuning | {t[mode]['lve'] * 1e4:.2f} | {t[mode]['lve_change_percent']:+.1f}% |")
    div = reports[demo].get("head_diversity", {})
    if div:
        lines += ["", f"Head-motion diversity of the {demo} model (standard deviation over 20 seeds, degrees, per axis):", ""]
        for kind in ("neutral", "emotional"):
            lines.append(f"- {kind} speech ({div[kind]['clip']}): " + ", ".join(f"{x:.2f}" for x in div[kind]["rotation_deg"]))
    lines += ["", "![lip distance](docs/images/results_lip_distance.png)", "", "![head motion](docs/images/results_head_motion.png)"]
    return "\n".join(lines)


def model_card(w: Path, bundle: Path, demo: str) -> str:
    report = json.loads((w / "reports" / demo / "report.json").read_text())
    baseline = json.loads((w / "reports" / "baseline" / "report.json").read_text())
    enc = {k: json.loads((w / "encoders" / k / "training.json").read_text()) for k in ("context", "emotion")}
    corpus = json.loads((w / "corpus" / "corpus.json").read_text())
    config = json.loads((bundle / "config.json").read_text())
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
    se, ue = report["subsets"]["SE"], report["subsets"]["UE"]
    return "\n".join([
        "# Talking Head demo bundle",
        "",
        f"A small model trained entirely on this machine's synthetic demo corpus ({len(corpus['subjects'])} subjects, "
        f"{config['n_vertices']:,}-vertex head of `core/assets/head.ply`), so the add-on animates speech without BIWI or a download. "
        f"{size:.1f} MiB, weights in float16 (widened to float32 on load).",
        "",
        "## What it is",
        f"- Generators: the {demo} variant, the best of the variants with head motion on held-out clips (Gn, Ge with person embeddings of the {len(config['subjects'])} seen subjects "
        f"{', '.join(config['subjects'])}, Gh head motion; Lcon {'with lambda_con ' + str(config['lambda_con']) if config['use_contrastive'] else 'off'}, lambda_div {config['lambda_div']}), "
        f"d_model {config['d_model']}, trained with `talking-head train` (settings in `scripts/demo_training.json`).",
        f"- Content encoder (`encoders/context`): wav2vec2 CTC phone recogniser, about 3.7 M parameters, trained with "
        f"`talking-head encoders content` on {enc['context']['train_utterances']} synthetic utterances. Phone error rate on held-out voices "
        f"({', '.join(enc['context']['held_out_speakers'])}): {enc['context']['phone_error_rate_held_out']:.1%}.",
        f"- Emotion encoder (`encoders/emotion`): wav2vec2 classifier over {', '.join(enc['emotion']['labels'])}, backbone started from "
        f"the content encoder; accuracy on held-out voices {enc['emotion']['emotion_accuracy_held_out']:.1%}.",
        "",
        "## Measured quality (held-out clips of the demo corpus; x1e-4, lower is better)",
        "",
        "| clips | LVE model | LVE baseline | LVE template only |",
        "| --- | --- | --- | --- |",
        f"| seen subjects, emotional (SE) | {se['model']['lve'] * 1e4:.2f} | {baseline['subsets']['SE']['model']['lve'] * 1e4:.2f} | {se['template']['lve'] * 1e4:.2f} |",
        f"| unseen subjects, emotional (UE) | {ue['model']['lve'] * 1e4:.2f} | {baseline['subsets']['UE']['model']['lve'] * 1e4:.2f} | {ue['template']['lve'] * 1e4:.2f} |",
        "",
        "## Rebuild",
        "`make results` (corpus, speech set, encoders, all variants, evaluation, tuning; about an hour and a half on 2 CPU cores), "
        "then `python scripts/results.py --install-demo` packs the chosen model here.",
        "",
        "## Limits",
        "- Trained on synthetic speech (festival, flite, espeak-ng voices) and a rig-driven synthetic head: real voices are outside its "
        "training data, and the lip sync it learned is only as good as the rig's visemes.",
        "- Its head is ours, not BIWI's. A model with BIWI topology needs the BIWI data and the hub encoders "
        "(`facebook/wav2vec2-base-960h` and a wav2vec2 emotion model): see *Training and evaluation* in the project README; "
        "`make demo-biwi BIWI=path/to/BIWI.ply` trains a BIWI-topology demo model on synthetic data instead.",
        "- Small: 2 decoder layers of width 128; trained for minutes, not the paper's 100 epochs.",
        "",
    ])


def write_readme(readme: Path, body: str) -> None:
    text = readme.read_text()
    if MARK_START not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{MARK_START}\n{MARK_END}\n"
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    readme.write_text(f"{head}{MARK_START}\n{body}\n{MARK_END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
