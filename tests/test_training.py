"""Training, evaluation, DTW neutral targets and safe loading, on a tiny generated corpus."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from talking_head.core.errors import TalkingHeadError
from talking_head.training.dataset import Corpus
from talking_head.training.metrics import face_dynamics_deviation, lip_vertex_error, max_face_error, mean_vertex_error
from talking_head.training.neutral_targets import warp_neutral
from talking_head.training.safe_pickle import UnsafePickleError, load_restricted
from talking_head.training.tiny import save_random_encoders
from talking_head.training.train import TrainingConfig, train

from conftest import speech_like
from tiny_corpus import make_corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "tiny")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    return save_random_encoders(tmp_path_factory.mktemp("encoders"), "tiny")


def run_training(corpus_dir, encoders, out, variant="full", epochs=4, resume=False):
    settings = TrainingConfig(epochs=epochs, lr=1e-3, variant=variant, model={"d_model": 32, "ff_dim": 64, "max_frames": 40, "window_overlap": 10})
    return train(corpus_dir, out, settings, context_encoder=str(encoders[0]), emotion_encoder=str(encoders[1]), resume=resume, progress=False)


def test_corpus_splits_follow_the_paper(corpus_dir):
    corpus = Corpus(corpus_dir)
    assert corpus.seen == ["F2", "M3"] and corpus.unseen == ["F1"]
    assert {c.name for c in corpus.subset("train")} == {f"{s}_{e}{n:02d}" for s in ("F2", "M3") for e in ("", "e") for n in (1, 2)}
    assert {c.name for c in corpus.subset("SE")} == {"F2_e37", "M3_e37"}
    assert {c.name for c in corpus.subset("tuning")} == {"F1_e01", "F1_e02", "F1_e33", "F1_e37"}
    assert corpus.subset("UE") == []  # 4 sentences only: all go to tuning
    faceformer = Corpus(corpus_dir, split="faceformer")
    assert all(c.emotional for c in faceformer.subset("train"))


@pytest.mark.parametrize("variant", ["full", "two-stage", "single-stage", "no-head", "baseline"])
def test_each_variant_trains_and_its_loss_falls(tmp_path, corpus_dir, encoders, variant):
    summary = run_training(corpus_dir, encoders, tmp_path / "bundle", variant=variant)
    history = summary["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]  # L = Lrec + Lcon + Ldiv, as trained
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["trained"] is True and config["variant"] == variant
    assert config["head_trained"] == (variant in ("full", "two-stage", "single-stage"))
    assert (tmp_path / "bundle" / "loss_curves.png").is_file()
    log = (tmp_path / "bundle" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss") and len(log) == 1 + 4


def test_resume_continues_where_it_stopped(tmp_path, corpus_dir, encoders):
    out = tmp_path / "bundle"
    first = run_training(corpus_dir, encoders, out, epochs=2)
    resumed = run_training(corpus_dir, encoders, out, epochs=4, resume=True)
    assert [r["epoch"] for r in resumed["history"]] == [1, 2, 3, 4]
    assert resumed["history"][:2] == first["history"]
    straight = run_training(corpus_dir, encoders, tmp_path / "straight", epochs=4)
    # a resumed run trains on from the saved weights and optimiser state, not from scratch
    assert resumed["history"][2]["loss"] < first["history"][0]["loss"]
    assert abs(resumed["history"][3]["loss"] - straight["history"][3]["loss"]) < 0.5 * straight["history"][0]["loss"]


def test_fine_tuning_gh_alone_keeps_the_faces(tmp_path, corpus_dir, encoders):
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.errors import TalkingHeadError

    run_training(corpus_dir, encoders, tmp_path / "start", variant="single-stage", epochs=1)
    settings = TrainingConfig(epochs=2, lr=1e-3, variant="single-stage", init=str(tmp_path / "start"), train_only=["head."],
                              model={"lambda_r": 1.0, "lambda_t": 1.0})
    train(corpus_dir, tmp_path / "tuned", settings, context_encoder=str(encoders[0]), emotion_encoder=str(encoders[1]), progress=False)
    start, tuned = ModelBundle.load(tmp_path / "start"), ModelBundle.load(tmp_path / "tuned")
    assert tuned.config.lambda_r == 1.0 and tuned.config.d_model == start.config.d_model == 32
    before, after = start.model.state_dict(), tuned.model.state_dict()
    moved = {name for name in before if not np.array_equal(before[name].numpy(), after[name].numpy())}
    assert moved and all(name.startswith("head.") for name in moved)
    with pytest.raises(TalkingHeadError, match="names no parameter"):
        train(corpus_dir, tmp_path / "none", TrainingConfig(epochs=1, variant="single-stage", init=str(tmp_path / "start"), train_only=["nothing."]),
              context_encoder=str(encoders[0]), emotion_encoder=str(encoders[1]), progress=False)


def test_evaluate_writes_report_and_figures(tmp_path, corpus_dir, encoders):
    from talking_head.training.evaluate import evaluate

    run_training(corpus_dir, encoders, tmp_path / "bundle", epochs=2)
    report = evaluate(corpus_dir, tmp_path / "bundle", tmp_path / "report", subsets=["SN", "SE"], progress=False)
    for subset in ("SN", "SE"):
        for name in ("model", "template"):
            m = report["subsets"][subset][name]
            assert m["clips"] == 2 and m["lve"] >= 0 and np.isfinite(m["fdd"])
    assert set(report["head_diversity"]) == {"neutral", "emotional"}
    assert len(report["head_diversity"]["emotional"]["rotation_deg"]) == 3
    for name in ("report.json", "report.md", "head_motion.png", "lip_distance.png"):
        assert (tmp_path / "report" / name).is_file()
    assert "| SE | model |" in (tmp_path / "report" / "report.md").read_text()
    with pytest.raises(TalkingHeadError, match="no phone classifier"):  # --phone-loop needs the bundle's phone classifier
        evaluate(corpus_dir, tmp_path / "bundle", tmp_path / "report2", subsets=["SN"], progress=False, phone_loop=True)


def test_metrics_match_hand_computation():
    template = np.zeros((3, 3))
    target = np.zeros((2, 3, 3))
    prediction = np.zeros((2, 3, 3))
    prediction[0, 0] = [1, 2, 2]  # squared error 9 on vertex 0, frame 0
    prediction[1, 1] = [0, 0, 2]  # squared error 4 on vertex 1, frame 1
    lip = np.array([0, 2])
    assert lip_vertex_error(prediction, target, lip) == pytest.approx((9 + 0) / 2)
    assert max_face_error(prediction, target) == pytest.approx((9 + 4) / 2)
    assert mean_vertex_error(prediction, target) == pytest.approx((3 + 2) / 6)
    # FDD: upper vertex 1; GT motion squared norms over time [1, 3] (std 1), prediction [0, 4] (std 2)
    target[:, 1] = [[1, 0, 0], [1, 1, 1]]
    prediction[:, 1] = [[0, 0, 0], [0, 0, 2]]
    assert face_dynamics_deviation(prediction, target, template, np.array([1])) == pytest.approx(1 - 2)


def test_dtw_recovers_a_known_time_warp():
    rate = 16_000
    neutral = speech_like(3.0, seed=3)
    # emotional take: the same speech, first half slowed down by 1.5x, second half as is
    first, second = neutral[: len(neutral) // 2], neutral[len(neutral) // 2 :]
    slowed = np.interp(np.arange(0, len(first), 1 / 1.5), np.arange(len(first)), first).astype(np.float32)
    emotional = np.concatenate([slowed, second])
    n_neutral = round(25 * len(neutral) / rate)
    n_emotional = round(25 * len(emotional) / rate)
    # neutral "vertices": one vertex whose x is the neutral frame index
    vertices = np.zeros((n_neutral, 1, 3), np.float32)
    vertices[:, 0, 0] = np.arange(n_neutral)
    warped = warp_neutral(emotional, neutral, vertices, n_emotional)[:, 0, 0]
    t = np.arange(n_emotional) / 25
    boundary = len(slowed) / rate
    expected = np.where(t < boundary, t / 1.5, t - boundary + boundary / 1.5) * 25
    inner = (t > 0.2) & (t < t[-1] - 0.2)
    assert np.median(np.abs(warped[inner] - expected[inner])) < 1.5  # frames
    assert np.corrcoef(warped, expected)[0, 1] > 0.99


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code_and_accepts_arrays(tmp_path):
    bad = tmp_path / "templates.pkl"
    bad.write_bytes(pickle.dumps({"F1": _Exploit()}))
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        load_restricted(bad)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"F1": np.arange(6, dtype=np.float32).reshape(2, 3)}, protocol=2))
    assert load_restricted(good)["F1"].shape == (2, 3)


def test_corpus_reads_templates_from_pickle_only(tmp_path, corpus_dir):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(corpus_dir, copy)
    (copy / "templates.npz").unlink()
    corpus = Corpus(copy)
    assert corpus.template("F2").shape == (60, 3)
