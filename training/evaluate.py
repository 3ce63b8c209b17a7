"""`talking-head evaluate`: the paper's metrics per subset, a report, and its figures.

Faces are compared without head motion (BIWI's meshes have the global pose removed): the
prediction is Ge's output `ye` on the clip's subject template. Unseen subjects are animated
with a seen subject's speaking style (`style_subject`), as METHOD.md section 3 says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core.bundle import ModelBundle
from .dataset import SUBSETS, Clip, Corpus
from ..core.errors import TalkingHeadError
from .features import FeatureCache
from .metrics import face_dynamics_deviation, head_motion_diversity, lip_distance, lip_vertex_error, max_face_error, mean_vertex_error
from ..core.model import head_noise, interpolate_frames

DIVERSITY_SAMPLES = 20


def read_indices(path: str | Path) -> np.ndarray:
    """Vertex indices from a file of comma- or whitespace-separated integers (BIWI's lve.txt)."""
    text = Path(path).read_text().replace(",", " ")
    return np.asarray([int(x) for x in text.split()], dtype=np.int64)


class Evaluator:
    """A bundle, a corpus and cached features: predictions for any clip."""

    def __init__(self, bundle: ModelBundle, corpus: Corpus, cache: Path, style_subject: str | None = None, phone_loop: bool = False) -> None:
        self.bundle, self.corpus = bundle, corpus
        context, emotion = bundle.load_encoders()
        self.features = FeatureCache(cache / "features", context, emotion)
        self.style = bundle.config.subject_index(style_subject) if style_subject else 0
        self.phones = None
        if phone_loop:  # Gn reads what `animate` reads by default: the encoder weighed with the heard phones
            from ..core.phone_features import load_for_bundle

            self.phones = load_for_bundle(bundle.path, bundle.config.context_dim)
            if self.phones is None or self.phones.classifier is None:
                raise TalkingHeadError(f"--phone-loop: the bundle {bundle.path.name} has no phone classifier (`talking-head bundle phones`)")

    def subject_index(self, clip: Clip) -> int:
        subjects = self.bundle.config.subjects
        return subjects.index(clip.subject) if clip.subject in subjects else self.style

    @torch.no_grad()
    def predict(self, clip: Clip, seed: int = 0, with_head: bool = False, person: torch.Tensor | None = None, subject: str | None = None):
        """(emotional faces (N, V, 3) on the clip's template, FaceMotion) for the clip's N frames;
        `subject` overrides the speaking style (Gn's subject), as a tuned style does."""
        cfg, model = self.bundle.config, self.bundle.model
        n = len(self.corpus.vertices(clip.name))
        feats = self.features.get(self.corpus.wav_path(clip.name))
        context = interpolate_frames(feats["context"].unsqueeze(0), cfg.k * n)
        if self.phones is not None:
            context = self._heard(clip, context)
        emotion = interpolate_frames(feats["emotion"].unsqueeze(0), cfg.k * n)
        motion = model.generate(context, emotion, torch.tensor([cfg.subject_index(subject) if subject else self.subject_index(clip)]), head_noise(seed, cfg.k * n, cfg.d_model, sigma=cfg.head_noise_sigma), person=person, with_head=with_head)
        faces = self.corpus.template(clip.subject) + motion.emotional[0].numpy().reshape(n, -1, 3)
        return faces, motion

    def _heard(self, clip: Clip, context: torch.Tensor) -> torch.Tensor:
        """The context weighed with the heard phones (core/phone_loop.py) inside silero-vad's speech, as
        core/pipeline.py `Animator.heard_phones` and `features` make it."""
        from ..core import pauses
        from ..core.audio import load_audio
        from ..core.phone_loop import heard_phones

        samples = load_audio(self.corpus.wav_path(clip.name))
        heard = pauses.spoken(heard_phones(samples), pauses.speech_segments(samples))
        cfg = self.bundle.config
        return context if heard is None else self.phones.weigh(context, heard, cfg.k * cfg.fps)


def evaluate(
    data: str | Path,
    bundle_path: str | Path,
    out: str | Path,
    subsets: tuple[str, ...] | list[str] = SUBSETS,
    lip: str | Path | None = None,
    upper_face: str | Path | None = None,
    style_subject: str | None = None,
    cache: str | Path | None = None,
    split: str = "paper",
    figures: bool = True,
    progress: bool = True,
    phone_loop: bool = False,
) -> dict:
    """Metrics per subset for the bundle and a template-only prediction; JSON, Markdown, PNGs."""
    corpus = Corpus(data, split)
    bundle = ModelBundle.load(bundle_path)
    if bundle.config.n_vertices != corpus.n_vertices:
        raise TalkingHeadError(f"bundle has {bundle.config.n_vertices} vertices, corpus {corpus.n_vertices}")
    lip_idx, upper_idx = _regions(corpus, lip, upper_face)
    evaluator = Evaluator(bundle, corpus, Path(cache) if cache else Path(data) / ".cache", style_subject, phone_loop)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"bundle": str(bundle_path), "corpus": str(data), "variant": bundle.config.variant, "phone_loop": phone_loop, "subsets": {}}
    for subset in subsets:
        clips = corpus.subset(subset)
        if not clips:
            continue
        rows = {"model": [], "template": []}
        for clip in tqdm(clips, desc=f"evaluate {subset}", unit="clip", disable=not progress, leave=False):
            target = corpus.vertices(clip.name)
            template = corpus.template(clip.subject)
            prediction, _ = evaluator.predict(clip)
            for name, faces in (("model", prediction), ("template", np.broadcast_to(template, target.shape))):
                rows[name].append(_clip_metrics(faces, target, template, lip_idx, upper_idx))
        report["subsets"][subset] = {name: _mean(r) | {"clips": len(r)} for name, r in rows.items()}
    report["head_diversity"] = _head_diversity(evaluator, corpus, out if figures else None)
    if figures:
        _lip_figure(evaluator, corpus, out / "lip_distance.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown_table(report) + "\n")
    return report


def _clip_metrics(faces, target, template, lip_idx, upper_idx) -> dict[str, float]:
    return {
        "lve": lip_vertex_error(faces, target, lip_idx),
        "max_face": max_face_error(faces, target),
        "mean_face": mean_vertex_error(faces, target),
        "fdd": face_dynamics_deviation(faces, target, template, upper_idx),
    }


def _mean(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _regions(corpus: Corpus, lip, upper_face) -> tuple[np.ndarray, np.ndarray]:
    if lip and upper_face:
        return read_indices(lip), read_indices(upper_face)
    regions = corpus.regions()
    if regions is None:
        raise TalkingHeadError("no lip / upper-face regions: pass --lip FILE --upper-face FILE (BIWI: lve.txt, fdd.txt)")
    return regions


def _diversity_clips(corpus: Corpus) -> tuple[Clip, Clip] | None:
    """An emotional test clip and its neutral take: the same sentence, both ways."""
    for subset in ("SE", "UE"):
        for clip in corpus.subset(subset):
            if clip.neutral_take in corpus.clips:
                return corpus.clips[clip.neutral_take], clip
    return None


def _head_diversity(evaluator: Evaluator, corpus: Corpus, figures: Path | None) -> dict:
    if evaluator.bundle.model.head is None:
        return {}
    pair = _diversity_clips(corpus)
    if pair is None:
        return {}
    result, motions = {}, {}
    for label, clip in zip(("neutral", "emotional"), pair):
        samples = [evaluator.predict(clip, seed=s, with_head=True)[1] for s in range(DIVERSITY_SAMPLES)]
        rotations = np.stack([m.rotation[0].numpy() for m in samples])
        translations = np.stack([m.translation[0].numpy() for m in samples])
        result[label] = {"clip": clip.name, **head_motion_diversity(rotations, translations)}
        motions[label] = (clip.name, rotations)
    if figures:
        _head_figure(motions, figures / "head_motion.png")
    return result


def _head_figure(motions: dict, path: Path) -> None:
    from .metrics import rotation_angles

    plt = _pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(10, 6), sharex="col", sharey="row")
    for col, (label, (name, rotations)) in enumerate(motions.items()):
        angles = rotation_angles(rotations)  # (S, N, 3)
        t = np.arange(angles.shape[1]) / 25
        for row, axis in enumerate("xyz"):
            axes[row, col].plot(t, angles[:, :, row].T, lw=0.7, alpha=0.6)
            axes[row, col].set_ylabel(f"rotation {axis} (deg)")
        axes[0, col].set_title(f"{label} speech ({name}), {len(rotations)} samples")
        axes[2, col].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _lip_figure(evaluator: Evaluator, corpus: Corpus, path: Path) -> None:
    landmarks = corpus.info.get("landmarks", {})
    clips = corpus.subset("SE") or corpus.subset("UE")
    if "upper_lip" not in landmarks or not clips:
        return
    clip = clips[0]
    prediction, _ = evaluator.predict(clip)
    target = corpus.vertices(clip.name)
    up, low = landmarks["upper_lip"], landmarks["lower_lip"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    t = np.arange(len(target)) / 25
    ax.plot(t, lip_distance(target, up, low), label="ground truth", color="k")
    ax.plot(t, lip_distance(prediction, up, low), label="prediction", color="tab:red")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("lip distance")
    ax.set_title(f"lip distance over time, {clip.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown_table(report: dict) -> str:
    """Subsets x metrics, LVE and max face error x1e-4, FDD x1e-5 (the paper's units)."""
    lines = [
        "| subset | prediction | clips | LVE (x1e-4) | max face err (x1e-4) | mean vertex err | FDD (x1e-5) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for subset, by_name in report["subsets"].items():
        for name, m in by_name.items():
            lines.append(
                f"| {subset} | {name} | {m['clips']} | {m['lve'] * 1e4:.3f} | {m['max_face'] * 1e4:.3f} | {m['mean_face']:.5f} | {m['fdd'] * 1e5:.3f} |"
            )
    for label, d in report.get("head_diversity", {}).items():
        rot = ", ".join(f"{x:.3f}" for x in d["rotation_deg"])
        lines.append(f"\nHead-motion diversity, {label} speech ({d['clip']}): rotation std per axis (deg) {rot}")
    return "\n".join(lines)


def evaluate_styles(
    data: str | Path,
    bundle_path: str | Path,
    styles: dict[str, str | Path],
    lip: str | Path | None = None,
    upper_face: str | Path | None = None,
    style_subject: str | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Unseen emotional clips animated without a tuned style and with each set of tuned styles.

    `styles` maps a label (e.g. "convex", "direct") to a folder of `{subject}.json` styles from
    `talking-head tune`. Clips any style was tuned or early-stopped on are left out of every row,
    so all rows score the same clips, none of which tuning has seen.
    """
    from ..core.tuning import Style

    corpus = Corpus(data)
    bundle = ModelBundle.load(bundle_path)
    lip_idx, upper_idx = _regions(corpus, lip, upper_face)
    evaluator = Evaluator(bundle, corpus, Path(cache) if cache else Path(data) / ".cache", style_subject)
    loaded = {label: {p.stem: Style.load(p) for p in sorted(Path(folder).glob("*.json"))} for label, folder in styles.items()}
    used = {Path(audio).stem for per_subject in loaded.values() for style in per_subject.values() for audio, _ in style.clips}
    subjects = sorted(set.intersection(*(set(s) for s in loaded.values()))) if loaded else []
    if not subjects:
        raise TalkingHeadError("no subject has a tuned style in every styles folder")
    clips = [c for c in corpus.subset("UE") if c.subject in subjects and c.name not in used]
    rows: dict[str, dict[str, list]] = {label: {} for label in ["none", *loaded]}
    for clip in tqdm(clips, desc="evaluate styles", unit="clip", disable=not progress, leave=False):
        target = corpus.vertices(clip.name)
        template = corpus.template(clip.subject)
        for label in rows:
            style = None if label == "none" else loaded[label][clip.subject]
            person = None if style is None else torch.tensor(style.p, dtype=torch.float32).unsqueeze(0)
            faces, _ = evaluator.predict(clip, person=person, subject=style.subject if style else None)
            rows[label].setdefault(clip.subject, []).append(_clip_metrics(faces, target, template, lip_idx, upper_idx))
    result = {"bundle": str(bundle_path), "clips": len(clips), "subjects": subjects, "rows": {}}
    for label, per_subject in rows.items():
        everything = [m for ms in per_subject.values() for m in ms]
        result["rows"][label] = _mean(everything) | {"per_subject_lve": {s: _mean(ms)["lve"] for s, ms in per_subject.items()}}
    none = result["rows"]["none"]["lve"]
    for label in loaded:
        result["rows"][label]["lve_change_percent"] = 100.0 * (result["rows"][label]["lve"] - none) / none
    return result
