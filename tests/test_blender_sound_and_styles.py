"""In Blender: a sound the loader cannot read is refused with one line before anything runs
(Load Audio, and a strip the user added in the Video Sequencer), and the panel says what a
style is and what tuning one needs."""

from __future__ import annotations

import shutil

import pytest

bpy = pytest.importorskip("bpy")
soundfile = pytest.importorskip("soundfile")

import talking_head  # noqa: E402
from talking_head.blender import session  # noqa: E402
from talking_head.blender.worker_client import WorkerProcess  # noqa: E402
from talking_head.core.audio import FILE_FILTER  # noqa: E402
from talking_head.core.errors import AudioError  # noqa: E402
from talking_head.operators.animate import TALKINGHEAD_OT_animate, WorkerOperator  # noqa: E402
from talking_head.panels import sidebar  # noqa: E402
from talking_head.training.tiny import make_tiny_bundle  # noqa: E402

from conftest import write_clip  # noqa: E402

REFUSED = r"'\.m4a' sound files cannot be read .*ffmpeg"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sound_formats")
    make_tiny_bundle(root / "small", n_vertices=200)
    clip = write_clip(root / "clip.wav", 1.0)
    m4a = root / "voice.m4a"
    shutil.copy(clip, m4a)  # Blender plays it (it sniffs the content); the loader goes by format
    return {"small": root / "small", "clip": clip, "m4a": m4a}


@pytest.fixture
def scene(data, monkeypatch):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    talking_head.register()
    scene = bpy.context.scene
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder, settings.device = "FOLDER", str(data["small"]), "cpu"
    assert bpy.ops.talking_head.add_template_head() == {"FINISHED"}

    def no_worker(*args, **kwargs):
        raise AssertionError("the worker was started")

    monkeypatch.setattr(WorkerProcess, "start", no_worker)
    yield scene
    talking_head.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_load_audio_offers_only_what_the_loader_reads(scene):
    assert bpy.ops.talking_head.load_audio.get_rna_type().properties["filter_glob"].default == FILE_FILTER
    assert "*.m4a" not in FILE_FILTER.split(";")


def test_load_audio_refuses_an_m4a_and_adds_no_strip(scene, data):
    with pytest.raises(RuntimeError, match=REFUSED):
        bpy.ops.talking_head.load_audio(filepath=str(data["m4a"]))
    assert session.sound_strips(scene) == []


def m4a_strip(scene, data, packed: bool = False):
    """A sound strip the user added in the Video Sequencer, its sound an .m4a file."""
    strip = session.add_sound_strip(scene, str(data["clip"]))
    strip.sound.filepath = str(data["m4a"])
    if packed:
        strip.sound.pack()
    scene.talking_head.strip = strip.name
    return strip


@pytest.mark.parametrize("packed", [False, True])
def test_animate_refuses_an_m4a_strip_before_the_worker_starts(scene, data, packed):
    strip = m4a_strip(scene, data, packed)
    assert (strip.sound.packed_file is not None) == packed
    with pytest.raises(AudioError, match=REFUSED):
        session.prepare(scene, scene.talking_head)
    with pytest.raises(RuntimeError, match=REFUSED):  # Animate from a script: execute
        bpy.ops.talking_head.animate()
    assert not scene.talking_head.running


class Animate(WorkerOperator):
    """The Animate button's path (invoke), its reports recorded."""

    prepare = TALKINGHEAD_OT_animate.prepare
    start = TALKINGHEAD_OT_animate.start

    def __init__(self) -> None:
        self.reports = []

    def report(self, kind, message) -> None:
        self.reports.append((next(iter(kind)), message))


class Context:
    def __init__(self, scene) -> None:
        self.scene, self.window_manager, self.window = scene, None, None


def test_the_animate_button_refuses_an_m4a_strip_in_one_line(scene, data):
    m4a_strip(scene, data)
    operator = Animate()
    assert operator.invoke(Context(scene), None) == {"CANCELLED"}
    [(kind, message)] = operator.reports
    assert kind == "ERROR" and "\n" not in message and "'.m4a' sound files cannot be read" in message
    assert operator._worker is None and not scene.talking_head.running


class Layout:
    """A stand-in for bpy's UILayout that records the labels drawn."""

    def __init__(self, labels: list) -> None:
        self.labels = labels
        self.scale_y, self.active, self.enabled = 1.0, True, True

    def label(self, text="", icon="NONE"):
        self.labels.append(text)

    def column(self, **kwargs):
        return self

    row = box = column

    def operator(self, *args, **kwargs):
        return type("Properties", (), {})()

    def prop(self, *args, **kwargs):
        pass

    prop_search = template_list = progress = prop


def drawn_labels(panel, context) -> list[str]:
    labels: list[str] = []
    panel.draw(type("Panel", (), {"layout": Layout(labels)})(), context)
    return labels


def test_the_panel_says_what_a_style_is_and_what_tuning_needs(scene):
    main = " ".join(drawn_labels(sidebar.TALKINGHEAD_PT_main, bpy.context))
    assert "Style: how the face speaks: a person the model was trained on, or a style tuned from clips." in main
    tuning = " ".join(drawn_labels(sidebar.TALKINGHEAD_PT_tuning, bpy.context))
    assert "face captured in the model's topology (3D scans, or a take of this add-on), not just their audio." in tuning
    assert all(len(line) <= 42 for line in drawn_labels(sidebar.TALKINGHEAD_PT_tuning, bpy.context))


def test_training_subjects_are_labelled_as_speakers(scene):
    items = talking_head.blender.styles.choice_items(scene.talking_head)
    subjects = [(identifier, label) for identifier, label, _, icon, _ in items if icon == "USER"]
    assert subjects and all(label == f"Speaker {identifier} (trained)" for identifier, label in subjects)
    assert scene.talking_head.subject == subjects[0][0]  # identifiers unchanged
