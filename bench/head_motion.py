"""Head motion: how much the head turns, from seed to seed and against the ground truth.

A measurement before any retraining of Gh. Head rotations (`Animation.rotation`, (N, 3, 3)) are
turned into x / y / z Euler angles in degrees (scipy's extrinsic "xyz": x the nod, y the turn,
z the tilt; for the few degrees a head turns, about the rotation vector's components that
training/metrics.py `rotation_angles` gives).

1. Clips: the shared 11 s real recording (../shared/speech/real_speech_11s.wav, relative to the
   repository root, read at run time, never copied) and samples/demo_speech.wav, each generated
   with --seeds seeds (default 5, 0..4). Per axis: the std over time, averaged over the seeds
   (how much the head moves), and the std between seeds (per frame, across the seeds, averaged
   over time: how much the noise decides).
2. A corpus in the BIWI layout (--data DIR, optional; `talking-head corpus build` writes one):
   for the paper's test subsets as `talking-head evaluate` reads them (training/dataset.py: SN,
   SE seen, UN, UE unseen, paper split), at most --clips clips each (spread over the subset), the
   std over time per axis of the ground-truth head pose (poses/CLIP.npz) and of the model's (seed
   0, the clip's speaking style when the bundle knows the subject, else the first), averaged over
   the clips, per subset and for emotional (SE, UE) vs neutral (SN, UN) takes.

The model runs as `talking-head animate` does (encoders, then Gn, Ge, Gh), one thread, fp32.
Usage: python bench/head_motion.py [--bundle weights/demo] [--data CORPUS] [--clips 20]
       [--seeds 5] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIP = ROOT.parent / "shared" / "speech" / "real_speech_11s.wav"
DEMO_CLIP = ROOT / "samples" / "demo_speech.wav"
AXES = ("x", "y", "z")


# ---- pure functions (tested in tests/test_head_motion_bench.py) ----

def euler_degrees(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) extrinsic x, y, z Euler angles in degrees."""
    from scipy.spatial.transform import Rotation

    rotation = np.asarray(rotation, np.float64)
    flat = rotation.reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_euler("xyz", degrees=True).reshape(rotation.shape[:-2] + (3,))


def std_over_time(angles: np.ndarray) -> np.ndarray:
    """(S, N, 3) angles of S takes -> (3,) per axis the std over the N frames, averaged over takes."""
    return np.asarray(angles, np.float64).std(axis=1).mean(axis=0)


def std_between_seeds(angles: np.ndarray) -> np.ndarray:
    """(S, N, 3) angles of S seeds of one clip -> (3,) per axis the std across seeds of each frame,
    averaged over the frames."""
    return np.asarray(angles, np.float64).std(axis=0).mean(axis=0)


def jitter(angles: np.ndarray) -> np.ndarray:
    """(S, N, 3) -> (3,) per axis the std of the frame-to-frame steps over the std over time,
    averaged over takes: near 0 for smooth motion, about 1.4 for white noise."""
    a = np.asarray(angles, np.float64)
    return (np.diff(a, axis=1).std(axis=1) / np.maximum(a.std(axis=1), 1e-9)).mean(axis=0)


def axes(values: np.ndarray) -> dict[str, float]:
    return {axis: round(float(v), 4) for axis, v in zip(AXES, values)}


# ---- the model ----

@torch.no_grad()
def model_rotations(animator, samples: np.ndarray, seeds: list[int], subject: str | None = None, frames: int | None = None,
                    heard: list | None = None) -> np.ndarray:
    """(S, N, 3, 3) head rotations of one clip for each seed (features computed once). `frames`:
    generate that many face frames (a corpus clip's ground-truth length) instead of the sound's.
    `heard`: gets the clip's mean emotion probabilities (what the voice was heard as: the bundle's
    emotion hearing when it has one, which also scales the head as `animate` does, else the
    emotion encoder whose features Gh reads). The bundle's head_axis_balance and head_smoothing_s apply, as in `animate`."""
    from talking_head.core.emotion_direction import heard_amplitude, scale_head_motion
    from talking_head.core.head_balance import finish_head_motion
    from talking_head.core.audio import frame_count
    from talking_head.core.model import head_noise, interpolate_frames

    bundle, cfg = animator.bundle, animator.bundle.config
    context, emotion, probs = animator.features(samples)
    hearing = bundle.emotion_hearing
    n = frames if frames is not None else frame_count(len(samples), cfg.fps)
    if hearing is not None:
        probs = torch.from_numpy(hearing.take(samples, n, cfg.fps))
    if heard is not None:
        heard.append(probs.float().mean(0).numpy())
    if frames is not None:
        context = interpolate_frames(context, cfg.k * frames)
        emotion = interpolate_frames(emotion, cfg.k * frames)
    index = torch.tensor([cfg.subject_index(subject) if subject in cfg.subjects else 0])
    out = []
    for seed in seeds:
        motion = bundle.model.generate(context, emotion, index, noise=head_noise(seed, emotion.shape[1], cfg.d_model, sigma=cfg.head_noise_sigma), with_head=True)
        rotation = motion.rotation[0].float().numpy()
        amplitude = None if hearing is None else heard_amplitude(probs.numpy(), hearing.labels, bundle.emotion_prototypes, cfg.heard_head_amplitude_mean,
                                                                   cfg.heard_head_amplitudes)
        if amplitude is not None:
            rotation = scale_head_motion(rotation, np.zeros((len(rotation), 3), np.float32), amplitude)[0]
        out.append(finish_head_motion(rotation, np.zeros((len(rotation), 3), np.float32), cfg)[0])
    return np.stack(out)


def clip_figures(animator, path: Path, seeds: list[int]) -> dict:
    from talking_head.core.audio import load_audio

    angles = euler_degrees(model_rotations(animator, load_audio(path), seeds))
    return {"frames": int(angles.shape[1]), "seeds": len(seeds), "std_over_time_deg": axes(std_over_time(angles)),
            "std_between_seeds_deg": axes(std_between_seeds(angles)), "jitter": axes(jitter(angles))}


def corpus_figures(animator, data: Path, clips_per_subset: int) -> dict:
    from talking_head.core.audio import load_audio
    from talking_head.training.dataset import SUBSETS, Corpus
    from talking_head.training.head_balance import spread_clips

    corpus = Corpus(data)
    if not corpus.has_poses:
        return {"error": f"{data.name} has no poses/ folder: no ground-truth head motion"}
    report: dict = {"subsets": {}}
    pooled: dict[str, dict[str, list]] = {"emotional": {"truth": [], "model": [], "heard": []}, "neutral": {"truth": [], "model": [], "heard": []}}
    for subset in SUBSETS:
        truth_rows, model_rows, truth_jitter, model_jitter, heard = [], [], [], [], []
        for clip in spread_clips(corpus.subset(subset), clips_per_subset):
            poses = corpus.poses(clip.name)
            if poses is None:
                continue
            truth = euler_degrees(poses[0])
            model = euler_degrees(model_rotations(animator, load_audio(corpus.wav_path(clip.name)), [0], clip.subject, len(truth), heard))
            truth_rows.append(std_over_time(truth[None]))
            model_rows.append(std_over_time(model))
            truth_jitter.append(jitter(truth[None]))
            model_jitter.append(jitter(model))
        if not truth_rows:
            continue
        group = pooled["emotional" if subset.endswith("E") else "neutral"]
        group["truth"] += truth_rows
        group["model"] += model_rows
        group["heard"] += heard
        group.setdefault("truth_jitter", []).extend(truth_jitter)
        group.setdefault("model_jitter", []).extend(model_jitter)
        report["subsets"][subset] = {"clips": len(truth_rows), "truth_std_over_time_deg": axes(np.mean(truth_rows, axis=0)),
                                     "model_std_over_time_deg": axes(np.mean(model_rows, axis=0))}
    for name, group in pooled.items():
        if group["truth"]:
            report[name] = {"clips": len(group["truth"]), "truth_std_over_time_deg": axes(np.mean(group["truth"], axis=0)),
                            "model_std_over_time_deg": axes(np.mean(group["model"], axis=0)),
                            "truth_jitter": axes(np.mean(group["truth_jitter"], axis=0)), "model_jitter": axes(np.mean(group["model_jitter"], axis=0)),
                            # mean emotion probabilities: if they are alike for both groups, the voices carry nothing for Gh to move by
                            "heard_as": dict(zip(animator.bundle.emotion_hearing.labels if animator.bundle.emotion_hearing else animator.emotion.labels, np.round(np.mean(group["heard"], axis=0), 3).tolist()))}
    return report


def _line(label: str, values: dict[str, float]) -> str:
    return f"{label:<38}" + "  ".join(f"{axis} {value:7.3f}" for axis, value in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--data", type=Path, help="a corpus in the BIWI layout with poses/ (ground-truth head motion)")
    parser.add_argument("--clips", type=int, default=20, help="at most this many clips per test subset")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator

    start = time.time()
    animator = Animator(ModelBundle.load(args.bundle), "cpu", "fp32")
    seeds = list(range(args.seeds))
    report: dict = {"bundle": args.bundle.name, "seeds": seeds, "clips": {}}
    print(f"head rotation, Euler degrees (x nod, y turn, z tilt); bundle {args.bundle.name}, seeds {seeds[0]}-{seeds[-1]}")
    for name, path in (("real_speech_11s", REAL_CLIP), ("demo_speech", DEMO_CLIP)):
        if not path.is_file():
            print(f"{name}: {path.name} not found, skipped")
            continue
        figures = clip_figures(animator, path, seeds)
        report["clips"][name] = figures
        print(f"{name} ({figures['frames']} frames)")
        print(_line("  std over time (mean of seeds)", figures["std_over_time_deg"]))
        print(_line("  std between seeds (mean of frames)", figures["std_between_seeds_deg"]))
        print(_line("  jitter (step std / std)", figures["jitter"]))
    if args.data:
        figures = corpus_figures(animator, args.data, args.clips)
        report["corpus"] = figures
        if "error" in figures:
            print(figures["error"])
        else:
            print(f"corpus: std over time per clip, averaged over at most {args.clips} clips per subset (model: seed 0)")
            for label, row in [*figures["subsets"].items(), *((k, figures[k]) for k in ("emotional", "neutral") if k in figures)]:
                print(f"{label} ({row['clips']} clips)")
                print(_line("  ground truth", row["truth_std_over_time_deg"]))
                print(_line("  model", row["model_std_over_time_deg"]))
                if "truth_jitter" in row:
                    print(_line("  jitter, ground truth", row["truth_jitter"]))
                    print(_line("  jitter, model", row["model_jitter"]))
                if "heard_as" in row:
                    print("  heard as (mean emotion probabilities): " + ", ".join(f"{k} {v:.3f}" for k, v in row["heard_as"].items()))
    report["seconds"] = round(time.time() - start, 1)
    print(f"{report['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
