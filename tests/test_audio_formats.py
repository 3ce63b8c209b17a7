"""Which sound files the loader reads: the static list Blender's file filter is built from is
libsndfile's own, and a format it cannot read is refused with a line that says what to do."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from talking_head.core.audio import (
    AUDIO_EXTENSIONS,
    FILE_FILTER,
    READABLE_FORMATS,
    UNREADABLE_FORMATS,
    check_audio_path,
    load_audio,
)
from talking_head.core.errors import AudioError

from conftest import speech_like


def test_the_format_list_is_libsndfiles():
    assert set(READABLE_FORMATS) | set(UNREADABLE_FORMATS) == set(soundfile.available_formats())
    assert not set(READABLE_FORMATS) & set(UNREADABLE_FORMATS)


def test_the_file_filter_offers_exactly_the_readable_extensions():
    offered = FILE_FILTER.split(";")
    assert offered == [f"*{extension}" for extension in AUDIO_EXTENSIONS]
    assert {"*.wav", "*.flac", "*.ogg", "*.mp3", "*.aiff"} <= set(offered)
    assert not {"*.m4a", "*.aac", "*.mp4", "*.wma", "*.raw"} & set(offered)


@pytest.mark.parametrize("name", sorted(READABLE_FORMATS))
def test_each_format_written_by_libsndfile_is_read(tmp_path, name):
    extension = READABLE_FORMATS[name][0]
    path = tmp_path / f"clip{extension}"
    rate = 16_000
    samples = speech_like(1.0, rate)
    try:
        soundfile.write(str(path), samples, rate, format=name)
    except Exception as exc:  # a format libsndfile reads but cannot write (here) is not tested
        pytest.skip(f"libsndfile cannot write {name}: {exc}")
    loaded = load_audio(path)
    seconds = soundfile.info(str(path)).duration  # WVE and XI keep a fixed rate of their own
    assert loaded.dtype == np.float32 and abs(len(loaded) - seconds * rate) < 0.06 * rate


@pytest.mark.parametrize("name", ["voice.m4a", "voice.AAC", "take.mp4", "clip.wma"])
def test_other_formats_are_refused_by_name_before_reading(tmp_path, name):
    with pytest.raises(AudioError, match=r"cannot be read .*convert it first, e\.g\. ffmpeg -i"):
        check_audio_path(tmp_path / name)  # the file need not exist: nothing is read


def test_readable_names_pass_the_check():
    for name in ("a.wav", "b.WAV", "c.flac", "d.ogg", "e.mp3", "f.aif", "no_extension"):
        check_audio_path(name)


def test_loading_an_m4a_says_what_to_do(tmp_path):
    path = tmp_path / "voice.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    with pytest.raises(AudioError, match=r"'\.m4a' sound files cannot be read.*ffmpeg"):
        load_audio(path)


def test_a_wav_under_another_name_still_loads(tmp_path):
    path = tmp_path / "voice.dat"
    soundfile.write(str(path), speech_like(1.0), 16_000, format="WAV")
    assert len(load_audio(path)) == 16_000
