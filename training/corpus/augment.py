"""Acoustic augmentation: noise, reverberation, band limits and level, drawn per take."""

from __future__ import annotations

import numpy as np
from scipy import signal

from ...core.audio import SAMPLE_RATE


def augment(samples: np.ndarray, rng: np.random.Generator, probability: float = 0.6) -> tuple[np.ndarray, dict]:
    """-> (augmented samples (S,) float32, description). Timing is unchanged (same length)."""
    x = samples.astype(np.float64)
    applied: dict = {}
    if rng.random() >= probability:
        return samples, applied
    if rng.random() < 0.4:  # reverberation: exponentially decaying noise impulse response
        rt60 = float(rng.uniform(0.15, 0.6))
        length = int(rt60 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        ir = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0 / float(rng.uniform(0.3, 0.8))
        wet = signal.fftconvolve(x, ir)[: len(x)]
        x = wet / (np.abs(wet).max() + 1e-9) * np.abs(x).max()
        applied["reverb_rt60"] = round(rt60, 3)
    if rng.random() < 0.35:  # band limit: telephone or muffled
        if rng.random() < 0.5:
            sos = signal.butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
            applied["band"] = "300-3400"
        else:
            cutoff = float(rng.uniform(2500, 5000))
            sos = signal.butter(4, cutoff, btype="lowpass", fs=SAMPLE_RATE, output="sos")
            applied["band"] = f"0-{cutoff:.0f}"
        x = signal.sosfilt(sos, x)
    if rng.random() < 0.5:  # additive noise, white or pink, at an SNR
        snr = float(rng.uniform(10, 35))
        noise = rng.standard_normal(len(x))
        if rng.random() < 0.5:
            noise = signal.lfilter([0.049922, -0.095993, 0.050612, -0.004408], [1, -2.494956, 2.017265, -0.522189], noise)
        power = np.mean(x**2) + 1e-12
        noise *= np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
        x = x + noise
        applied["noise_snr_db"] = round(snr, 1)
    gain = float(rng.uniform(-12, 3))
    x = x * 10 ** (gain / 20)
    applied["gain_db"] = round(gain, 1)
    peak = np.abs(x).max()
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32), applied
