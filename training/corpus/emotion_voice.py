"""Emotion that can be heard: WORLD-vocoder resynthesis (pyworld) that gives speech the acoustic
marks of an acted emotion, as real voices carry them.

Why: the synthesisers' emotions differ mostly in level (which normalisation removes) and in a
few hertz of F0 (less than between voices), so the emotion encoder trained on them heard real
acted speech below chance (issue 17). Real emotional speech differs in vocal effort (spectral
tilt), F0 level, range and contour, voice quality (breathy, pressed, irregular F0) and rate
(Scherer 2003; Murray & Arnott 1993). Each profile below moves those cues; the effect follows an
intensity track, so a corpus take keeps its timing (faces stay aligned) and its emotion rises
and falls as its facial expression does.

Neutral takes are resynthesised too, with small random cues, so the vocoder's own character
never tells emotional speech from neutral speech.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...core.audio import SAMPLE_RATE
from .voice_warp import Warp, analyse, match_level, retime, synthesise, warp_envelope


@dataclass(frozen=True)
class EmotionVoice:
    """What one emotion does to a voice at full intensity (0 / 1 = unchanged).

    pitch_st: F0 level in semitones; pitch_range: factor on F0 movement around the median;
    slope_st: F0 change from the first to the last voiced frame (rising > 0), in semitones;
    tilt_db: spectral tilt in dB per octave around 500 Hz (> 0: more vocal effort, brighter);
    formant: envelope stretched along frequency (> 1: lips spread, as in a smile);
    breath: aperiodicity mixed towards noise above 1 kHz (breathy voice);
    press: aperiodicity reduced (pressed, tense voice); jitter_st: F0 irregularity (semitones,
    std, smoothed over 15 ms); rate: speaking rate (only where timing may change); gain_db: level.
    """

    pitch_st: float = 0.0
    pitch_range: float = 1.0
    slope_st: float = 0.0
    tilt_db: float = 0.0
    formant: float = 1.0
    breath: float = 0.0
    press: float = 0.0
    jitter_st: float = 0.0
    rate: float = 1.0
    gain_db: float = 0.0

    def describe(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


IDENTITY = EmotionVoice()

# Directions from the literature on acted emotional speech (hot anger, elation, sadness,
# surprise); sizes chosen so a full-intensity take is unmistakable to a listener.
PROFILES: dict[str, EmotionVoice] = {
    "neutral": IDENTITY,
    "happy": EmotionVoice(pitch_st=4.0, pitch_range=1.6, slope_st=1.0, tilt_db=1.5, formant=1.04, jitter_st=0.05, rate=1.05, gain_db=2.0),
    "sad": EmotionVoice(pitch_st=-2.0, pitch_range=0.5, slope_st=-2.5, tilt_db=-3.0, formant=0.98, breath=0.35, jitter_st=0.15, rate=0.85,
                        gain_db=-6.0),
    "angry": EmotionVoice(pitch_st=5.0, pitch_range=1.4, slope_st=-2.0, tilt_db=4.0, press=0.5, jitter_st=0.35, rate=1.1, gain_db=6.0),
    "surprised": EmotionVoice(pitch_st=5.0, pitch_range=1.9, slope_st=4.0, tilt_db=1.0, formant=1.02, breath=0.1, gain_db=2.0),
}
_MULTIPLICATIVE = ("pitch_range", "formant", "rate")


def draw(emotion: str, rng: np.random.Generator, spread: float = 0.35) -> EmotionVoice:
    """The emotion's profile with each cue scaled by a random factor in [1 - spread, 1 + spread]
    (acting varies); neutral gets small random cues of its own (speakers vary)."""
    if emotion not in PROFILES:
        raise ValueError(f"no emotion voice for {emotion!r}; known: {', '.join(PROFILES)}")
    if emotion == "neutral":
        return EmotionVoice(pitch_st=float(rng.uniform(-1, 1)), pitch_range=float(rng.uniform(0.85, 1.15)), slope_st=float(rng.uniform(-0.7, 0.7)),
                            tilt_db=float(rng.uniform(-0.8, 0.8)), formant=float(rng.uniform(0.99, 1.01)), breath=float(rng.uniform(0, 0.08)),
                            press=float(rng.uniform(0, 0.1)), jitter_st=float(rng.uniform(0, 0.08)), rate=float(rng.uniform(0.95, 1.05)))
    profile = PROFILES[emotion]
    values = {}
    for name, value in asdict(profile).items():
        scale = float(rng.uniform(1 - spread, 1 + spread))
        if name in _MULTIPLICATIVE:
            values[name] = float(np.exp(np.log(value) * scale))
        else:
            values[name] = value * scale
    return EmotionVoice(**values)


def _per_frame(intensity: float | np.ndarray, frames: int) -> np.ndarray:
    """Intensity at each WORLD frame: a constant, or a track spread over the clip (any rate)."""
    track = np.atleast_1d(np.asarray(intensity, np.float64))
    if len(track) == 1:
        return np.full(frames, float(track[0]))
    return np.interp(np.linspace(0, len(track) - 1, frames), np.arange(len(track)), track)


def emotional_voice(samples: np.ndarray, voice: EmotionVoice, intensity: float | np.ndarray = 1.0, rng: np.random.Generator | None = None,
                    keep_timing: bool = False, speaker: Warp | None = None) -> np.ndarray:
    """16 kHz samples -> the same words with the emotion's cues, each cue times `intensity`
    (a number, or a track over the clip at any frame rate). The length changes by the voice's
    rate unless `keep_timing` (corpus takes, whose faces are aligned to the audio). `speaker`
    (formant, pitch and pitch range of a voice_warp.Warp; its rate and gain are ignored) makes
    another voice in the same pass, so emotions are heard on more vocal tracts than the corpus has."""
    rng = rng or np.random.default_rng(0)
    x, f0, envelope, aperiodicity = analyse(samples)
    weight = _per_frame(intensity, len(f0))
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(np.where(voiced, f0, 1.0))
        centre = np.median(log_f0[voiced])
        index = np.flatnonzero(voiced)
        position = np.clip((np.arange(len(f0)) - index[0]) / max(1, index[-1] - index[0]), 0, 1)
        jitter = rng.normal(0, 1, len(f0))
        jitter = np.convolve(jitter, np.ones(3) / np.sqrt(3), mode="same")
        semitones = weight * (voice.pitch_st + voice.slope_st * (position - 0.5) + voice.jitter_st * jitter)
        range_factor = np.exp(np.log(voice.pitch_range) * weight)
        if speaker is not None:
            range_factor, semitones = range_factor * speaker.pitch_range, semitones + 12 * np.log2(speaker.pitch)
        shifted = centre + (log_f0 - centre) * range_factor + semitones * np.log(2) / 12
        f0 = np.where(voiced, np.clip(np.exp(shifted), 50.0, 700.0), 0.0)
    frequency = np.linspace(0, SAMPLE_RATE / 2, envelope.shape[1])
    # Vocal effort moves energy from the first harmonics into the 0.5-4 kHz band (alpha ratio,
    # Hammarberg index): tilt pivots at 500 Hz.
    octaves = np.log2(np.maximum(frequency, 150.0) / 500.0)
    tilt = np.clip(weight[:, None] * voice.tilt_db * octaves[None, :], -15, 15)
    envelope = envelope * 10 ** (tilt / 10)
    if voice.formant != 1.0 or speaker is not None:
        envelope = warp_envelope(envelope, np.exp(np.log(voice.formant) * weight) * (speaker.formant if speaker is not None else 1.0))
    high = np.clip((frequency - 1000.0) / 2000.0, 0, 1)[None, :]
    aperiodicity = aperiodicity + (1 - aperiodicity) * np.clip(voice.breath * weight, 0, 1)[:, None] * high
    aperiodicity = aperiodicity * (1 - np.clip(voice.press * weight, 0, 0.9))[:, None]
    aperiodicity = np.clip(aperiodicity, 1e-3, 1.0)
    length = len(samples)
    if not keep_timing and voice.rate != 1.0:
        f0, (envelope, aperiodicity, weight) = retime(f0, voiced, [envelope, aperiodicity, weight], voice.rate)
        length = int(round(len(samples) / voice.rate))
    y = synthesise(f0, envelope, aperiodicity)
    y = np.pad(y, (0, max(0, length - len(y))))[:length]
    return match_level(y, x, voice.gain_db * float(weight.mean()))
