"""`talking-head` end to end on generated clips, as a user would run it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from talking_head.core.animation import Animation
from talking_head.core.bundle import ModelBundle
from talking_head.app.cli import main
from talking_head.core.mesh_io import read_mesh
from talking_head.core.pipeline import Animator

from conftest import speech_like, write_clip


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def test_animate_writes_the_take_and_stages_on_request(tmp_path, tiny_bundle_dir, clip_3s):
    out = tmp_path / "take.npz"
    assert run_cli("animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", out, "--subject", "F3", "--device", "cpu") == 0
    data = np.load(out)
    n = 75  # 3 s at 25 fps
    assert data["vertices"].shape == (n, 200, 3)
    assert "neutral" not in data and "emotional" not in data  # stages only on request: a third of the size
    assert data["rotation"].shape == (n, 3, 3) and data["translation"].shape == (n, 3)
    assert data["emotion_probs"].shape == (n, 5) and list(data["emotion_labels"])[0] == "neutral"
    assert int(data["fps"]) == 25
    assert np.allclose(data["emotion_probs"].sum(1), 1, atol=1e-5)
    r = data["rotation"]
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(r), 1, atol=1e-5)
    staged = tmp_path / "staged.npz"
    assert run_cli("animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", staged, "--subject", "F3", "--stages") == 0
    full = np.load(staged)
    assert full["neutral"].shape == full["emotional"].shape == (n, 200, 3)
    np.testing.assert_array_equal(full["vertices"], data["vertices"])
    # v_t = R_t (ye_t - P) + P + tau_t
    pivot = full["pivot"]
    recomposed = np.einsum("nij,nvj->nvi", r, full["emotional"] - pivot) + pivot + full["translation"][:, None]
    assert np.allclose(recomposed, full["vertices"], atol=1e-5)
    # Without stages, the face without head motion is recovered from the final vertices.
    lean = Animation.load_npz(out)
    assert lean.neutral is None
    np.testing.assert_allclose(lean.emotional, full["emotional"], atol=1e-5)
    assert out.stat().st_size < staged.stat().st_size / 2.5


def test_console_script_exits_quickly_after_a_complete_take(tmp_path, tiny_bundle_dir, clip_3s):
    """`run` (the console script) ends `animate` with os._exit: the take must be whole, the
    lines printed, the exit code kept; other commands exit as usual."""
    script = "import sys; sys.argv[0] = 'talking-head'; from talking_head.app.cli import run; run()"
    out = tmp_path / "take.npz"
    done = subprocess.run([sys.executable, "-c", script, "animate", str(clip_3s), "--bundle", str(tiny_bundle_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and f"to {out}" in done.stdout
    assert Animation.load_npz(out).n_frames == 75
    bad = subprocess.run([sys.executable, "-c", script, "animate", str(tmp_path / "missing.wav"), "--bundle", str(tiny_bundle_dir),
                          "--out", str(tmp_path / "b.npz")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "missing.wav" in bad.stderr
    other = subprocess.run([sys.executable, "-c", script, "bundle", "info", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=300)
    assert other.returncode != 0  # usual exit, code kept


def test_animate_writes_meshes_per_frame(tmp_path, tiny_bundle_dir, clip_3s):
    assert run_cli("animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", tmp_path / "take.ply") == 0
    files = sorted(tmp_path.glob("take_*.ply"))
    assert len(files) == 75
    assert run_cli("animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", tmp_path / "objs", "--mesh-format", "obj", "--no-head") == 0
    objs = sorted((tmp_path / "objs").glob("*.obj"))
    assert len(objs) == 75
    template = ModelBundle.load(tiny_bundle_dir).template
    first = read_mesh(objs[0])
    assert first.n_vertices == 200 and np.array_equal(first.faces, template.faces)


def test_seeds_repeat_and_vary_head_motion(tiny_bundle_dir, clip_3s):
    animator = Animator(ModelBundle.load(tiny_bundle_dir))
    a = animator.animate(clip_3s, seed=1)
    b = animator.animate(clip_3s, seed=1)
    c = animator.animate(clip_3s, seed=2)
    assert np.array_equal(a.vertices, b.vertices)
    assert not np.allclose(a.rotation, c.rotation, atol=1e-4)
    assert np.array_equal(a.emotional, c.emotional)  # the seed moves only the head


def test_no_head_means_identity_motion(tiny_bundle_dir, clip_3s):
    anim = Animator(ModelBundle.load(tiny_bundle_dir)).animate(clip_3s, with_head=False)
    assert np.array_equal(anim.rotation, np.broadcast_to(np.eye(3), anim.rotation.shape))
    assert np.allclose(anim.vertices, anim.emotional, atol=1e-6)


def test_changing_audio_later_leaves_earlier_frames_alone(tiny_bundle_dir):
    """Causality: frames before t minus the encoder's window (1 s + 0.5 s context) are unchanged."""
    animator = Animator(ModelBundle.load(tiny_bundle_dir))
    audio = speech_like(4.0)
    changed = audio.copy()
    changed[3 * 16_000 :] = speech_like(1.0, seed=7)
    a, b = animator.animate(audio, seed=0), animator.animate(changed, seed=0)
    reach = 25 * (1.0 + 0.5) + 1  # window + context, plus one frame of interpolation
    cut = int(25 * 3 - reach)
    assert np.array_equal(a.vertices[:cut], b.vertices[:cut])
    assert not np.allclose(a.vertices[75:], b.vertices[75:])


@pytest.mark.parametrize("seconds", [0.05, 0.15, 0.5])
def test_very_short_clips(tiny_bundle_dir, tmp_path, seconds):
    clip = write_clip(tmp_path / "short.wav", seconds)
    out = tmp_path / "short.npz"
    assert run_cli("animate", clip, "--bundle", tiny_bundle_dir, "--out", out) == 0
    assert np.load(out)["vertices"].shape[0] == max(1, round(25 * seconds))


def test_clip_longer_than_positional_range(tiny_bundle_dir, tmp_path):
    # the tiny bundle has max_frames = 40 (1.6 s); 5 s needs several windows
    clip = write_clip(tmp_path / "long.wav", 5.0)
    anim = Animator(ModelBundle.load(tiny_bundle_dir)).animate(clip)
    assert anim.n_frames == 125 and np.all(np.isfinite(anim.vertices))


@pytest.mark.parametrize(
    "setup,args,message",
    [
        (lambda t: None, ["animate", "{missing}", "--bundle", "{bundle}", "--out", "{out}"], "audio file not found"),
        (lambda t: (t / "empty.wav").write_bytes(b""), ["animate", "{t}/empty.wav", "--bundle", "{bundle}", "--out", "{out}"], "empty"),
        (lambda t: (t / "x.wav").write_text("hello" * 100), ["animate", "{t}/x.wav", "--bundle", "{bundle}", "--out", "{out}"], "not a readable audio file"),
        (lambda t: soundfile.write(str(t / "z.wav"), np.zeros(0, np.float32), 16000), ["animate", "{t}/z.wav", "--bundle", "{bundle}", "--out", "{out}"], "no samples"),
        (lambda t: soundfile.write(str(t / "s.wav"), np.zeros(8000, np.float32), 16000), ["animate", "{t}/s.wav", "--bundle", "{bundle}", "--out", "{out}"], "silent"),
        (lambda t: soundfile.write(str(t / "c.wav"), speech_like(0.01), 16000), ["animate", "{t}/c.wav", "--bundle", "{bundle}", "--out", "{out}"], "shorter than one animation frame"),
        (lambda t: None, ["animate", "{clip}", "--bundle", "{t}/nowhere", "--out", "{out}"], "bundle folder not found"),
        (lambda t: None, ["animate", "{clip}", "--bundle", "{bundle}", "--out", "{out}", "--subject", "Q9"], "subject 'Q9' is not in this bundle"),
        (lambda t: None, ["animate", "{clip}", "--bundle", "{bundle}", "--out", "{out}", "--device", "tpu"], "unknown device"),
    ],
    ids=["missing", "empty", "not-audio", "zero-length", "silent", "too-short", "no-bundle", "subject", "device"],
)
def test_bad_input_prints_one_line_and_exits_nonzero(tmp_path, tiny_bundle_dir, clip_3s, capsys, setup, args, message):
    setup(tmp_path)
    values = {"missing": tmp_path / "nope.wav", "bundle": tiny_bundle_dir, "out": tmp_path / "o.npz", "t": tmp_path, "clip": clip_3s}
    code = run_cli(*[a.format(**values) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and err.startswith("talking-head: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "o.npz").exists()


def test_command_line_process_has_no_traceback(tmp_path, tiny_bundle_dir):
    (tmp_path / "bad.wav").write_text("not audio")
    result = subprocess.run(
        [sys.executable, "-m", "talking_head", "animate", str(tmp_path / "bad.wav"), "--bundle", str(tiny_bundle_dir), "--out", str(tmp_path / "o.npz")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not a readable audio file" in result.stderr


def test_bundle_tiny_command(tmp_path, capsys):
    assert run_cli("bundle", "tiny", "--out", tmp_path / "b", "--vertices", "64") == 0
    assert "UNTRAINED" in capsys.readouterr().out
    bundle = ModelBundle.load(tmp_path / "b")
    assert bundle.config.n_vertices == 64 and not bundle.config.trained


def test_core_never_imports_bpy():
    code = (
        "import sys, pkgutil, importlib, talking_head.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'talking_head.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'bpy' not in sys.modules, 'core imported bpy'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_animate_gives_arkit_channels_and_a_live_link_csv(tmp_path, clip_3s):
    """A template with face landmarks (the project's head) has ARKit channels: in the .npz, and
    as a Live Link Face CSV whose numbers re-read as written, head rotation included."""
    from talking_head.core.arkit import ARKIT_NAMES, ArkitSolver, template_arkit_shapes
    from talking_head.core.live_link import head_angles, read_live_link_csv
    from talking_head.core.template_head import load_template_head
    from talking_head.training.tiny import make_tiny_bundle

    head = load_template_head()
    bundle = tmp_path / "head"
    make_tiny_bundle(bundle, template=str(_template_ply(tmp_path, head)), max_frames=40, window_overlap=15)
    npz, csv = tmp_path / "take.npz", tmp_path / "take.csv"
    assert run_cli("animate", clip_3s, "--bundle", bundle, "--out", npz, "--device", "cpu", "--seed", "2", "--stages") == 0
    assert run_cli("animate", clip_3s, "--bundle", bundle, "--out", csv, "--device", "cpu", "--seed", "2") == 0
    data = np.load(npz)
    weights = data["arkit_weights"]
    assert weights.shape == (75, 52) and list(data["arkit_names"]) == list(ARKIT_NAMES)
    assert weights.min() >= 0 and weights.max() <= 1 and weights.max() > 0
    # the weights are the solve of the model's face (without head motion) through the template's basis
    solver = ArkitSolver(template_arkit_shapes(head.vertices, head.faces))
    np.testing.assert_allclose(weights, solver.solve(data["emotional"] - head.vertices), atol=1e-5)
    take = read_live_link_csv(csv)
    np.testing.assert_allclose(take.weights, weights, atol=1e-6)
    np.testing.assert_allclose(take.head, head_angles(data["rotation"]), atol=1e-6)


def test_live_link_csv_needs_a_template_with_landmarks(tmp_path, tiny_bundle_dir, clip_3s, capsys):
    assert run_cli("animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", tmp_path / "take.csv", "--device", "cpu") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ARKit channels" in err[0] and "landmarks" in err[0]
    assert not (tmp_path / "take.csv").exists()


def _template_ply(tmp_path, head):
    from talking_head.core.mesh_io import write_mesh

    path = tmp_path / "head.ply"
    write_mesh(path, head.vertices, head.faces)
    return path
