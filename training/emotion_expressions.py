"""`talking-head bundle expressions`: per emotion class, the expression the corpus shows and the
model leaves out, so that `--emotion happy:1` gives a face that looks happy.

Why: directing by prototypes (core/emotion_direction.py) feeds Ge what the average happy clip
sounded like. When the encoder hears little emotion in voices (the demo bundle's), the prototypes
hardly differ and Ge makes almost the same face for angry and happy (0.02 mm apart on average).
Two ways to make Ge itself follow a direction were tried and not kept (README, *Direct the
emotion*): offsets in the emotion-feature space fitted through the frozen Ge, teacher-forced
(Ge copies the expression from the ground truth's previous frame, so the offsets learnt almost
nothing) and with Ge running free (13% less error on held-out takes, but the offsets moved the
lips as much as the brows: a single-stage Ge reads part of the mouth from those features, and
sad opened the mouth twice as wide).

What is kept: the directed take is made as before (Ge reads the prototype mix), and then a
learned shape per class is added to its faces, weighted by the direction:

    ye'_t = ye_t + sum_c w_c(t) X_c

X (C, V, 3) is fitted by least squares over the corpus's training takes: each take's faces
generated as at inference with its labelled direction (class c at the labelled intensity,
`frame_weights`), and X regressed so that sum_c w_c(t) X_c explains what those faces miss of the
corpus's (ridge-regularised, no intercept; neutral takes have w = 0 and anchor it; the neutral
class has no shape). The model's weights do not change and without a direction nothing is
added: a take without one is exactly what it was (tested).

The head likewise: under a class's prototypes Gh moves the head less than the corpus's takes of
that class do (prototypes are averages), and the corpus moves it more for anger than for
sadness. Per class a gain g_c = (the corpus's head amplitude over its takes of c) / (Gh's over
the same takes directed as c), amplitude being `head_amplitude`; a directed take's angles and
translation are then scaled by a weighted mean of 1 and the gains (core/emotion_direction.py
`direct_head_motion`). Neutral takes, directed neutral:1, give the neutral class's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..core.bundle import ModelBundle
from ..core.emotion_direction import PROTOTYPES, EmotionPrototypes, add_shapes, mix_prototypes
from ..core.encoders import ContextEncoder, EmotionEncoder
from ..core.errors import TalkingHeadError
from ..core.geometry import matrices_to_rotvecs
from ..core.model import FaceMotion, head_noise
from .corpus.emotions import EMOTIONS
from .dataset import Clip, Corpus
from .features import FeatureCache
from .training_data import Example, build_examples

RIDGE = 1e-3  # times the mean diagonal of W^T W


class ExpressionsError(TalkingHeadError):
    """The bundle or corpus cannot give learned expressions (no emotion stage, no labels)."""


def frame_weights(corpus_root: Path, clip: Clip, frames: int, labels: list[str]) -> np.ndarray:
    """(N, C) the labelled weight per frame of each expressive class: an emotional take's class at
    its intensity (emotions/CLIP.npz, written by `talking-head corpus build`); zeros for neutral
    takes and for the neutral class (neutral adds no shape)."""
    weights = np.zeros((frames, len(labels)), np.float32)
    if not clip.emotional:
        return weights
    path = corpus_root / "emotions" / f"{clip.name}.npz"
    if not path.is_file():
        raise ExpressionsError(f"{path} is missing: learned expressions need the corpus's emotion labels (`talking-head corpus build` writes them)")
    with np.load(path) as data:
        label, intensity = data["label"].astype(int), data["intensity"].astype(np.float32)
    for t in range(min(frames, len(label))):
        name = EMOTIONS[label[t]] if 0 <= label[t] < len(EMOTIONS) else None
        if name in labels and name != "neutral":
            weights[t, labels.index(name)] = intensity[t]
    return weights


@torch.no_grad()
def _directed_take(bundle: ModelBundle, example: Example, weights: np.ndarray, seed: int = 0, with_head: bool = False) -> FaceMotion:
    """A take generated as `animate` makes it with the direction `weights` (N, C) at each frame
    (the prototype mix; the voice keeps 1 - sum): Ge's faces as displacements (1, N, 3V) and,
    `with_head`, the head motion of noise seed `seed` (Gh decoded only when it is asked for)."""
    cfg = bundle.config
    steps = np.repeat(weights, cfg.k, axis=0)  # (kN, C): face frame i's weights on its k audio steps
    directed = mix_prototypes(example.emotion[None], steps, np.maximum(0.0, 1.0 - steps.sum(axis=1)), bundle.emotion_prototypes)
    noise = head_noise(seed, directed.shape[1], cfg.d_model, sigma=cfg.head_noise_sigma)
    return bundle.model.generate(example.context[None], directed, torch.tensor([example.subject]), noise=noise,
                                 with_head=with_head)


def head_amplitude(rotation: np.ndarray) -> float:
    """How much a head moves over a take: the norm over axes of the std over time of its
    rotation vectors (N, 3, 3) -> radians."""
    rotvec = matrices_to_rotvecs(rotation)
    return float(np.sqrt(rotvec.var(axis=0).sum()))


def fit_expressions(bundle_dir: str | Path, data: str | Path, cache: str | Path | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> EmotionPrototypes:
    """Fit X (and, for a bundle with Gh and a corpus with poses, the head gains) on the corpus's
    training takes, measure X on its validation takes, write both into
    BUNDLE/emotion_prototypes.safetensors (the prototypes stay), return the prototypes."""
    bundle_dir, data = Path(bundle_dir), Path(data)
    bundle = ModelBundle.load(bundle_dir)
    cfg = bundle.config
    if bundle.model.emotion is None:
        raise ExpressionsError(f"the bundle {bundle_dir.name} has no emotion stage (Ge): there is nothing to direct")
    prototypes = bundle.emotion_prototypes
    if prototypes is None:
        raise ExpressionsError(f"the bundle {bundle_dir.name} has no emotion prototypes: build them first with `talking-head bundle emotions`")
    labels = list(prototypes.labels)
    corpus = Corpus(data)
    if corpus.n_vertices != cfg.n_vertices:
        raise ExpressionsError(f"{data} has faces of {corpus.n_vertices} vertices, the bundle {bundle_dir.name} {cfg.n_vertices}: "
                               "learned expressions need the corpus the bundle's faces were trained on")
    cache = Path(cache) if cache else data / ".cache"
    windows = (cfg.encode_window_s, cfg.encode_context_s)
    features = FeatureCache(cache / "features", ContextEncoder(bundle.encoder_source("context"), *windows),
                            EmotionEncoder(bundle.encoder_source("emotion"), *windows))
    gram = np.zeros((len(labels), len(labels)))
    product = np.zeros((len(labels), 3 * cfg.n_vertices))
    clips = corpus.subset("train")
    if not any(clip.emotional for clip in clips):
        raise ExpressionsError(f"{data}: the training split has no emotional take to learn expressions from")
    for clip in clips + corpus.subset("val"):  # every label read before the first take's seconds are spent
        if clip.emotional:
            frame_weights(data, clip, 0, labels)
    heads = bundle.model.head is not None and corpus.has_poses
    amplitudes: dict[str, list[tuple[float, float]]] = {name: [] for name in labels}  # class -> [(corpus's, Gh's)]
    for done, clip in enumerate(clips):
        if clip.emotional or (heads and "neutral" in labels):
            example = build_examples(corpus, [clip], features, list(cfg.subjects), cfg.k, cache, progress=False)[0]
            target = example.target.emotional.numpy()
            weights = frame_weights(data, clip, len(target), labels)
            if clip.emotional:
                take = _directed_take(bundle, example, weights, seed=done, with_head=heads)
                gram += weights.astype(np.float64).T @ weights
                product += weights.astype(np.float64).T @ (target - take.emotional[0].numpy())
                label = labels[int(np.argmax(weights.sum(axis=0)))] if weights.any() else None
            else:  # a neutral take, directed neutral:1: the neutral class's head motion
                take = _directed_take(bundle, example, np.eye(len(labels), dtype=np.float32)[[labels.index("neutral")] * len(target)], seed=done,
                                      with_head=True)
                label = "neutral"
            if heads and example.has_pose and label is not None:
                amplitudes[label].append((head_amplitude(example.target.rotation.numpy()), head_amplitude(take.rotation[0].numpy())))
        if progress:
            progress("fitting", done + 1, len(clips))
    ridge = RIDGE * max(float(np.trace(gram)) / len(labels), 1e-12)
    expressions = np.linalg.solve(gram + ridge * np.eye(len(labels)), product)  # (C, 3V); zero for a class no take shows
    prototypes.expressions = expressions.reshape(len(labels), cfg.n_vertices, 3).astype(np.float32)
    prototypes.expressions_measure = _measure(bundle, corpus, data, features, cache, labels, prototypes.expressions)
    if heads:
        # g_c: the corpus's head motion of class c over Gh's under the class's direction (1: no take of it)
        prototypes.head_gains = np.array([np.mean([a for a, _ in amplitudes[name]]) / max(np.mean([b for _, b in amplitudes[name]]), 1e-9)
                                          if amplitudes[name] else 1.0 for name in labels], np.float32)
        prototypes.expressions_measure["head_amplitude_degrees"] = {
            name: {"corpus": round(float(np.degrees(np.mean([a for a, _ in v]))), 3), "directed": round(float(np.degrees(np.mean([b for _, b in v]))), 3), "takes": len(v)}
            for name, v in amplitudes.items() if v}
    prototypes.save(bundle_dir / PROTOTYPES)
    return prototypes


def _measure(bundle: ModelBundle, corpus: Corpus, data: Path, features: FeatureCache, cache: Path, labels: list[str], expressions: np.ndarray) -> dict:
    """Mean squared vertex error of the validation split's emotional takes, generated with the
    voice alone, with their labelled direction (prototypes), and with it plus the expressions."""
    cfg = bundle.config
    errors: dict[str, list[float]] = {"voice": [], "prototypes": [], "expressions": []}
    clips = [clip for clip in corpus.subset("val") if clip.emotional]
    for clip in clips:
        example = build_examples(corpus, [clip], features, list(cfg.subjects), cfg.k, cache, progress=False)[0]
        target = example.target.emotional.numpy().reshape(-1, cfg.n_vertices, 3)
        weights = frame_weights(data, clip, len(target), labels)
        voice = _directed_take(bundle, example, np.zeros_like(weights)).emotional[0].numpy()
        directed = _directed_take(bundle, example, weights).emotional[0].numpy().reshape(target.shape)
        added = add_shapes(directed.copy(), weights, expressions)
        for name, faces in (("voice", voice.reshape(target.shape)), ("prototypes", directed), ("expressions", added)):
            errors[name].append(float(((faces - target) ** 2).sum(-1).mean()))
    return {"takes": len(clips), **{f"{name}_error": float(np.mean(v)) if v else None for name, v in errors.items()}}
