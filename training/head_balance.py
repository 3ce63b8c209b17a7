"""`talking-head bundle head-balance`: measure how a bundle's Gh shares head motion between nod,
turn and tilt against a corpus's ground truth, and write the factors that give it the corpus's
proportions (core/head_balance.py says why and how they apply).

Measured on the corpus's training takes (never the test subsets the README reports on): each
take generated as `animate` makes it from the voice alone (the take's subject, noise seed = its
position in the list), Gh's rotation vectors against the take's poses/CLIP.npz, the std over time
per axis averaged over the takes on both sides. The heard emotion's and a directed emotion's
amplitudes scale all axes alike, so they do not change the proportions and are left out of it.

With an emotion hearing and the corpus's head ratios in the bundle, the same takes also give the
mean of the heard head amplitude (core/emotion_direction.py `heard_amplitude`), which config.json
`heard_head_amplitude_mean` holds and the heard amplitude is divided by: on the training takes Gh
alone already moves as much as the corpus's average take (1.70 against 1.74 degrees, the norm
over the axes, on the demo corpus), and no voice is heard wholly neutral, so the undivided
amplitude raised every take. Run it again after `bundle hearing` or `bundle expressions`.

`--smoothing SECONDS` sets the head smoothing (core/head_balance.py) the balance is measured
with; the balance then also gives back the amplitude the smoothing takes.

`talking-head bundle heard-head` (`fit_heard_head_amplitudes`), after the balance: the head
amplitude per heard class, fitted on the training takes of a corpus whose voices carry their
emotion (a revoiced corpus). The class ratios assume the hearing hears each take's class; it does
not (a neutral take of the revoiced demo corpus is heard 43% neutral, an emotional one 16%), so
the emotional takes moved 23% more than neutral ones where the ground truth moves 46% more. With
w >= 0 fitted by least squares so that Gh's motion (balanced and smoothed) times sum_c p_c w_c
has each take's size (the norm over the axes of the std over time of the rotation vectors),
pulled lightly towards the class ratios (PULL: a class seldom heard keeps a sensible amplitude),
the confusions are taken into account.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..core.audio import load_audio
from ..core.bundle import ModelBundle
from ..core.config import ModelConfig
from ..core.emotion_direction import heard_amplitude
from ..core.encoders import ContextEncoder, EmotionEncoder
from ..core.errors import TalkingHeadError
from ..core.geometry import matrices_to_rotvecs
from ..core.head_balance import axis_balance, finish_head_motion, smooth_head_motion, smoothing_weight
from ..core.model import head_noise
from .dataset import Corpus
from .features import FeatureCache
from .training_data import build_examples


PULL = 0.01  # the pull of the heard head amplitudes towards the class ratios, relative to the data's mean weight


class HeadBalanceError(TalkingHeadError):
    """The bundle or corpus cannot give a head balance (no Gh, no poses, no training takes)."""


def spread_clips(clips: list, count: int) -> list:
    """At most `count` of `clips`, evenly spread over the list (every subject and kind of take)."""
    if len(clips) <= count:
        return clips
    return [clips[i] for i in np.linspace(0, len(clips) - 1, count).round().astype(int)]


def _prepare(bundle_dir: Path, data: Path, clips: int, cache: str | Path | None, purpose: str) -> tuple:
    """The bundle, its config, the corpus, up to `clips` of its training takes and their feature
    cache, or a one-line HeadBalanceError (no Gh, another mesh, no poses). -> (bundle, cfg, corpus, takes, features, cache)"""
    bundle = ModelBundle.load(bundle_dir)
    cfg = bundle.config
    if bundle.model.head is None or not cfg.head_trained:
        raise HeadBalanceError(f"the bundle {bundle_dir.name} has no trained head-motion synthesizer (Gh): there is no head motion to {purpose}")
    corpus = Corpus(data)
    if corpus.n_vertices != cfg.n_vertices:
        raise HeadBalanceError(f"{data} has faces of {corpus.n_vertices} vertices, the bundle {bundle_dir.name} {cfg.n_vertices}: "
                               "measure it on the corpus the bundle was trained on")
    if not corpus.has_poses:
        raise HeadBalanceError(f"{data} has no head poses (poses/CLIP.npz): nothing to measure Gh against")
    takes = spread_clips(corpus.subset("train"), clips)
    if not takes:
        raise HeadBalanceError(f"{data}: the training split has no takes")
    cache = Path(cache) if cache else data / ".cache"
    windows = (cfg.encode_window_s, cfg.encode_context_s)
    features = FeatureCache(cache / "features", ContextEncoder(bundle.encoder_source("context"), *windows),
                            EmotionEncoder(bundle.encoder_source("emotion"), *windows))
    return bundle, cfg, corpus, takes, features, cache


def _gh_takes(bundle, corpus: Corpus, takes: list, features: FeatureCache, cache: Path, progress: Callable[[int, int], None] | None):
    """(clip, example, Gh's rotations (N, 3, 3)) of each take with a head pose, generated as
    `animate` makes it from the voice alone (noise seed = the take's position in the list)."""
    cfg = bundle.config
    for done, clip in enumerate(takes):
        example = build_examples(corpus, [clip], features, list(cfg.subjects), cfg.k, cache, progress=False)[0]
        if example.has_pose:
            noise = head_noise(done, example.emotion.shape[0], cfg.d_model, sigma=cfg.head_noise_sigma)
            motion = bundle.model.generate(example.context[None], example.emotion[None], torch.tensor([example.subject]), noise=noise, with_head=True)
            yield clip, example, motion.rotation[0].float().numpy()
        if progress:
            progress(done + 1, len(takes))


@torch.no_grad()
def measure_head_spread(bundle_dir: str | Path, data: str | Path, clips: int = 120, cache: str | Path | None = None,
                        progress: Callable[[int, int], None] | None = None, smoothing_s: float | list[float] | None = None) -> dict:
    """Per-axis std over time (degrees, averaged over takes) of the ground truth's and Gh's head
    rotation on up to `clips` training takes of `data` (Gh's also smoothed with `smoothing_s`, one
    time constant or three for nod, turn and tilt, default the bundle's `head_smoothing_s`), and
    the mean heard head amplitude over them (None without a hearing and head ratios).
    -> {"truth": [x, y, z], "model": [...], "smoothed": [...], "takes": n, "heard_amplitude_mean":
    a or None, "smoothing_s": s}"""
    bundle_dir, data = Path(bundle_dir), Path(data)
    bundle, cfg, corpus, takes, features, cache = _prepare(bundle_dir, data, clips, cache, "balance")
    smoothing_s = cfg.head_smoothing_s if smoothing_s is None else smoothing_s
    weight = smoothing_weight(smoothing_s, cfg.fps)
    truth, model, smoothed, heard = [], [], [], []
    for clip, example, rotation in _gh_takes(bundle, corpus, takes, features, cache, progress):
        truth.append(matrices_to_rotvecs(example.target.rotation.numpy()).std(axis=0))
        model.append(matrices_to_rotvecs(rotation).std(axis=0))
        smoothed.append(matrices_to_rotvecs(smooth_head_motion(rotation, np.zeros((len(rotation), 3), np.float32), weight)[0]).std(axis=0))
        if bundle.emotion_hearing is not None:
            probs = bundle.emotion_hearing.take(load_audio(corpus.wav_path(clip.name)), len(example.target.rotation), cfg.fps)
            amplitude = heard_amplitude(probs, bundle.emotion_hearing.labels, bundle.emotion_prototypes)
            if amplitude is not None:
                heard.append(float(amplitude.mean()))
    if not truth:
        raise HeadBalanceError(f"{data}: none of its training takes has a head pose")
    return {"truth": np.degrees(np.mean(truth, axis=0)).tolist(), "model": np.degrees(np.mean(model, axis=0)).tolist(),
            "smoothed": np.degrees(np.mean(smoothed, axis=0)).tolist(), "smoothing_s": smoothing_s, "takes": len(truth),
            "heard_amplitude_mean": float(np.mean(heard)) if heard and len(heard) == len(truth) else None}


def write_head_balance(bundle_dir: str | Path, data: str | Path, clips: int = 120, cache: str | Path | None = None,
                       progress: Callable[[int, int], None] | None = None, smoothing_s: float | list[float] | None = None) -> dict:
    """Measure (`measure_head_spread`, Gh as it is, whatever balance the bundle holds) and write
    config.json's `head_axis_balance`, `heard_head_amplitude_mean` and `head_smoothing_s`: the
    balance gives Gh's smoothed motion the corpus's proportions at the size Gh's motion had before
    smoothing. -> the measure with "balance" added"""
    config_path = Path(bundle_dir) / "config.json"
    measure = measure_head_spread(bundle_dir, data, clips, cache, progress, smoothing_s)
    balance = axis_balance(measure["truth"], measure["smoothed"]) * (np.linalg.norm(measure["model"]) / np.linalg.norm(measure["smoothed"]))
    config = ModelConfig.load(config_path)
    config.head_axis_balance = [round(float(b), 4) for b in balance]
    mean = measure["heard_amplitude_mean"]
    config.heard_head_amplitude_mean = None if mean is None else round(mean, 4)
    smoothing = measure["smoothing_s"]
    config.head_smoothing_s = [float(v) for v in smoothing] if isinstance(smoothing, (list, tuple)) else float(smoothing)
    stale = config.heard_head_amplitudes is not None
    config.heard_head_amplitudes = None  # fitted on the previous balance: `bundle heard-head` again
    config.save(config_path)
    return {**measure, "balance": config.head_axis_balance, "heard_head_amplitudes_cleared": stale}


@torch.no_grad()
def fit_heard_head_amplitudes(bundle_dir: str | Path, data: str | Path, clips: int = 200, cache: str | Path | None = None,
                              progress: Callable[[int, int], None] | None = None, write: bool = True) -> dict:
    """Fit config.json's `heard_head_amplitudes` (module docstring) on up to `clips` training takes
    of `data` and write it (unless not `write`). -> {"amplitudes": {label: w}, "takes": n, and per
    way ("truth", "ratios": the class ratios, "fitted"): the emotional over the neutral takes'
    mean head size and its correlation with the truth's take by take}"""
    from scipy.optimize import nnls

    bundle_dir, data = Path(bundle_dir), Path(data)
    bundle, cfg, corpus, takes, features, cache = _prepare(bundle_dir, data, clips, cache, "scale")
    hearing = bundle.emotion_hearing
    if hearing is None:
        raise HeadBalanceError(f"the bundle {bundle_dir.name} has no emotion hearing: nothing hears the voices "
                               "(`talking-head bundle hearing` fits one)")
    labels = list(hearing.labels)
    if len(takes) < len(labels):
        raise HeadBalanceError(f"{data}: {len(takes)} training takes to measure; fitting {len(labels)} amplitudes needs at least {len(labels)}")
    truth, model, heard, emotional = [], [], [], []
    for clip, example, rotation in _gh_takes(bundle, corpus, takes, features, cache, progress):
        rotation = finish_head_motion(rotation, np.zeros((len(rotation), 3), np.float32), cfg)[0]  # balanced and smoothed, as in a take
        truth.append(float(np.linalg.norm(matrices_to_rotvecs(example.target.rotation.numpy()).std(axis=0))))
        model.append(float(np.linalg.norm(matrices_to_rotvecs(rotation).std(axis=0))))
        heard.append(hearing.take(load_audio(corpus.wav_path(clip.name)), len(example.target.rotation), cfg.fps).mean(axis=0))
        emotional.append(clip.emotional)
    if len(truth) < len(labels):
        raise HeadBalanceError(f"{data}: {len(truth)} training takes with head poses measured; fitting {len(labels)} amplitudes needs at least {len(labels)}")
    truth_, model_, heard_, emotional_ = np.array(truth), np.array(model), np.stack(heard).astype(np.float64), np.array(emotional)
    design = model_[:, None] * heard_
    # A light pull towards the class ratios (or one common size without them), so a class the
    # takes are seldom heard as keeps a sensible amplitude instead of whatever fits a few takes.
    class_ratios = heard_amplitude(np.eye(len(labels)), labels, bundle.emotion_prototypes, cfg.heard_head_amplitude_mean)
    # (each take's heard probabilities sum to 1, so one common size scales Gh's motion alone)
    prior = class_ratios if class_ratios is not None else np.full(len(labels), float(model_ @ truth_ / max(float(model_ @ model_), 1e-12)))
    pull = np.sqrt(PULL * np.trace(design.T @ design) / len(labels))
    weights = nnls(np.vstack([design, pull * np.eye(len(labels))]), np.concatenate([truth_, pull * prior]))[0]

    def figures(size: np.ndarray) -> dict:
        contrast = float(size[emotional_].mean() / size[~emotional_].mean()) if emotional_.any() and (~emotional_).any() else float("nan")
        return {"emotional_over_neutral": round(contrast, 3), "correlation_with_truth": round(float(np.corrcoef(size, truth_)[0, 1]), 3),
                "mean_degrees": round(float(np.degrees(size.mean())), 3)}

    if not np.isfinite(weights).all() or weights.max() > 10:
        raise HeadBalanceError(f"{data}: the fitted head amplitudes ({', '.join(f'{w:.3g}' for w in weights)}) are out of range (0-10): "
                               "Gh barely moves the head on these takes")
    report = {"amplitudes": {label: round(float(w), 4) for label, w in zip(labels, weights)}, "takes": len(truth), "truth": figures(truth_),
              "fitted": figures(model_ * (heard_ @ weights))}
    if class_ratios is not None:
        report["ratios"] = figures(model_ * (heard_ @ class_ratios))
    if write:
        config_path = bundle_dir / "config.json"
        config = ModelConfig.load(config_path)
        config.heard_head_amplitudes = [round(float(w), 4) for w in weights]
        config.save(config_path)
    return report


__all__ = ["HeadBalanceError", "fit_heard_head_amplitudes", "measure_head_spread", "spread_clips", "write_head_balance"]
