"""Many lines at once: `animate` and `bake` with several sound files or a folder. One model load, one
output per input named after it, a bad file reported in one line and skipped, exit code 2 when any
failed; mistakes in the outputs refused before the model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from talking_head.core.animation import Animation

from conftest import run_cli_captured as run_cli, write_clip


@pytest.fixture
def model_loads(monkeypatch) -> list[str]:
    """The bundles loaded while the test runs (ModelBundle.load is the one bundle loader)."""
    from talking_head.core.bundle import ModelBundle

    loads: list[str] = []
    real = ModelBundle.load.__func__

    def load(cls, path, *args, **kwargs):
        loads.append(str(path))
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(ModelBundle, "load", classmethod(load))
    return loads


def lines(folder: Path, count: int, seconds: float = 0.3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_clip(folder / f"line{i:02d}.wav", seconds + 0.04 * (i % 3), seed=i) for i in range(count)]


def test_twenty_files_one_model_load_a_corrupt_one_skipped(capsys, tmp_path, tiny_bundle_dir, model_loads):
    clips = lines(tmp_path / "lines", 20)
    clips[6].write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")  # a corrupt file among them
    out = tmp_path / "takes"
    code, printed, err = run_cli(capsys, "animate", *clips, "--bundle", tiny_bundle_dir, "--out", out, "--seed", "3")
    assert code == 2
    assert len(model_loads) == 1
    errors = [line for line in err.splitlines() if line.startswith("talking-head:")]
    assert errors == [
        f"talking-head: skipped {clips[6]}: not a readable audio file " + errors[0].split("not a readable audio file ", 1)[1],
        f"talking-head: 1 of 20 files failed: {clips[6]}",
    ]
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c.stem}.npz" for c in clips if c != clips[6])
    for clip in clips:
        if clip != clips[6]:
            take = Animation.load_npz(out / f"{clip.stem}.npz")
            assert take.n_frames == round(25 * (0.3 + 0.04 * (int(clip.stem[4:]) % 3)))
            assert np.all(np.isfinite(take.vertices))
    assert printed.count("wrote ") == 19 and f"animated 19 of 20 sound files into {out}" in printed


def test_a_take_of_many_is_the_take_of_one(capsys, tmp_path, tiny_bundle_dir):
    """Batch and single calls give the same arrays; the single call's naming and lines are as ever."""
    clips = lines(tmp_path / "lines", 2, seconds=0.6)
    code, printed, _ = run_cli(capsys, "animate", clips[0], "--bundle", tiny_bundle_dir, "--out", tmp_path / "one.npz", "--seed", "5")
    assert code == 0 and printed.splitlines()[0] == f"wrote 15 frames to {tmp_path / 'one.npz'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lines", "one.npz"]
    assert run_cli(capsys, "animate", *clips, "--bundle", tiny_bundle_dir, "--out", tmp_path / "many", "--seed", "5")[0] == 0
    one, many = Animation.load_npz(tmp_path / "one.npz"), Animation.load_npz(tmp_path / "many" / "line00.npz")
    np.testing.assert_array_equal(one.vertices, many.vertices)
    np.testing.assert_array_equal(one.rotation, many.rotation)


def test_a_folder_gives_its_sound_files_sorted(capsys, tmp_path, tiny_bundle_dir, model_loads):
    folder = tmp_path / "dialogue"
    lines(folder, 3)
    write_clip(folder / "b_extra.FLAC", 0.3, format="FLAC")
    (folder / "notes.txt").write_text("not a sound file")
    (folder / "._line00.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: left out
    lines(folder / "guard", 2)
    out = tmp_path / "takes"
    code, printed, err = run_cli(capsys, "animate", folder, "--bundle", tiny_bundle_dir, "--out", out, "--format", "obj")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["b_extra", "line00", "line01", "line02"]  # not the sub-folder's
    assert len(list((out / "line00").glob("frame_*.obj"))) == round(25 * 0.3)
    written = [line.split(" to ")[-1] for line in printed.splitlines() if line.startswith("wrote")]
    assert written == [str(out / name) for name in ("b_extra", "line00", "line01", "line02")]  # in name order
    code, _, err = run_cli(capsys, "animate", folder, "--bundle", tiny_bundle_dir, "--out", tmp_path / "all", "--recursive")
    assert code == 0, err
    assert sorted(str(p.relative_to(tmp_path / "all")) for p in (tmp_path / "all").rglob("*.npz")) == [
        "b_extra.npz", "guard/line00.npz", "guard/line01.npz", "line00.npz", "line01.npz", "line02.npz"]
    assert len(model_loads) == 2  # one a call


def test_a_single_file_with_format_is_named_after_it(capsys, tmp_path, tiny_bundle_dir):
    clip = lines(tmp_path / "lines", 1)[0]
    code, _, err = run_cli(capsys, "animate", clip, "--bundle", tiny_bundle_dir, "--out", tmp_path / "takes", "--format", "npz")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "takes").iterdir()] == ["line00.npz"]


def refused(capsys, *args, says: str) -> str:
    code, _, err = run_cli(capsys, *args)
    lines_ = err.splitlines()
    assert code == 2 and len(lines_) == 1 and lines_[0].startswith("talking-head: error: ") and says in lines_[0], err
    return lines_[0]


def test_two_inputs_of_one_name_are_refused_before_any_work(capsys, tmp_path, model_never_loads):
    a = lines(tmp_path / "a", 2)
    b = lines(tmp_path / "b", 1)
    flac = write_clip(tmp_path / "b" / "LINE01.flac", 0.3, format="FLAC")
    out = tmp_path / "takes"
    refused(capsys, "animate", *a, *b, "--bundle", tmp_path, "--out", out, says=f"{a[0]} and {b[0]} would write outputs of one name (line00)")
    refused(capsys, "animate", tmp_path / "a", flac, "--bundle", tmp_path, "--out", out, says="one name (LINE01)")  # case does not tell them apart
    refused(capsys, "animate", a[0], tmp_path / "a", "--bundle", tmp_path, "--out", out, says=f"{a[0]} is given twice")
    assert not out.exists()


def test_several_inputs_need_an_out_folder(capsys, tmp_path, model_never_loads):
    clips = lines(tmp_path / "lines", 2)
    (tmp_path / "take.npz").write_bytes(b"mine")
    refused(capsys, "animate", *clips, "--bundle", tmp_path, "--out", tmp_path / "take.npz", says="is a file: with several inputs, --out names a folder")
    refused(capsys, "animate", *clips, "--bundle", tmp_path, "--out", tmp_path / "new.csv", says="names a folder, where each input writes NAME.npz, not one .csv file")
    refused(capsys, "animate", clips[0], "--bundle", tmp_path, "--out", tmp_path / "new.npz", "--format", "npz", says="with --format, --out names a folder")
    assert (tmp_path / "take.npz").read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir()) == ["lines", "take.npz"]


def test_a_folder_without_sound_files_is_refused(capsys, tmp_path, model_never_loads):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    refused(capsys, "animate", tmp_path / "empty", "--bundle", tmp_path, "--out", tmp_path / "o", says="holds no sound files")


def test_an_output_never_names_an_input(capsys, tmp_path, model_never_loads):
    clips = lines(tmp_path, 2)
    sound = write_clip(tmp_path / "line00.npz", 0.3, format="WAV")  # a WAV named .npz: its output would be itself
    refused(capsys, "animate", clips[1], sound, "--bundle", tmp_path, "--out", tmp_path, says="is the input audio file")


def test_every_file_failing_still_ends_in_one_summary(capsys, tmp_path, tiny_bundle_dir):
    folder = tmp_path / "lines"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (folder / name).write_text("not audio")
    code, _, err = run_cli(capsys, "animate", folder, tmp_path / "missing.wav", "--bundle", tiny_bundle_dir, "--out", tmp_path / "takes")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("talking-head:")]
    assert len(errors) == 5 and "skipped" in errors[3] and "audio file not found" in errors[3]
    assert errors[-1] == f"talking-head: 4 of 4 files failed: {folder / 'a.wav'}, {folder / 'b.wav'}, {folder / 'c.wav'}, {tmp_path / 'missing.wav'}"
    assert not (tmp_path / "takes").exists()


def test_ctrl_c_leaves_finished_files_whole_and_no_partial_one(capsys, tmp_path, tiny_bundle_dir, monkeypatch):
    from talking_head.core import pipeline

    clips = lines(tmp_path / "lines", 5)
    real, calls = pipeline.animate_task, []

    def interrupted_on_the_third(task, *args, **kwargs):
        calls.append(task.audio)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task, *args, **kwargs)

    monkeypatch.setattr(pipeline, "animate_task", interrupted_on_the_third)
    out = tmp_path / "takes"
    code, _, err = run_cli(capsys, "animate", *clips, "--bundle", tiny_bundle_dir, "--out", out)
    assert code == 130
    assert "stopped at file 3 of 5; 2 done are whole" in err and err.strip().endswith("talking-head: cancelled")
    assert sorted(p.name for p in out.iterdir()) == ["line00.npz", "line01.npz"]  # no hidden .partial file either
    for name in ("line00.npz", "line01.npz"):
        assert Animation.load_npz(out / name).n_frames > 0


def test_a_csv_batch_without_arkit_channels_is_refused_once(capsys, tmp_path, tiny_bundle_dir):
    clips = lines(tmp_path / "lines", 3)
    refused(capsys, "animate", *clips, "--bundle", tiny_bundle_dir, "--out", tmp_path / "takes", "--format", "csv", says="no ARKit channels")
    assert not (tmp_path / "takes").exists()


def test_the_command_in_its_own_process_has_no_traceback(tmp_path, tiny_bundle_dir):
    clips = lines(tmp_path / "lines", 2)
    clips[0].write_text("not audio")
    result = subprocess.run([sys.executable, "-m", "talking_head", "animate", *map(str, clips), "--bundle", str(tiny_bundle_dir),
                             "--out", str(tmp_path / "takes")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "talking-head: 1 of 2 files failed" in result.stderr and (tmp_path / "takes" / "line01.npz").is_file()


# --- bake ----------------------------------------------------------------------------------------


def test_bake_of_several_needs_output_folders_before_blender_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bpy", None)  # `import bpy` fails: the checks come first
    clips = lines(tmp_path / "lines", 2)
    refused(capsys, "bake", *clips, "--bundle", tmp_path, "--blend", tmp_path / "take.blend", says="--blend names a folder, where each input writes NAME.blend")
    (tmp_path / "f.fbx").write_text("mine")
    refused(capsys, "bake", *clips, "--bundle", tmp_path, "--blend", tmp_path / "b", "--fbx", tmp_path / "f.fbx", says="--fbx")
    refused(capsys, "bake", tmp_path / "lines", clips[0], "--bundle", tmp_path, "--blend", tmp_path / "b", says="is given twice")
    refused(capsys, "bake", *clips, "--bundle", tmp_path, "--blend", tmp_path / "b", says="needs Blender's Python module")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.fbx", "lines"]


@pytest.mark.slow
def test_bake_of_a_folder_writes_a_blend_each_with_one_worker(capsys, tmp_path, tiny_bundle_dir, monkeypatch):
    pytest.importorskip("bpy")
    from talking_head.blender import worker_client

    folder = tmp_path / "lines"
    lines(folder, 2, seconds=0.5)
    (folder / "broken.wav").write_bytes(b"RIFF")
    started = []
    real_popen = subprocess.Popen

    def popen(args, *rest, **kwargs):
        if worker_client.BOOTSTRAP in list(args):
            started.append(args)
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    code, printed, err = run_cli(capsys, "bake", folder, "--bundle", tiny_bundle_dir, "--blend", tmp_path / "blends", "--device", "cpu")
    assert code == 2, err
    assert sorted(p.name for p in (tmp_path / "blends").iterdir()) == ["line00.blend", "line01.blend"]
    assert f"talking-head: skipped {folder / 'broken.wav'}:" in err and f"1 of 3 files failed: {folder / 'broken.wav'}" in err
    assert f"{folder / 'line00.wav'}: animated " in printed and "baked 2 of 3 sound files" in printed
    assert len(started) == 1, started  # the worker stays loaded between files: one model load
