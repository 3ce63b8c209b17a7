"""Voice augmentation that synthetic voices lack: WORLD-vocoder resynthesis (pyworld) with the
vocal tract lengthened or shortened (spectral envelope warped along frequency), the pitch level
and range changed, the speaking rate changed, and the level.

Why: a dozen festival, flite and espeak voices span few vocal tracts and one way of making a
voice; a content encoder trained on them learns the voices, not the phones, and hears real
speakers poorly (README, Real voices). WORLD's analysis and resynthesis also gives every copy the
same vocoder character, so the encoder cannot tell the copies' origin from it.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ...core.audio import SAMPLE_RATE

FRAME_MS = 5.0


@dataclass
class Warp:
    """One draw: formant factor (> 1: shorter vocal tract, formants up), pitch factor, pitch range
    factor (around the utterance's median), rate (> 1: faster), gain in dB."""

    formant: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0
    rate: float = 1.0
    gain_db: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Warp":
        return cls(formant=float(np.exp(rng.uniform(np.log(0.84), np.log(1.2)))), pitch=float(np.exp(rng.uniform(np.log(0.7), np.log(1.45)))),
                   pitch_range=float(rng.uniform(0.6, 1.6)), rate=float(rng.uniform(0.85, 1.2)), gain_db=float(rng.uniform(-10, 2)))

    def describe(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def _pyworld():
    with warnings.catch_warnings():  # pyworld 0.3.5 imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        import pyworld

    return pyworld


def warp_envelope(envelope: np.ndarray, factor: float | np.ndarray) -> np.ndarray:
    """(T, F) spectral envelope, warped along frequency: out(f) = in(f / factor), edges held;
    `factor` one for the clip or one per frame."""
    bins = np.arange(envelope.shape[1], dtype=np.float64)
    factors = np.broadcast_to(np.asarray(factor, np.float64), (len(envelope),))
    return np.stack([np.interp(np.clip(bins / f, 0, envelope.shape[1] - 1), bins, frame) for f, frame in zip(factors, envelope)])


def analyse(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """WORLD analysis at FRAME_MS: (samples as float64, f0 (T,), envelope (T, F), aperiodicity (T, F))."""
    pw = _pyworld()
    x = np.ascontiguousarray(samples, np.float64)
    f0, times = pw.dio(x, SAMPLE_RATE, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, times, SAMPLE_RATE)
    return x, f0, pw.cheaptrick(x, f0, times, SAMPLE_RATE), pw.d4c(x, f0, times, SAMPLE_RATE)


def retime(f0: np.ndarray, voiced: np.ndarray, tracks: list[np.ndarray], rate: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """f0 and other (T, ...) parameter tracks resampled in time for speech `rate` times as fast:
    the phones keep their order, scaled; a frame stays unvoiced where its nearest source was."""
    position = np.linspace(0, len(f0) - 1, max(2, int(round(len(f0) / rate))))
    f0 = np.where(voiced[np.rint(position).astype(int)], _along_time(f0, position), 0.0)
    return f0, [_along_time(track, position) for track in tracks]


def synthesise(f0: np.ndarray, envelope: np.ndarray, aperiodicity: np.ndarray) -> np.ndarray:
    pw = _pyworld()
    return pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(envelope), np.ascontiguousarray(aperiodicity), SAMPLE_RATE, FRAME_MS)


def match_level(y: np.ndarray, reference: np.ndarray, gain_db: float) -> np.ndarray:
    """`y` at the peak level of `reference` plus `gain_db`, never above 0.99; float32."""
    y = y * (10 ** (gain_db / 20) * (np.abs(reference).max() / (np.abs(y).max() + 1e-9)))
    peak = np.abs(y).max()
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def warp_voice(samples: np.ndarray, warp: Warp) -> np.ndarray:
    """16 kHz samples -> the same words in a different voice, len(samples) / warp.rate long."""
    x, f0, envelope, aperiodicity = analyse(samples)
    voiced = f0 > 0
    if voiced.any():
        centre = np.median(np.log(f0[voiced]))
        log_f0 = centre + (np.log(f0[voiced]) - centre) * warp.pitch_range + np.log(warp.pitch)
        f0 = f0.copy()
        f0[voiced] = np.clip(np.exp(log_f0), 50.0, 600.0)
    if warp.formant != 1.0:  # shift_pitch's warps keep the vocal tract: no interpolation to make
        envelope = warp_envelope(envelope, warp.formant)
    if warp.rate != 1.0:
        f0, (envelope, aperiodicity) = retime(f0, voiced, [envelope, aperiodicity], warp.rate)
    y = synthesise(f0, envelope, aperiodicity)[: int(round(len(samples) / warp.rate))]
    return match_level(y, x, warp.gain_db)


def shift_pitch(samples: np.ndarray, semitones: float, pitch_range: float = 1.0) -> np.ndarray:
    """16 kHz samples -> the same words, timing and length, with F0 `semitones` higher and its
    movement around the median `pitch_range` times as wide (for a synthesiser that cannot)."""
    y = warp_voice(samples, Warp(pitch=float(2 ** (semitones / 12)), pitch_range=pitch_range))
    return np.pad(y, (0, max(0, len(samples) - len(y))))[: len(samples)]


def _along_time(track: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Linear interpolation of a (T, ...) track at fractional frame positions."""
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(track) - 1)
    frac = (position - lo).reshape(-1, *([1] * (track.ndim - 1)))
    return track[lo] * (1 - frac) + track[hi] * frac


def warp_phones(phones: list, rate: float) -> list:
    """Phone timings [name, start_s, end_s] of a copy spoken `rate` times as fast."""
    return [[name, round(start / rate, 5), round(end / rate, 5)] for name, start, end in phones]
