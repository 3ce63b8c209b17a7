"""The audio loader: formats, resampling, and every way a sound file can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from talking_head.core.audio import SAMPLE_RATE, load_audio
from talking_head.core.errors import AudioError

from conftest import speech_like


@pytest.mark.parametrize(
    "suffix,subtype",
    [
        (".wav", "PCM_U8"),
        (".wav", "PCM_16"),
        (".wav", "PCM_24"),
        (".wav", "PCM_32"),
        (".wav", "FLOAT"),
        (".flac", "PCM_16"),
        (".ogg", "VORBIS"),
        (".mp3", "MPEG_LAYER_III"),
    ],
)
def test_reads_common_formats_as_16k_mono(tmp_path, suffix, subtype):
    rate = 44_100
    stereo = np.stack([speech_like(1.0, rate), 0.5 * speech_like(1.0, rate, seed=1)], axis=1)
    path = tmp_path / f"clip{suffix}"
    soundfile.write(str(path), stereo, rate, subtype=subtype)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - SAMPLE_RATE) < 0.06 * SAMPLE_RATE  # MP3 adds encoder padding
    # the mono mix keeps the signal: correlate with the resampled reference
    reference = load_audio(_wav(tmp_path, stereo, rate))
    n = min(len(reference), len(samples))
    if suffix not in (".mp3", ".ogg"):  # lossy codecs shift and smear; level is enough there
        assert np.corrcoef(reference[:n], samples[:n])[0, 1] > 0.99
    assert 0.5 < np.abs(samples).max() / np.abs(reference).max() < 1.5


def _wav(folder, data, rate):
    path = folder / "reference.wav"
    soundfile.write(str(path), data, rate, subtype="FLOAT")
    return path


def test_resamples_to_16k(tmp_path):
    tone = np.sin(2 * np.pi * 440 * np.arange(48_000) / 48_000).astype(np.float32)
    path = tmp_path / "tone.wav"
    soundfile.write(str(path), tone, 48_000)
    samples = load_audio(path)
    assert len(samples) == 16_000
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(samples) - 440) < 2


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not audio at all, just text\n" * 20), "not a readable audio file"),
        (lambda p: soundfile.write(str(p), np.zeros((0,), np.float32), 16_000), "no samples"),
        (lambda p: soundfile.write(str(p), np.zeros(16_000, np.float32), 16_000), "silent"),
        (lambda p: soundfile.write(str(p), speech_like(0.02), 16_000), "shorter than one animation frame"),
    ],
    ids=["missing", "empty", "not-audio", "zero-length", "silent", "too-short"],
)
def test_bad_audio_gets_one_line_error(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    text = str(info.value)
    assert message in text and "\n" not in text and str(path) in text
