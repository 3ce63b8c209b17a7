"""The demo corpus: build a tiny one (2 subjects x 3 sentences) and check what a user would check."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from talking_head.training.corpus.phones import BILABIALS, OPEN_VOWELS

SHARED = Path(__file__).resolve().parents[2] / "shared"
TOOLS = all(shutil.which(t) for t in ("festival", "flite", "espeak-ng"))
needs_tools = pytest.mark.skipif(not TOOLS, reason="speech tools missing: run scripts/install-speech-tools.sh")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not TOOLS:
        pytest.skip("speech tools missing: run scripts/install-speech-tools.sh")
    from talking_head.training.corpus.build import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, n_subjects=2, n_sentences=3, seed=0, progress=False)
    return out


def _info(corpus: Path) -> dict:
    return json.loads((corpus / "corpus.json").read_text())


def _frame_phones(corpus: Path, clip: str, n: int) -> np.ndarray:
    phones = json.loads((corpus / "phones" / f"{clip}.json").read_text())["phones"]
    times = (np.arange(n) + 0.5) / 25
    labels = np.array(["pau"] * n, dtype=object)
    for phone, start, end in phones:
        labels[(times >= start) & (times < end)] = phone
    return labels


@needs_tools
def test_layout_and_shapes(corpus):
    import soundfile

    info = _info(corpus)
    V = info["n_vertices"]
    assert [s["name"] for s in info["subjects"]] == ["F2", "M3"] or len(info["subjects"]) == 2
    assert {s["split"] for s in info["subjects"]} <= {"seen", "unseen"}
    assert info["version"]
    for clip, meta in info["clips"].items():
        faces = np.load(corpus / "vertices_npy" / f"{clip}.npy")
        assert faces.dtype == np.float32 and faces.shape[1] == 3 * V
        samples, rate = soundfile.read(corpus / "wav" / f"{clip}.wav")
        assert abs(faces.shape[0] - 25 * len(samples) / rate) <= 1  # frames = 25 x audio seconds
        pose = np.load(corpus / "poses" / f"{clip}.npz")
        assert pose["rotation"].shape == (faces.shape[0], 3, 3) and pose["translation"].shape == (faces.shape[0], 3)
        emotion = np.load(corpus / "emotions" / f"{clip}.npz")
        assert emotion["label"].shape == emotion["intensity"].shape == (faces.shape[0],)
        if meta["take"] == "emotional":
            assert np.load(corpus / "neutral" / f"{clip}.npy").shape == faces.shape
    templates = np.load(corpus / "templates.npz")
    from talking_head.training.safe_pickle import load_restricted

    pickled = load_restricted(corpus / "templates.pkl")  # never plain pickle.load
    assert set(templates.files) == set(pickled) == {s["name"] for s in info["subjects"]}
    assert all(t.shape == (V, 3) and t.dtype == np.float32 for t in pickled.values())


@needs_tools
def test_lips_close_on_bilabials_and_open_on_open_vowels(corpus):
    info = _info(corpus)
    up, low = info["landmarks"]["upper_lip"], info["landmarks"]["lower_lip"]
    closed, opened = [], []
    for clip in info["clips"]:
        faces = np.load(corpus / "vertices_npy" / f"{clip}.npy").reshape(-1, info["n_vertices"], 3)
        distance = np.linalg.norm(faces[:, up] - faces[:, low], axis=1)
        labels = _frame_phones(corpus, clip, len(faces))
        span = distance.max() - distance.min()
        bilabial = np.isin(labels, list(BILABIALS))
        open_vowel = np.isin(labels, list(OPEN_VOWELS))
        closed += list((distance[bilabial] - distance.min()) / span)
        opened += list((distance[open_vowel] - distance.min()) / span)
    assert len(closed) > 10 and len(opened) > 10
    assert np.median(closed) < 0.1 and np.quantile(closed, 0.9) < 0.2
    assert np.median(opened) > 0.4


@needs_tools
def test_emotional_take_differs_from_neutral_counterpart_outside_the_lips(corpus):
    info = _info(corpus)
    V = info["n_vertices"]
    marks = info["landmarks"]
    up, low = marks["upper_lip"], marks["lower_lip"]
    for clip, meta in info["clips"].items():
        if meta["take"] != "emotional":
            continue
        emotional = np.load(corpus / "vertices_npy" / f"{clip}.npy").reshape(-1, V, 3)
        neutral = np.load(corpus / "neutral" / f"{clip}.npy").reshape(-1, V, 3)
        assert emotional.shape == neutral.shape  # shares the phone timing (one phones file)
        rest = neutral[0]
        mouth_centre = (rest[up] + rest[low]) / 2
        mouth_width = np.linalg.norm(rest[marks["mouth_corner_left"]] - rest[marks["mouth_corner_right"]])
        lips = np.linalg.norm(rest - mouth_centre, axis=1) < 0.6 * mouth_width
        difference = np.linalg.norm(emotional - neutral, axis=2)  # (N, V)
        assert difference.max() > 1e-3, clip
        assert difference[:, ~lips].sum() > difference[:, lips].sum(), clip  # mostly outside the lips
        gap_e = np.linalg.norm(emotional[:, up] - emotional[:, low], axis=1)
        gap_n = np.linalg.norm(neutral[:, up] - neutral[:, low], axis=1)
        assert np.mean(np.abs(gap_e - gap_n)) < 0.25 * np.ptp(gap_n), clip  # the same articulation


@needs_tools
def test_rotations_are_proper(corpus):
    for path in (corpus / "poses").glob("*.npz"):
        rotation = np.load(path)["rotation"].astype(np.float64)
        assert np.allclose(rotation @ rotation.transpose(0, 2, 1), np.eye(3), atol=1e-5)
        assert np.allclose(np.linalg.det(rotation), 1.0, atol=1e-5)


@needs_tools
def test_same_seed_same_corpus(corpus, tmp_path):
    from talking_head.training.corpus.build import build_corpus

    build_corpus(tmp_path, n_subjects=2, n_sentences=3, seed=0, progress=False, workers=1)
    for folder in ("vertices_npy", "neutral", "poses", "emotions"):
        for path in (corpus / folder).iterdir():
            a, b = np.load(path), np.load(tmp_path / folder / path.name)
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b), path.name
            else:
                assert all(np.array_equal(a[k], b[k]) for k in a.files), path.name
    for path in (corpus / "phones").iterdir():
        assert path.read_text() == (tmp_path / "phones" / path.name).read_text()


def test_rig_runs_on_biwi_template():
    biwi = SHARED / "biwi" / "BIWI.ply"
    if not biwi.is_file():
        pytest.skip("shared/biwi/BIWI.ply not available")
    from talking_head.training.corpus.build import load_template
    from talking_head.core.face_rig import CONTROL_INDEX, CONTROLS, FaceRig

    t = load_template(str(biwi))
    rig = FaceRig(t.vertices, t.faces, t.landmarks)
    controls = np.zeros((3, len(CONTROLS)))
    controls[1, CONTROL_INDEX["jaw_open"]] = 1.0
    controls[2, CONTROL_INDEX["jaw_open"]] = 1.0
    controls[2, CONTROL_INDEX["lip_close"]] = 1.0
    faces = rig.pose(controls)
    up, low = t.landmarks["upper_lip"], t.landmarks["lower_lip"]
    gap = np.linalg.norm(faces[:, up] - faces[:, low], axis=1)
    assert gap[1] > gap[0] + 0.03  # the jaw opens the mouth
    assert gap[2] < gap[0] + 0.01  # the lip seal holds it closed
    chin = t.landmarks["chin"]
    assert faces[1, chin, 1] < faces[0, chin, 1]  # the chin goes down


def test_stored_head_is_small_and_complete():
    from talking_head.training.corpus.head_mesh import HEAD_INFO, HEAD_MESH, load_head
    from talking_head.core.face_rig import LANDMARK_NAMES

    assert HEAD_MESH.stat().st_size < 1_000_000 and HEAD_INFO.stat().st_size < 1_000_000
    head = load_head()
    assert 2000 < len(head.vertices) < 8000
    assert set(LANDMARK_NAMES) <= set(head.landmarks)
    assert len(head.vertex_region) == len(head.vertices)
    up, low = head.landmarks["upper_lip"], head.landmarks["lower_lip"]
    assert up != low  # the lips are separate vertices: the mouth can open


def test_visemes_are_smooth_not_steps():
    from talking_head.core.face_rig import CONTROL_INDEX, CONTROLS
    from talking_head.training.corpus.visemes import viseme_controls

    phones = [("pau", 0.0, 0.2), ("b", 0.2, 0.28), ("aa", 0.28, 0.5), ("m", 0.5, 0.58), ("pau", 0.58, 0.9)]
    times = np.arange(0, 0.9, 0.005)
    jaw = viseme_controls(phones, times, len(CONTROLS))[:, CONTROL_INDEX["jaw_open"]]
    assert np.abs(np.diff(jaw)).max() < 0.2  # no jumps at phone boundaries
    assert jaw[np.searchsorted(times, 0.39)] > 0.5 > jaw[np.searchsorted(times, 0.24)]


@needs_tools
def test_cli_builds_and_makes_speech_set(tmp_path):
    from talking_head.app.corpus_cli import register

    parser = argparse.ArgumentParser(prog="talking-head")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["corpus", "speech", "--out", str(tmp_path / "speech"), "--utterances", "3", "--workers", "1"])
    assert args.run(args) == 0
    lines = (tmp_path / "speech" / "labels.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["emotion"] for line in lines)
    assert len(list((tmp_path / "speech" / "phones").glob("*.json"))) == 3
    args = parser.parse_args(["corpus", "build", "--out", str(tmp_path / "c"), "--subjects", "1", "--sentences", "1", "--workers", "1"])
    assert args.run(args) == 0
    from talking_head.core.errors import TalkingHeadError

    args = parser.parse_args(["corpus", "build", "--out", str(tmp_path / "c"), "--sentences", "99"])
    with pytest.raises(TalkingHeadError):
        args.run(args)


@pytest.mark.slow
@needs_tools
def test_preview_renders_a_png(corpus, tmp_path):
    pytest.importorskip("bpy")
    from talking_head.app.corpus_preview import preview_clip

    out = preview_clip(corpus, "F2_e01", tmp_path / "clip.png", frames=2, size=64, samples=2)
    assert out.is_file() and out.stat().st_size > 1000
