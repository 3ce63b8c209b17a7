"""What a bundle, a style file and tuning clips may contain (issue 16): every bad value gets
one line and exit code 2 from `talking-head`, and nothing is written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from talking_head.app.cli import main
from talking_head.core.bundle import ModelBundle, pack_bundle
from talking_head.core.bundle_info import read_bundle_info
from talking_head.core.encoders import resolve_source
from talking_head.core.errors import BundleError
from talking_head.core.style import BundleIdentity, Style, TuningError

from conftest import write_clip


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip()


def assert_refused(code: int, err: str, message: str, *never_written) -> None:
    assert code == 2, err
    assert err.startswith("talking-head: error:") and len(err.splitlines()) == 1, err
    assert message in err, err
    assert "Traceback" not in err
    for path in never_written:
        assert not path.exists(), f"{path} was written"


def copy_bundle(tmp_path, tiny_bundle_dir, name="bundle"):
    out = tmp_path / name
    shutil.copytree(tiny_bundle_dir, out)
    return out


def edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def edit_weights(folder, change):
    path = folder / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("audio") / "clip.wav", 3.0)


# ---------------------------------------------------------------------------- bundle config.json

@pytest.mark.parametrize(
    "changes,message",
    [
        ({"k": 0}, "k must be a positive whole number, got 0"),
        ({"fps": 0}, "fps must be a positive whole number, got 0"),
        ({"fps": -25}, "fps must be a positive whole number"),
        ({"fps": 25.5}, "fps must be a positive whole number"),
        ({"encode_window_s": 0}, "encode_window_s must be a positive number of seconds, got 0"),
        ({"encode_context_s": -1}, "encode_context_s must be zero or a positive number"),
        ({"n_layers": 0}, "n_layers must be a positive whole number"),
        ({"n_heads": "4"}, "n_heads must be a positive whole number, got '4'"),
        ({"d_model": -128}, "d_model must be a positive whole number"),
        ({"ff_dim": 0}, "ff_dim must be a positive whole number"),
        ({"max_frames": 0}, "max_frames must be a positive whole number"),
        ({"window_overlap": 40}, "window_overlap must be a whole number between 0 and max_frames (40)"),
        ({"context_dim": True}, "context_dim must be a positive whole number, got True"),
        ({"dropout": 1.5}, "dropout must be a number in [0, 1)"),
        ({"subjects": ["F2", "F2", "F4", "M3", "M4", "M5"]}, "subjects must be a list of distinct names"),
        ({"pivot": [0, 1]}, "pivot must be null or a list of 3 numbers"),
        ({"landmarks": {"nose_tip": 5000}}, "landmarks must be null or names mapped to vertex indices"),
        ({"use_head": "yes"}, "use_head must be true or false"),
    ],
    ids=lambda v: "-".join(f"{k}" for k in v) if isinstance(v, dict) else None,
)
def test_bad_config_values_are_refused(tmp_path, tiny_bundle_dir, clip, capsys, changes, message):
    bundle = copy_bundle(tmp_path, tiny_bundle_dir)
    edit_config(bundle, **changes)
    out = tmp_path / "take.npz"
    code, err = run_cli(capsys, "animate", clip, "--bundle", bundle, "--out", out)
    assert_refused(code, err, message, out)
    assert str(bundle) in err  # the line names the bundle


def test_nan_in_config_is_refused(tmp_path, tiny_bundle_dir):
    bundle = copy_bundle(tmp_path, tiny_bundle_dir)
    (bundle / "config.json").write_text((bundle / "config.json").read_text().replace('"encode_context_s": 0.5', '"encode_context_s": NaN'))
    with pytest.raises(BundleError, match="encode_context_s must be zero or a positive number"):
        ModelBundle.load(bundle)


# ---------------------------------------------------------------------------- bundle weights

@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s: s.update({k: torch.full_like(v, float("nan")) for k, v in s.items()}), "has non-finite weights (NaN or inf) in"),
        (lambda s: s["emotion.person_in.weight"].view(-1).__setitem__(3, float("inf")), "non-finite weights (NaN or inf) in emotion.person_in.weight"),
        (lambda s: s.update({k: v > 0 for k, v in s.items()}), "has bool weights in"),
        (lambda s: s.update({"neutral.viseme_out.weight": s["neutral.viseme_out.weight"].to(torch.int32)}), "has int32 weights in neutral.viseme_out.weight"),
    ],
    ids=["all-nan", "one-inf", "all-bool", "one-int32"],
)
def test_bad_weights_are_refused(tmp_path, tiny_bundle_dir, clip, capsys, change, message):
    bundle = copy_bundle(tmp_path, tiny_bundle_dir)
    edit_weights(bundle, change)
    out = tmp_path / "take.npz"
    code, err = run_cli(capsys, "animate", clip, "--bundle", bundle, "--out", out)
    assert_refused(code, err, f"model bundle {bundle} ", out)
    assert message in err


def test_large_finite_weights_whose_float32_sum_overflows_load(tmp_path, tiny_bundle_dir):
    """The finite check sums in float32 first; a sum that overflows there (finite weights near
    float32's largest) is summed again in float64 and accepted, not refused as non-finite."""
    bundle = copy_bundle(tmp_path, tiny_bundle_dir)
    edit_weights(bundle, lambda s: s["emotion.person_in.weight"].view(-1)[:4].fill_(3e38))
    assert not torch.isfinite(torch.full((4,), 3e38).sum())  # the float32 sum overflows
    loaded = ModelBundle.load(bundle).model.state_dict()["emotion.person_in.weight"]
    assert torch.isfinite(loaded).all() and loaded.max() == torch.tensor(3e38)


def test_half_and_double_precision_weights_load(tmp_path, tiny_bundle_dir):
    reference = ModelBundle.load(tiny_bundle_dir).model.state_dict()
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        bundle = copy_bundle(tmp_path, tiny_bundle_dir, str(dtype))
        edit_weights(bundle, lambda s, dtype=dtype: s.update({k: v.to(dtype) for k, v in s.items()}))
        loaded = ModelBundle.load(bundle).model.state_dict()
        assert all(loaded[k].dtype == torch.float32 and torch.allclose(loaded[k], reference[k], atol=1e-2) for k in reference)


# ---------------------------------------------------------------------------- encoder sources

def test_missing_bundle_encoder_folder_never_goes_to_the_hub(tmp_path, tiny_bundle_dir, clip, capsys, monkeypatch):
    from transformers import AutoModelForAudioClassification, Wav2Vec2Model

    asked = []
    for cls in (Wav2Vec2Model, AutoModelForAudioClassification):
        original = cls.from_pretrained.__func__

        def spy(klass, source, *args, _original=original, **kwargs):
            asked.append(str(source))
            return _original(klass, source, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    bundle = copy_bundle(tmp_path, tiny_bundle_dir)
    shutil.rmtree(bundle / "encoders" / "context")
    out = tmp_path / "take.npz"
    code, err = run_cli(capsys, "animate", clip, "--bundle", bundle, "--out", out)
    assert_refused(code, err, f"model bundle {bundle} is missing its encoder folder encoders/context", out)
    assert "encoders/context" not in asked  # never handed to from_pretrained as a hub id


def test_encoder_sources(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "encoders" / "context").mkdir(parents=True)
    (bundle / "facebook").mkdir()
    elsewhere = tmp_path / "enc"
    elsewhere.mkdir()
    assert resolve_source("encoders/context", bundle) == str(bundle / "encoders" / "context")
    assert resolve_source(str(elsewhere), bundle) == str(elsewhere)
    assert resolve_source("superb/wav2vec2-base-superb-er", bundle) == "superb/wav2vec2-base-superb-er"  # a hub id
    for source in ("encoders/emotion", "encoders/new/context", "./context", "../context", "context\\x", "facebook/wav2vec2-base-960h", "a/b/c"):
        with pytest.raises(BundleError, match=re.escape(f"missing its encoder folder {source}")):
            resolve_source(source, bundle, "context encoder")
    with pytest.raises(BundleError, match="does not exist"):
        resolve_source(str(tmp_path / "nowhere"), bundle)


# ---------------------------------------------------------------------------- style files

@pytest.fixture(scope="module")
def styled(tmp_path_factory, tiny_bundle_dir):
    """The tiny bundle, a copy whose pivots differ (another bundle of the same shape), and a
    good style of the tiny bundle's."""
    root = tmp_path_factory.mktemp("styles")
    other = root / "other"
    shutil.copytree(tiny_bundle_dir, other)
    edit_weights(other, lambda s: s["emotion.person_in.weight"].add_(0.5))
    bundle = ModelBundle.load(tiny_bundle_dir)
    identity = bundle.identity
    alpha = np.array([0.0, 0.5, 0.5, 0.0, 0.0, 0.0])
    good = Style("good", str(tiny_bundle_dir), alpha.tolist(), (alpha @ identity.pivots).tolist(), "F4", bundle_fingerprint=identity.fingerprint)
    return {"dir": tiny_bundle_dir, "other": other, "identity": identity, "good": good, "root": root}


def style_data(styled, **changes) -> dict:
    from dataclasses import asdict

    return {**asdict(styled["good"]), **changes}


def animate_with_style(tmp_path, capsys, clip, bundle, data) -> tuple[int, str, object]:
    path = tmp_path / "style.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    out = tmp_path / "take.npz"
    code, err = run_cli(capsys, "animate", clip, "--bundle", bundle, "--out", out, "--style", path)
    return code, err, out


BAD_STYLES = {
    "p-number": ({"p": 3.0}, "p must be a non-empty list of numbers, got a number"),
    "p-strings": ({"p": ["a"] * 128}, "p must be a non-empty list of numbers, got a list with a string"),
    "p-null": ({"p": None}, "p must be a non-empty list of numbers, got null"),
    "p-empty": ({"p": []}, "p must be a non-empty list of numbers, got an empty list"),
    "alpha-null": ({"alpha": None}, "alpha must be a list of numbers, got null"),
    "name-number": ({"name": 5}, "name must be a string, got a number"),
    "subject-list": ({"subject": ["F4"]}, "subject must be a subject name"),
    "mode": ({"mode": "fancy"}, "mode must be one of convex, direct"),
    "fingerprint-number": ({"bundle_fingerprint": 7}, "bundle_fingerprint must be a string or null"),
    "unknown-key": ({"colour": "red"}, "not a Talking Head style file (unknown keys ['colour'])"),
    "p-nan": ({"p": [float("nan")] * 128}, "p has values that are not finite numbers"),
    "p-inf": ({"p": [float("inf")] + [0.0] * 127}, "p has values that are not finite numbers"),
    "p-1e30": ({"p": [1e30] * 128}, "p has norm 1.13e+31, beyond any person embedding"),
    "p-1e5": ({"p": [1e5] + [0.0] * 127}, "more than 100 times this bundle's largest pivot"),
    "alpha-sum-3": ({"alpha": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}, "alpha sums to 3"),
    "alpha-negative": ({"alpha": [-0.5, 1.5, 0.0, 0.0, 0.0, 0.0]}, "alpha has a negative weight (-0.5)"),
    "alpha-nan": ({"alpha": [float("nan")] * 6}, "alpha has values that are not finite numbers"),
    "alpha-length": ({"alpha": [0.25, 0.25, 0.25, 0.25]}, "was tuned for another bundle (4 weights in alpha, this bundle has 6 subjects)"),
    "p-width": ({"p": [0.0] * 7}, "was tuned for another bundle (7-d embedding, this bundle's is 128-d)"),
    "fingerprint": ({"bundle_fingerprint": "0123456789abcdef"}, "was tuned for another bundle (fingerprint 0123456789abcdef"),
    "subject": ({"subject": "Q9"}, "speaks like subject 'Q9', which this bundle does not have"),
}


@pytest.mark.parametrize("name", list(BAD_STYLES))
def test_bad_styles_are_refused(tmp_path, styled, clip, capsys, name):
    changes, message = BAD_STYLES[name]
    code, err, out = animate_with_style(tmp_path, capsys, clip, styled["dir"], style_data(styled, **changes))
    assert_refused(code, err, message, out)


@pytest.mark.parametrize("text,message", [("[1, 2]", "holds a list of numbers, not a JSON object"), ("{not json", "not a Talking Head style file"), ('{"p": [1]}', "it lacks")])
def test_style_files_that_are_not_styles(tmp_path, styled, clip, capsys, text, message):
    code, err, out = animate_with_style(tmp_path, capsys, clip, styled["dir"], text)
    assert_refused(code, err, message, out)


def test_style_of_another_bundle_is_refused(tmp_path, styled, clip, capsys):
    """Same width and subjects, other pivots: the fingerprint tells them apart."""
    code, err, out = animate_with_style(tmp_path, capsys, clip, styled["other"], style_data(styled))
    assert_refused(code, err, "was tuned for another bundle (fingerprint", out)


def test_old_styles_without_fingerprint(tmp_path, styled, clip, capsys):
    """Accepted with a note when they fit; a convex one whose p is not alpha times the pivots
    (tuned for another bundle's pivots) is refused."""
    old = style_data(styled, bundle_fingerprint=None)
    del old["bundle_fingerprint"]
    code, err, out = animate_with_style(tmp_path, capsys, clip, styled["dir"], old)
    assert code == 0 and out.is_file()
    assert "note: style 'style.json' has no bundle fingerprint" in err
    out.unlink()
    code, err, out = animate_with_style(tmp_path, capsys, clip, styled["other"], old)
    assert_refused(code, err, "was tuned for another bundle (its p is not its alpha times this bundle's pivots)", out)


def test_good_style_animates_without_a_note(tmp_path, styled, clip, capsys):
    code, err, out = animate_with_style(tmp_path, capsys, clip, styled["dir"], style_data(styled))
    assert code == 0 and out.is_file() and "fingerprint" not in err


def test_alpha_within_tolerance_is_accepted(styled):
    alpha = np.array([0.0, 0.5, 0.5, 0.0, 0.0, 0.0]) + np.array([-1e-7, 4e-4, 4e-4, 0, 0, 0])
    style = Style(**style_data(styled, alpha=alpha.tolist()))
    style.validate()
    style.check(styled["identity"])


def test_blend_with_a_bad_style_is_refused(tmp_path, styled, clip, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(style_data(styled, alpha=[1.0, 1.0, 1.0, 0.0, 0.0, 0.0])))
    out = tmp_path / "take.npz"
    code, err = run_cli(capsys, "animate", clip, "--bundle", styled["dir"], "--out", out, "--blend-with", path)
    assert_refused(code, err, "alpha sums to 3", out)


def test_fingerprint_survives_packing_and_moving_and_is_read_without_torch(tmp_path, styled):
    identity = styled["identity"]
    moved = copy_bundle(tmp_path, styled["dir"], "moved")
    edit_config(moved, description="renamed and moved")
    packed = pack_bundle(moved, tmp_path / "packed")  # float16 weights
    assert packed.identity.fingerprint == identity.fingerprint
    for folder in (styled["dir"], tmp_path / "packed"):
        read = BundleIdentity.read(folder, read_bundle_info(folder).config)  # numpy only, as Blender does
        assert read.fingerprint == identity.fingerprint
        np.testing.assert_allclose(read.pivots, identity.pivots, atol=2e-3)
    assert ModelBundle.load(styled["other"]).identity.fingerprint != identity.fingerprint
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from talking_head.core.style import BundleIdentity\n"
        "from talking_head.core.bundle_info import read_bundle_info\n"
        f"print(BundleIdentity.read({str(styled['dir'])!r}, read_bundle_info({str(styled['dir'])!r}).config).fingerprint)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == identity.fingerprint, done.stderr


# ---------------------------------------------------------------------------- tuning clips

@pytest.fixture(scope="module")
def tuning_clips(tmp_path_factory, tiny_bundle_dir):
    """Three clips of 3 s (75 frames) on the tiny bundle's template, with small motion."""
    root = tmp_path_factory.mktemp("tune")
    template = ModelBundle.load(tiny_bundle_dir).template.vertices
    rng = np.random.default_rng(0)
    clips = []
    for i in range(3):
        audio = write_clip(root / f"c{i}.wav", 3.0, seed=i)
        mesh = root / f"c{i}.npy"
        np.save(mesh, (template + 0.01 * rng.standard_normal((75, *template.shape))).astype(np.float32))
        clips.append((audio, mesh))
    return root, clips


@pytest.mark.parametrize("bad", ["nan-vertex", "inf-vertex", "nan-held-out"])
def test_tune_refuses_non_finite_clips(tmp_path, tiny_bundle_dir, tuning_clips, capsys, bad):
    root, clips = tuning_clips
    which = 2 if bad == "nan-held-out" else 0  # the last clip is the held-out one
    frames = np.load(clips[which][1])
    if bad == "nan-held-out":
        frames[:] = np.nan
    else:
        frames[10, 5, 1] = np.nan if bad == "nan-vertex" else np.inf
    broken = tmp_path / "broken.npy"
    np.save(broken, frames)
    pairs = [(a, broken if i == which else m) for i, (a, m) in enumerate(clips)]
    out = tmp_path / "style.json"
    args = ["tune", "--bundle", tiny_bundle_dir, "--out", out] + [x for a, m in pairs for x in ("--clip", a, m)]
    code, err = run_cli(capsys, *args)
    assert_refused(code, err, "broken.npy: ", out)
    assert "(NaN or inf)" in err and ("75 of 75 frames" if bad == "nan-held-out" else "1 of 75 frames") in err


def test_tune_records_the_bundle_fingerprint(tmp_path, styled, tuning_clips, capsys):
    root, clips = tuning_clips
    out = tmp_path / "style.json"
    args = ["tune", "--bundle", styled["dir"], "--out", out, "--speaking-style", "F2"] + [x for a, m in clips[:2] for x in ("--clip", a, m)]
    code, _ = run_cli(capsys, *args)
    assert code == 0
    style = Style.load(out)
    assert style.bundle_fingerprint == styled["identity"].fingerprint
    style.check(styled["identity"])
    with pytest.raises(TuningError, match="tuned for another bundle"):
        style.check(ModelBundle.load(styled["other"]).identity)
