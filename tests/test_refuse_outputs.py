"""Output paths and options a user can get wrong: one line, exit code 2, nothing written, and
before the model loads; outputs written whole, whatever happens to the run (issue 16)."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from talking_head.app import checks
from talking_head.app.cli import main
from talking_head.core.animation import Animation
from talking_head.core.outputs import FrameFiles, OutputError, atomic_path

from conftest import run_cli_captured as run_cli, write_clip

ROOT = Path(__file__).resolve().parents[1]


def refused(capsys, *args, says: str) -> str:
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("talking-head: error: "), err
    assert "Traceback" not in err and says in lines[0], lines[0]
    return lines[0]


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def unwritable(tmp_path):
    """A folder no file can be created in. Root writes through permission bits, so as root it is
    /sys (sysfs refuses new files even to root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if _can_write(folder):
        folder = Path("/sys")
        if _can_write(folder):
            pytest.skip("no folder here refuses writes")
    yield folder
    (tmp_path / "read-only").chmod(0o755)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- --out of animate ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["take.npz", "take.csv", "take.ply", "frames"])
def test_animate_refuses_an_unwritable_folder(capsys, tmp_path, unwritable, model_never_loads, clip_3s, name):
    line = refused(capsys, "animate", clip_3s, "--bundle", tmp_path / "no-bundle", "--out", unwritable / name, says="cannot write into")
    assert str(unwritable) in line
    if unwritable != Path("/sys"):
        assert leftovers(unwritable) == []


@pytest.mark.parametrize("name", ["take.npz", "take.csv", "take.ply", "sub/frames"])
def test_animate_refuses_a_parent_that_is_a_file(capsys, tmp_path, model_never_loads, clip_3s, name):
    (tmp_path / "notes.txt").write_text("mine")
    refused(capsys, "animate", clip_3s, "--bundle", tmp_path, "--out", tmp_path / "notes.txt" / name, says="notes.txt is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_animate_refuses_a_file_where_a_folder_of_frames_is_meant(capsys, tmp_path, model_never_loads, clip_3s):
    (tmp_path / "frames").write_text("mine")
    refused(capsys, "animate", clip_3s, "--bundle", tmp_path, "--out", tmp_path / "frames", says="is a file, not a folder")
    assert (tmp_path / "frames").read_text() == "mine"


@pytest.mark.parametrize("name", ["take.mp4", "take.txt", "take.NPY"])
def test_animate_refuses_an_unknown_kind_of_output(capsys, tmp_path, model_never_loads, clip_3s, name):
    line = refused(capsys, "animate", clip_3s, "--bundle", tmp_path, "--out", tmp_path / name, says="unknown kind of output")
    for known in (".npz", ".csv", ".ply", ".obj", "a folder without a suffix"):
        assert known in line
    assert not (tmp_path / name).exists()  # no folder named take.mp4


def test_animate_refuses_to_write_over_its_audio(capsys, tmp_path, model_never_loads):
    for name in ("speech.npz", "speech.csv", "speech"):
        audio = write_clip(tmp_path / name, 1.0, format="WAV")
        before = audio.read_bytes()
        refused(capsys, "animate", audio, "--bundle", tmp_path, "--out", audio, says="is the input audio file")
        assert audio.read_bytes() == before


def test_a_bad_out_costs_well_under_a_second_of_work(tmp_path, clip_3s):
    """The whole command, in its own process: no torch, no bundle, before the model."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "talking_head", "animate", str(clip_3s), "--bundle", str(tmp_path / "no-bundle"),
                             "--out", str(tmp_path / "take.mp4")], capture_output=True, text=True, cwd=ROOT.parent)
    seconds = time.perf_counter() - started
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "unknown kind of output" in result.stderr
    assert seconds < 5, seconds  # a model load and inference take far longer; this is Python's start-up


# --- numeric and named options -------------------------------------------------------------------


@pytest.mark.parametrize("option, value, says", [
    ("--seed", "-1", "from 0 to 2147483647"),
    ("--seed", str(2**31), "from 0 to 2147483647"),
    ("--seed", str(2**64), "from 0 to 2147483647"),
    ("--seed", "1.5", "whole number"),
    ("--blend-weight", "1.5", "from 0 to 1"),
    ("--blend-weight", "-0.1", "from 0 to 1"),
    ("--blend-weight", "nan", "finite"),
    ("--device", "tpu", "unknown device"),
])
def test_animate_options_are_checked_by_the_parser(capsys, tmp_path, model_never_loads, clip_3s, option, value, says):
    line = refused(capsys, "animate", clip_3s, "--bundle", tmp_path, "--out", tmp_path / "t.npz", option, value, says=says)
    assert f"argument {option}" in line
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("option, value, says", [
    ("--seed", "-1", "from 0 to 2147483647"),
    ("--seed", str(2**40), "from 0 to 2147483647"),
    ("--fps", "0", "from 1 to 1000"),
    ("--fps", "-5", "from 1 to 1000"),
    ("--fps", "inf", "finite"),
    ("--fps", "nan", "finite"),
    ("--device", "tpu", "unknown device"),
])
def test_bake_options_are_checked_by_the_parser(capsys, tmp_path, clip_3s, option, value, says):
    line = refused(capsys, "bake", clip_3s, "--bundle", tmp_path, "--blend", tmp_path / "t.blend", option, value, says=says)
    assert f"argument {option}" in line


@pytest.mark.parametrize("command", [["tune", "--bundle", "b", "--out", "s.json", "--data", "d"], ["train", "--data", "d", "--out", "o"],
                                     ["demo"], ["demo-biwi", "--template", "t.ply", "--out", "o"]])
def test_every_device_option_takes_only_known_devices(capsys, command):
    refused(capsys, *command, "--device", "tpu", says="unknown device 'tpu'; use one of auto, cpu, cuda")


def test_the_parser_knows_the_devices_torch_code_takes():
    from talking_head.core.device import CHOICES

    assert checks.DEVICES == CHOICES


def test_parser_mistakes_are_one_line_too(capsys):
    refused(capsys, "animate", says="the following arguments are required")
    refused(capsys, "animate", "a.wav", "--bundle", "b", "--out", "o.npz", "--sed", "1", says="unrecognized arguments: --sed")


def test_good_values_pass():
    assert checks.seed("0") == 0 and checks.seed(str(2**31 - 1)) == 2**31 - 1
    assert checks.fps("29.97") == pytest.approx(29.97) and checks.weight("0") == 0.0 and checks.weight("1") == 1.0


# --- outputs of bake and tune --------------------------------------------------------------------


@pytest.fixture
def no_blender(monkeypatch):
    """`import bpy` fails: the checks must come before Blender is touched."""
    monkeypatch.setitem(sys.modules, "bpy", None)


@pytest.mark.parametrize("option, name, says", [
    ("--blend", "take.txt", "must end in .blend"),
    ("--fbx", "take.abc", "must end in .fbx"),
    ("--abc", "take.fbx", "must end in .abc"),
    ("--preview", "take.jpg", "must end in .png"),
])
def test_bake_outputs_need_their_suffix(capsys, tmp_path, no_blender, clip_3s, option, name, says):
    extra = [] if option == "--blend" else ["--blend", tmp_path / "t.blend"]
    refused(capsys, "bake", clip_3s, "--bundle", tmp_path, *extra, option, tmp_path / name, says=says)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("option, name", [("--blend", "t.blend"), ("--fbx", "t.fbx"), ("--abc", "t.abc"), ("--preview", "p.png")])
def test_bake_refuses_unwritable_folders_before_blender_runs(capsys, tmp_path, unwritable, no_blender, clip_3s, option, name):
    extra = [] if option == "--blend" else ["--blend", tmp_path / "t.blend"]
    refused(capsys, "bake", clip_3s, "--bundle", tmp_path, *extra, option, unwritable / name, says=f"{option} {unwritable / name}: cannot write into")
    assert leftovers(tmp_path) == [p for p in ["read-only"] if (tmp_path / p).exists()]


def test_bake_never_writes_over_an_input(capsys, tmp_path, no_blender):
    audio = write_clip(tmp_path / "speech.fbx", 1.0, format="WAV")
    refused(capsys, "bake", audio, "--bundle", tmp_path, "--blend", tmp_path / "t.blend", "--fbx", audio, says="is the input audio file")


def test_tune_out_is_a_writable_json_file(capsys, tmp_path, unwritable, model_never_loads, tiny_bundle_dir):
    clip = ["--clip", "a.wav", "a.npy"]
    refused(capsys, "tune", "--bundle", tiny_bundle_dir, "--out", tmp_path / "style.txt", *clip, says="must end in .json")
    refused(capsys, "tune", "--bundle", tiny_bundle_dir, "--out", unwritable / "style.json", *clip, says="cannot write into")
    refused(capsys, "tune", "--bundle", tiny_bundle_dir, "--out", tiny_bundle_dir / "config.json", *clip, says="is the input bundle's config.json")
    refused(capsys, "tune", "--bundle", tiny_bundle_dir, "--out", tmp_path, *clip, says="must end in .json")


def test_demo_refuses_a_file_as_its_folder(capsys, tmp_path, no_blender):
    (tmp_path / "out").write_text("mine")
    refused(capsys, "demo", "--out", tmp_path / "out", says="is a file, not a folder")


# --- whole files: a full disk, a killed run, two runs at once ------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_the_earlier_npz_and_no_partial_file(capsys, tmp_path, monkeypatch, tiny_bundle_dir, clip_3s):
    out = tmp_path / "take.npz"
    real = np.savez

    def fill_the_disk(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        _disk_full()

    monkeypatch.setattr(np, "savez", fill_the_disk)
    refused(capsys, "animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", out, says="no space left on device (nothing was written there)")
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(np, "savez", real)
    assert main(["animate", str(clip_3s), "--bundle", str(tiny_bundle_dir), "--out", str(out)]) == 0
    good = out.read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(np, "savez", fill_the_disk)
    refused(capsys, "animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", out, says="the earlier file is unchanged")
    assert out.read_bytes() == good and leftovers(tmp_path) == ["take.npz"]


@pytest.mark.parametrize("target", ["frames", "take.ply"])
def test_a_full_disk_leaves_no_partial_frames(capsys, tmp_path, monkeypatch, tiny_bundle_dir, clip_3s, target):
    from talking_head.core import animation as animation_module

    real = animation_module.write_mesh
    written = []

    def fills_after_13(path, *args):
        if len(written) == 13:
            _disk_full()
        real(path, *args)
        written.append(path)

    monkeypatch.setattr(animation_module, "write_mesh", fills_after_13)
    out = tmp_path / "takes" / target
    refused(capsys, "animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", out, says="no space left on device")
    assert len(written) == 13 and not any(p.exists() for p in written)
    assert leftovers(tmp_path / "takes") == []


def test_a_full_disk_leaves_no_partial_csv(tmp_path, monkeypatch):
    from talking_head.core import live_link

    class FullDisk:
        def __init__(self, path, *args, **kwargs):
            self.f = open(path, "w")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:100])
            _disk_full()

    monkeypatch.setattr(live_link, "open", FullDisk, raising=False)
    with pytest.raises(OutputError, match="no space left on device"):
        live_link.write_live_link_csv(tmp_path / "take.csv", np.zeros((3, 52)), 25)
    assert leftovers(tmp_path) == []


def test_a_full_disk_during_tune_leaves_no_partial_style(capsys, tmp_path, monkeypatch, tiny_bundle_dir):
    from talking_head.core import tuning

    audio = write_clip(tmp_path / "a.wav", 1.0)
    np.save(tmp_path / "a.npy", np.zeros((25, 200, 3), np.float32))

    class Tuned:
        name, subject, error_before = "me", "F1", None

        def save(self, path):
            Path(path).write_text('{"name": "me", "p": [0.1, ')
            _disk_full()

    monkeypatch.setattr(tuning, "tune_style", lambda *args, **kwargs: Tuned())
    out = tmp_path / "styles" / "me.json"
    refused(capsys, "tune", "--bundle", tiny_bundle_dir, "--out", out, "--clip", audio, tmp_path / "a.npy", "--clip", audio, tmp_path / "a.npy",
            says="no space left on device")
    assert leftovers(tmp_path / "styles") == []


def test_atomic_files_get_ordinary_permissions(tmp_path):
    with atomic_path(tmp_path / "a.json") as temporary:
        temporary.write_text("{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert leftovers(tmp_path) == ["a.json"]


# A `talking-head` whose .npz writer is slow (the real bytes, in 20 pieces): a test can kill it
# while it writes, or let two overlap. With BARRIER set, each run waits after its first piece
# until two runs are writing.
SLOW_WRITER = """
import io, os, sys, time
import numpy as np
real = np.savez
def slow(file, *args, **kwargs):
    buffer = io.BytesIO()
    real(buffer, *args, **kwargs)
    data = buffer.getvalue()
    step = len(data) // 20 + 1
    for start in range(0, len(data), step):
        file.write(data[start:start + step])
        file.flush()
        if start == 0:
            print("WRITING", flush=True)
            barrier = os.environ.get("BARRIER")
            if barrier:
                open(os.path.join(barrier, str(os.getpid())), "w").close()
                deadline = time.time() + 60
                while len(os.listdir(barrier)) < 2 and time.time() < deadline:
                    time.sleep(0.02)
        time.sleep(0.05)
np.savez = slow
from talking_head.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def slow_animate(audio, bundle, out, seed, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_WRITER, "animate", str(audio), "--bundle", str(bundle), "--out", str(out),
                             "--seed", str(seed), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT.parent, env={**os.environ, **env})


def takes_of(bundle, audio, seeds) -> list[Animation]:
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator

    animator = Animator(ModelBundle.load(bundle), "cpu")
    return [animator.animate(str(audio), seed=seed) for seed in seeds]


def same_take(path: Path, take: Animation) -> bool:
    saved = Animation.load_npz(path)  # a corrupt or partial file fails here
    return all(np.allclose(getattr(saved, name), getattr(take, name), atol=1e-6) for name in ("vertices", "rotation", "emotional"))


@pytest.mark.slow
def test_killing_a_run_while_it_writes_keeps_the_earlier_take(tmp_path, tiny_bundle_dir, clip_3s):
    out = tmp_path / "take.npz"
    assert main(["animate", str(clip_3s), "--bundle", str(tiny_bundle_dir), "--out", str(out), "--seed", "1"]) == 0
    earlier, later = takes_of(tiny_bundle_dir, clip_3s, (1, 2))
    assert same_take(out, earlier) and not same_take(out, later)
    rng = random.Random(16)
    for _ in range(2):  # at random points of the write (it takes about a second)
        run = slow_animate(clip_3s, tiny_bundle_dir, out, seed=2)
        assert run.stdout.readline().strip() == "WRITING", run.stderr.read()
        time.sleep(rng.uniform(0.0, 0.8))
        run.kill()  # SIGKILL: no clean-up runs
        run.wait()
        assert run.returncode == -9
        assert same_take(out, earlier)
    run = slow_animate(clip_3s, tiny_bundle_dir, out, seed=2)
    assert run.wait(timeout=120) == 0, run.stderr.read()
    assert same_take(out, later)


@pytest.mark.slow
def test_two_runs_writing_one_out_leave_one_whole_take(tmp_path, tiny_bundle_dir, clip_3s):
    out = tmp_path / "take.npz"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    runs = [slow_animate(clip_3s, tiny_bundle_dir, out, seed=seed, BARRIER=str(barrier)) for seed in (1, 2)]
    for run in runs:
        assert run.wait(timeout=180) == 0, run.stderr.read()
    assert len(os.listdir(barrier)) == 2  # both were writing at once
    assert any(same_take(out, take) for take in takes_of(tiny_bundle_dir, clip_3s, (1, 2)))
    assert leftovers(tmp_path) == ["barrier", "take.npz"]


# --- a reused folder of frames -------------------------------------------------------------------


@pytest.mark.parametrize("target, stem", [("frames", "frame_"), ("take.ply", "take_")])
def test_a_reused_frames_folder_keeps_no_stale_frames_and_no_user_files_are_touched(capsys, tmp_path, tiny_bundle_dir, clip_3s, target, stem):
    out = tmp_path / "takes" / target
    folder = out if out.suffix == "" else out.parent
    assert main(["animate", str(clip_3s), "--bundle", str(tiny_bundle_dir), "--out", str(out)]) == 0  # 75 frames
    mine = ["notes.txt", f"{stem}final.ply", f"{stem}0001.ply", "other_00080.ply", f"{stem}00010.png"]
    for name in mine:
        (folder / name).write_text("mine")
    capsys.readouterr()
    shorter = write_clip(tmp_path / "short.wav", 2.0)
    assert main(["animate", str(shorter), "--bundle", str(tiny_bundle_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 50 meshes" in printed and "replaced an earlier take of 75 frames" in printed
    frames = FrameFiles.of(out).existing()
    assert [p.name for p in frames] == [f"{stem}{i:05d}.ply" for i in range(50)]
    assert sorted(leftovers(folder)) == sorted([p.name for p in frames] + mine)
    assert all((folder / name).read_text() == "mine" for name in mine)
