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
from ..core.head_balance import axis_balance, smooth_head_motion, smoothing_weight
from ..core.model import head_noise
from .dataset import Corpus
from .features import FeatureCache
from .training_data import build_examples


class HeadBalanceError(TalkingHeadError):
    """The bundle or corpus cannot give a head balance (no Gh, no poses, no training takes)."""


def spread_clips(clips: list, count: int) -> list:
    """At most `count` of `clips`, evenly spread over the list (every subject and kind of take)."""
    if len(clips) <= count:
        return clips
    return [clips[i] for i in np.linspace(0, len(clips) - 1, count).round().astype(int)]


@torch.no_grad()
def measure_head_spread(bundle_dir: str | Path, data: str | Path, clips: int = 120, cache: str | Path | None = None,
                        progress: Callable[[int, int], None] | None = None, smoothing_s: float | list[float] | None = None) -> dict:
    """Per-axis std over time (degrees, averaged over takes) of the ground truth's and Gh's head
    rotation on up to `clips` training takes of `data` (Gh's also smoothed with `smoothing_s`, one
    time constant or three for nod, turn and tilt, default the bundle's `head_smoothing_s`), and the mean heard head amplitude over them (None
    without a hearing and head ratios). -> {"truth": [x, y, z], "model": [...], "smoothed":
    [...], "takes": n, "heard_amplitude_mean": a or None, "smoothing_s": s}"""
    bundle_dir, data = Path(bundle_dir), Path(data)
    bundle = ModelBundle.load(bundle_dir)
    cfg = bundle.config
    if bundle.model.head is None or not cfg.head_trained:
        raise HeadBalanceError(f"the bundle {bundle_dir.name} has no trained head-motion synthesizer (Gh): there is no head motion to balance")
    corpus = Corpus(data)
    if corpus.n_vertices != cfg.n_vertices:
        raise HeadBalanceError(f"{data} has faces of {corpus.n_vertices} vertices, the bundle {bundle_dir.name} {cfg.n_vertices}: "
                               "the balance is measured on the corpus the bundle was trained on")
    if not corpus.has_poses:
        raise HeadBalanceError(f"{data} has no head poses (poses/CLIP.npz): nothing to measure Gh against")
    takes = spread_clips(corpus.subset("train"), clips)
    if not takes:
        raise HeadBalanceError(f"{data}: the training split has no takes")
    cache = Path(cache) if cache else data / ".cache"
    windows = (cfg.encode_window_s, cfg.encode_context_s)
    features = FeatureCache(cache / "features", ContextEncoder(bundle.encoder_source("context"), *windows),
                            EmotionEncoder(bundle.encoder_source("emotion"), *windows))
    smoothing_s = cfg.head_smoothing_s if smoothing_s is None else smoothing_s
    weight = smoothing_weight(smoothing_s, cfg.fps)
    truth, model, smoothed, heard = [], [], [], []
    for done, clip in enumerate(takes):
        example = build_examples(corpus, [clip], features, list(cfg.subjects), cfg.k, cache, progress=False)[0]
        if example.has_pose:
            noise = head_noise(done, example.emotion.shape[0], cfg.d_model, sigma=cfg.head_noise_sigma)
            motion = bundle.model.generate(example.context[None], example.emotion[None], torch.tensor([example.subject]), noise=noise, with_head=True)
            truth.append(matrices_to_rotvecs(example.target.rotation.numpy()).std(axis=0))
            rotation = motion.rotation[0].float().numpy()
            model.append(matrices_to_rotvecs(rotation).std(axis=0))
            smoothed.append(matrices_to_rotvecs(smooth_head_motion(rotation, np.zeros((len(rotation), 3), np.float32), weight)[0]).std(axis=0))
            if bundle.emotion_hearing is not None:
                n = len(example.target.rotation)
                probs = bundle.emotion_hearing.take(load_audio(corpus.wav_path(clip.name)), n, cfg.fps)
                amplitude = heard_amplitude(probs, bundle.emotion_hearing.labels, bundle.emotion_prototypes)
                if amplitude is not None:
                    heard.append(float(amplitude.mean()))
        if progress:
            progress(done + 1, len(takes))
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
    config.save(config_path)
    return {**measure, "balance": config.head_axis_balance}


__all__ = ["HeadBalanceError", "measure_head_spread", "spread_clips", "write_head_balance"]
