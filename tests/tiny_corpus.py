"""A tiny BIWI-layout corpus made on the spot: faces that follow the audio's loudness."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import soundfile

from talking_head.core.mesh_io import write_mesh
from talking_head.training.tiny import sphere_mesh

from conftest import speech_like

V = 60


def make_corpus(root: Path, seen=("F2", "M3"), unseen=("F1",), sentences=(1, 2, 33, 37), seconds=1.2, smile_gain=None) -> Path:
    """Subjects differ in how much they smile on emotional takes (`smile_gain`: subject -> gain)."""
    root = Path(root)
    for folder in ("vertices_npy", "wav", "poses"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    mesh = sphere_mesh(V)
    rng = np.random.default_rng(0)
    mouth = rng.standard_normal((V, 3)).astype(np.float32) * 0.01
    smile = rng.standard_normal((V, 3)).astype(np.float32) * 0.01
    templates = {}
    for s_i, subject in enumerate(seen + unseen):
        templates[subject] = mesh.vertices * (1 + 0.05 * s_i)
        for sentence in sentences:
            for emotional in (False, True):
                name = f"{subject}_{'e' if emotional else ''}{sentence:02d}"
                audio = speech_like(seconds * (1.15 if emotional else 1.0), seed=sentence) * (1.5 if emotional else 1.0)
                soundfile.write(str(root / "wav" / f"{name}.wav"), audio, 16_000)
                n = round(25 * len(audio) / 16_000)
                envelope = np.abs(audio[: n * 640].reshape(n, 640)).mean(1)
                envelope = envelope / envelope.max()
                gain = (smile_gain or {}).get(subject, 0.8)
                faces = templates[subject] + envelope[:, None, None] * mouth + (gain if emotional else 0.0) * smile
                np.save(root / "vertices_npy" / f"{name}.npy", faces.reshape(n, -1).astype(np.float32))
                angle = 0.05 * envelope * (2 if emotional else 1)
                rotation = np.stack([_rot_x(a) for a in angle]).astype(np.float32)
                np.savez(root / "poses" / f"{name}.npz", rotation=rotation, translation=np.zeros((n, 3), np.float32))
    np.savez(root / "templates.npz", **templates)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f)
    write_mesh(root / "template.ply", templates[seen[0]], mesh.faces)
    info = {
        "subjects": [{"name": s, "split": "seen"} for s in seen] + [{"name": s, "split": "unseen"} for s in unseen],
        "lip_vertices": list(range(0, 10)),
        "upper_face_vertices": list(range(30, 50)),
        "landmarks": {"upper_lip": 0, "lower_lip": 5},
    }
    (root / "corpus.json").write_text(json.dumps(info))
    return root


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
