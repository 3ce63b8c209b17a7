"""Pauses: where the voice is silent, and the speaking face brought to rest there.

Where: silero-vad (MIT; its model ships inside the wheel, trained on real speech), or a forced
alignment's silences when a transcript is given. Why not the content encoder's own silence: on
real voices it hears breath and room noise as speech, and Gn, given even its own silence states,
settles with the lips apart (measured: 0.023 template units open, half the speaking average), so
the mouth stays half open in pauses (README, Real voices).

Rest: in pauses the face's ARKit channels that open the mouth (jaw open, lips apart, funnel) are
taken out, times 1 - w (w the speech weight of the frame, eased over `RAMP_S` inside each end of a pause
of at least `MIN_PAUSE_S`); everything else (a smile, a frown, brows) stays. Taking out Gn's whole speech displacement
instead was tried and measured: Ge's offset opens the mouth on its own (0.025 in pauses, no better).
"""

from __future__ import annotations

import numpy as np
import torch

from .arkit import ARKIT_NAMES, ArkitSolver
from .audio import SAMPLE_RATE
from .phone_features import is_silence, phone_key

RAMP_S = 0.08  # easing into and out of rest, inside each end of a pause
BILABIALS = ("p", "b", "m")  # the lips close on these, whatever the model made, when the phones are known
CLOSE_RAMP_S = 0.01  # easing into and out of a bilabial closure, outside the phone: chosen on the demo corpus's validation
# takes (lip opening against the ground truth's: 0.005-0.01 s best, 0.04 s 2.5% worse and worse than no closure; README)
MIN_PAUSE_S = 0.25  # shorter silences are not brought to rest
DETECTOR_PEAK = 0.5  # the level (99.9th percentile of |x|) the voice detector hears a clip at
DETECTOR_MAX_GAIN_DB = 40.0  # no more gain than this: room noise stays noise
DETECTOR_CONTEXT_S = 0.3  # silence the detector hears before and after a clip
_MODEL = None
_SEQUENCE = None
# The ARKit channels that part the lips or drop the jaw: taken out in pauses.
OPENING = ("jawOpen", "mouthClose", "mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight")


def _silero():
    """The silero_vad package, imported without its side effect: its model module calls
    torch.set_num_threads(1) on import, which left every later torch computation in the process
    on one thread (measured: the demo bundle's encoders 0.13 -> 0.23 s after a first take had
    brought the mouth to rest in pauses; in the Blender worker, every take after the first)."""
    threads = torch.get_num_threads()
    try:
        import silero_vad
    finally:
        torch.set_num_threads(threads)
    return silero_vad


def _model():
    global _MODEL
    if _MODEL is None:
        _MODEL = _silero().load_silero_vad()
    return _MODEL


def _sequence_model():
    """silero-vad's batched ("sequence") model, or None without onnxruntime. Why: the stock
    model runs one 32 ms frame per Python call (0.23 s for 11.5 s of audio on the 2-core CPU, a
    tenth of a whole run); the sequence model is the same network in one call per 16 s block
    (0.06 s with its import and load), and its probabilities are bit-exact (silero-vad's own
    claim; tests compare the segments of both)."""
    global _SEQUENCE
    if _SEQUENCE is None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
        _SEQUENCE = _silero().load_silero_vad(sequence=True)
    return _SEQUENCE


def available() -> bool:
    """True when silero-vad is installed (it is a dependency; an old environment may lack it)."""
    try:
        _silero()
    except ImportError:
        return False
    return True


def speech_segments(samples: np.ndarray, batched: bool = True) -> list[tuple[float, float]]:
    """16 kHz samples -> [(start_s, end_s)] of speech by silero-vad, short words kept (100 ms).

    `batched`: through the sequence model when onnxruntime is there (same segments, faster);
    False, or no onnxruntime: the stock frame-by-frame model."""
    audio, offset = for_detector(samples)
    # In samples, not seconds: silero-vad rounds seconds to `time_resolution` decimals (one by
    # default), so edges were up to 50 ms off and the mouth was brought to rest inside short words.
    options = {"sampling_rate": SAMPLE_RATE, "min_speech_duration_ms": 100}
    sequence = _sequence_model() if batched else None
    if sequence is not None:
        stamps = _silero().get_speech_timestamps_sequence(audio, sequence, **options)
    else:
        with torch.no_grad():
            stamps = _silero().get_speech_timestamps(torch.from_numpy(audio), _model(), **options)
        _model().reset_states()
    seconds = len(samples) / SAMPLE_RATE
    segments = [((s["start"] - offset) / SAMPLE_RATE, (s["end"] - offset) / SAMPLE_RATE) for s in stamps]
    return [(max(0.0, a), min(seconds, b)) for a, b in segments if b > 0 and a < seconds]


def for_detector(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """The clip as the voice detector should hear it, and the samples of silence put before it.

    Why: silero-vad found no speech at all in 53 of 300 FSDD digits (quiet, 0.3-0.4 s recordings),
    so the mouth was brought to rest over the whole word. It hears a clip best at a usual level and
    after some silence: brought to a peak (99.9th percentile, so one click does not set it) of
    DETECTOR_PEAK, with at most DETECTOR_MAX_GAIN_DB of gain, and DETECTOR_CONTEXT_S of silence on
    both sides, it missed 4 of the 300 (README, Real voices). Only the detector hears this copy."""
    audio = np.asarray(samples, np.float32)
    peak = float(np.percentile(np.abs(audio), 99.9)) if len(audio) else 0.0
    gain = min(DETECTOR_PEAK / peak, 10 ** (DETECTOR_MAX_GAIN_DB / 20)) if peak > 0 else 1.0
    pad = np.zeros(round(DETECTOR_CONTEXT_S * SAMPLE_RATE), np.float32)
    return np.ascontiguousarray(np.concatenate([pad, audio * np.float32(gain), pad])), len(pad)


def phones_within(phones: list, segments: list[tuple[float, float]]) -> list:
    """An alignment's phones whose centre lies in a speech segment; the others are dropped (read as
    silence). Why: a recogniser finds words in silence too (pocketsphinx hears "dog" in a second
    of digital zeros), and the mouth should not say them."""
    def heard(start: float, end: float) -> bool:
        centre = 0.5 * (float(start) + float(end))
        return any(a <= centre <= b for a, b in segments)

    return [p for p in phones if heard(p[1], p[2])]


def spoken(phones: list, segments: list[tuple[float, float]] | None) -> list | None:
    """Recognised or heard phones for Gn to weigh in: those `phones_within` speech `segments`
    (all of them when there are no segments: no voice detector), or None when nothing but
    silence is left."""
    kept = phones if segments is None else phones_within(phones, segments)
    return kept if any(not is_silence(p[0]) for p in kept) else None


def speech_from_phones(phones: list) -> list[tuple[float, float]]:
    """An alignment's [(phone, start_s, end_s)] -> speech segments (its non-silent phones, joined)."""
    segments: list[list[float]] = []
    for name, start, end in phones:
        if is_silence(name):
            continue
        if segments and float(start) <= segments[-1][1] + 1e-6:
            segments[-1][1] = float(end)
        else:
            segments.append([float(start), float(end)])
    return [(a, b) for a, b in segments]


def pauses_to_close(segments: list[tuple[float, float]], seconds: float, min_pause_s: float = MIN_PAUSE_S) -> list[tuple[float, float]]:
    """Speech segments -> the stretches to bring to rest: silences of at least `min_pause_s`,
    the clip's silent start and end included. Shorter gaps stay as the model made them: between
    close words, and at the edges of a short recording, the mouth need not close, and a voice
    detector's edges are least sure there (measured on FSDD's isolated digits, lip opening over
    their aligned speech: closing every gap took 14-30% off it, this rule 7-9%, when the detector
    missed quiet words; with `for_detector`, 4.0% and 0.5%)."""
    edges = [0.0] + [t for segment in segments for t in segment] + [seconds]
    gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
    return [(a, b) for a, b in gaps if b - a >= min_pause_s]


def speech_weights(paused: list[tuple[float, float]], steps: int, steps_per_s: float, ramp_s: float = RAMP_S) -> np.ndarray:
    """(steps,) in [0, 1]: 0 inside the `paused` stretches, 1 elsewhere, with a linear ramp of
    `ramp_s` inside each end of a stretch, so the mouth eases to and from rest instead of snapping."""
    centres = (np.arange(steps) + 0.5) / steps_per_s
    weight = np.ones(steps, np.float32)
    for start, end in paused:
        into = np.clip((centres - start) / ramp_s, 0.0, 1.0) if start > 0 else np.ones(steps)  # a clip's silent start is at rest from its first frame
        out_of = np.clip((end - centres) / ramp_s, 0.0, 1.0) if end < steps / steps_per_s else np.ones(steps)  # and its silent end to the last
        weight = np.minimum(weight, 1.0 - np.minimum(into, out_of))
    return weight


def closure_weights(phones: list, steps: int, steps_per_s: float, members: tuple[str, ...] = BILABIALS,
                    ramp_s: float = CLOSE_RAMP_S) -> np.ndarray:
    """(steps,) in [0, 1]: 0 on the steps of an aligned p, b or m (ARPAbet, stress marks
    ignored), eased over `ramp_s` before and after it, 1 elsewhere; for `to_rest`. Why: the lips
    meet on a bilabial; on real voices the model's lips stay 20-30% more apart there than on the
    synthetic voices it learned from (README, Real voices), and an animator sees a p that does not close."""
    spans = [(float(a) - ramp_s, float(b) + ramp_s) for name, a, b in phones if phone_key(name) in members]
    end = steps / steps_per_s
    return speech_weights([(max(a, 1e-6), min(b, end - 1e-6)) for a, b in spans], steps, steps_per_s, ramp_s)


def to_rest(emotional: np.ndarray, template: np.ndarray, weight: np.ndarray, solver: ArkitSolver, pad: int = 3) -> int:
    """In place: in each stretch of frames with weight < 1, the ARKit channels that open the mouth
    (`OPENING`) are solved for and taken out, times 1 - w. emotional: (N, V, 3) faces without
    head motion; weight: (N,). -> frames changed."""
    frames = np.nonzero(weight < 1.0)[0]
    if len(frames) == 0:
        return 0
    breaks = np.nonzero(np.diff(frames) > 1)[0]
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    ends = np.concatenate([frames[breaks], [frames[-1]]]) + 1
    opening = [ARKIT_NAMES.index(name) for name in OPENING]
    for start, end in zip(starts, ends):
        lo, hi = max(0, start - pad), min(len(emotional), end + pad)  # a little context for the solver's smoothness
        weights = solver.solve(emotional[lo:hi], rest=template)
        kept = np.zeros_like(weights)
        kept[:, opening] = weights[:, opening]
        fade = (1.0 - weight[lo:hi]).astype(np.float32)[:, None, None]
        emotional[lo:hi] -= fade * solver.reconstruct(kept)
    return len(frames)
