"""Streaming: animate audio while it arrives, a chunk at a time, with a bounded delay (the paper's
window-based inference).

`Streamer.feed(samples)` takes the next 16 kHz mono samples and returns the frames that became
ready; `finish()` returns the rest. A frame is ready once `lookahead_s` of audio after its end has
arrived. Then, for the frames that are ready:

* The encoders (bidirectional wav2vec2s) run on the audio from `context_s` before the first new
  frame to the last sample heard, through their public `encode`: each new frame's features see
  at least `context_s` of the past and `lookahead_s` of the future. Only the new frames' features
  are kept. The encoders run at 50 Hz, the model's audio rate (k = 2 steps per 25 fps frame):
  model step j takes encoder frame j. (The offline pipeline stretches the M encoder frames of a
  whole clip over its 2N steps, j -> j (M - 1) / (2N - 1): within one step, 20 ms, of j; a stream
  cannot know the clip's length, so it does not stretch.)
* Gn, Ge and Gh go on decoding from their cached state (core/model.py `GenerationStream`, the
  same incremental decoding as `generate`), with the head-motion noise of the same seeded stream
  as the offline take (core/model.py `head_noise`): a stream and an offline take of one seed
  are comparable frame by frame.
* Emotion probabilities: the encoder averages its per-frame scores over the second around each
  frame, which needs 0.5 s after it. With a lookahead below that, the part of the second not
  heard yet is filled with the last score heard (the encoder's rule at the end of a clip): the
  probabilities of a frame are what the classifier says of [t - 0.5 s, t + lookahead] (or more,
  when more had arrived). Frame i takes encoder frame 2i, as model steps take theirs.
* With a bundle that has an emotion hearing (core/emotion_hearing.py), the emotion probabilities
  are instead what it hears in the last 2 s of audio that arrived with each block (a causal
  window: the offline take's windows are centred), ramped from the previous block's answer over
  the block's frames; the head's amplitude and the heard classes' learned expressions follow
  them as offline (`heard_amplitude`, `add_expressions`).
* ARKit channels (when the template has face landmarks): the offline solve fits the whole take
  at once, with a smoothness term between neighbouring frames (core/arkit.py `ArkitSolver`). A
  stream solves each block of new frames together with the `ARKIT_PAST_FRAMES` frames before it
  (their weights are not sent again), so the smoothness reaches back across blocks but not
  forward. On the demo clip's offline faces this lands 0.005 (mean, weights in [0, 1]) from the
  offline weights, solving each frame alone 0.012 (bench/streaming.py).

The result depends on the lookahead and, a little, on how the audio was cut into chunks (where
each encoder segment starts and ends); with a lookahead that covers the whole clip every frame
comes out in `finish()`, from the same encoder pass as the offline take's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .animation import Animation, add_head_motion
from .head_balance import finish_head_motion
from .emotion_direction import add_expressions, heard_amplitude, scale_head_motion
from .emotion_hearing import WINDOW_S, clip_features
from .arkit import ARKIT_NAMES
from .audio import SAMPLE_RATE, check_audio_path, frame_count
from .encoders import RECEPTIVE_FIELD, STRIDE
from .errors import AudioError
from .model import GenerationStream, head_noise
from .pipeline import Animator

DEFAULT_LOOKAHEAD_S = 0.5
DEFAULT_CONTEXT_S = 1.0
# Frames already sent that each block's ARKit solve is smoothed against (0.4 s).
ARKIT_PAST_FRAMES = 10
PCM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
# f32le samples beyond this (18 dB over full scale) are not audio: most likely s16le read as f32le.
PCM_FLOAT_LIMIT = 8.0


@dataclass
class StreamFrame:
    """One 25 fps frame of a stream, as the offline `Animation` has it at that index.

    vertices (V, 3): the face with head motion, v = R (ye - P) + P + tau; emotional, neutral (V, 3):
    Ge's and Gn's faces without head motion; rotation (3, 3), translation (3,): head motion about
    the bundle's pivot; emotion_probs (C,); arkit_weights (52,) in [0, 1], or None without landmarks.
    """

    index: int
    vertices: np.ndarray
    emotional: np.ndarray
    neutral: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    emotion_probs: np.ndarray
    arkit_weights: np.ndarray | None
    fps: int = 25

    @property
    def time_s(self) -> float:
        """Start of the frame's audio, in seconds from the stream's start."""
        return self.index / self.fps


class Streamer:
    """A loaded `Animator` turned into a stream: `feed` chunks of samples, get frames back."""

    def __init__(
        self,
        animator: Animator,
        subject: str | None = None,
        seed: int = 0,
        with_head: bool = True,
        person: np.ndarray | None = None,
        lookahead_s: float = DEFAULT_LOOKAHEAD_S,
        context_s: float = DEFAULT_CONTEXT_S,
        warm_up: bool = True,
    ) -> None:
        """subject, seed, with_head, person: as `Animator.animate`. lookahead_s: audio after a
        frame's end that must have arrived before the frame comes out (at least 5 ms, what the
        encoder's 25 ms receptive field reaches past a frame). context_s: past audio the encoders
        see before the first new frame. warm_up: run the models once on silence now, so the first
        real chunk does not pay for first-call set-up."""
        if not (np.isfinite(lookahead_s) and lookahead_s >= 0):
            raise ValueError(f"lookahead_s must be zero or more seconds, not {lookahead_s}")
        if not (np.isfinite(context_s) and context_s >= 0):
            raise ValueError(f"context_s must be zero or more seconds, not {context_s}")
        self.animator = animator
        bundle, cfg = animator.bundle, animator.bundle.config
        self.fps, self.k = cfg.fps, cfg.k
        self.samples_per_frame = SAMPLE_RATE / cfg.fps  # 640
        # Encoder frames per model audio step: 1 at 16 kHz, a 320-sample stride, k = 2, 25 fps.
        self.step_ratio = SAMPLE_RATE / (STRIDE * cfg.k * cfg.fps)
        self.lookahead = max(int(round(lookahead_s * SAMPLE_RATE)), RECEPTIVE_FIELD - STRIDE)
        self.context = int(round(context_s * SAMPLE_RATE / STRIDE)) * STRIDE
        self.lookahead_s, self.context_s = self.lookahead / SAMPLE_RATE, self.context / SAMPLE_RATE
        self.seed, self.with_head = seed, with_head and bundle.model.head is not None
        self.template = bundle.template.vertices.astype(np.float32)
        self.pivot = np.asarray(bundle.pivot, np.float32)
        self.config = cfg
        self.faces = bundle.template.faces
        self.hearing = bundle.emotion_hearing
        self.prototypes = bundle.emotion_prototypes
        self.emotion_labels = list(animator.emotion.labels) if self.hearing is None else list(self.hearing.labels)
        self._heard_audio = np.zeros(0, np.float32)  # the last WINDOW_S seconds, what the hearing listens to
        self._heard: np.ndarray | None = None  # the previous block's answer
        self.solver = animator.arkit_solver()
        self.arkit_names = list(ARKIT_NAMES) if self.solver is not None else []
        device = animator.device
        self._subject = torch.tensor([cfg.subject_index(subject) if subject else 0], device=device)
        self._person = None if person is None else torch.as_tensor(person, dtype=torch.float32).reshape(1, -1).to(device)
        if warm_up:
            self._warm_up()
        self._generator = GenerationStream(bundle.model, self._subject, self._person, self.with_head)
        self._recent_faces = np.zeros((0, len(self.template), 3), np.float32)  # the last frames' faces, for the ARKit solve
        self._head_last = None  # the head smoothing's last filtered frame (rotation vector, translation)
        self._audio = np.zeros(0, np.float32)  # samples from `_audio_start` on
        self._audio_start = 0
        self.received = 0  # samples fed so far
        self.emitted = 0  # frames returned so far
        self.finished = False

    # ------------------------------------------------------------------ the stream
    def feed(self, samples: np.ndarray) -> list[StreamFrame]:
        """Take the next samples (16 kHz mono, float in [-1, 1]); return the frames now ready."""
        if self.finished:
            raise AudioError("this stream has finished; start a new Streamer for more audio")
        chunk = np.asarray(samples, np.float32).reshape(-1)
        if not np.all(np.isfinite(chunk)):
            raise AudioError(f"the audio holds invalid (NaN or infinite) samples after {self.received / SAMPLE_RATE:.2f} s")
        self._audio = np.concatenate([self._audio, chunk])
        if self.hearing is not None:
            self._heard_audio = np.concatenate([self._heard_audio, chunk])[-int(WINDOW_S * SAMPLE_RATE):]
        self.received += len(chunk)
        ready = int((self.received - self.lookahead) // self.samples_per_frame)
        return self._emit(ready) if ready > self.emitted else []

    def finish(self) -> list[StreamFrame]:
        """The audio has ended: return the frames left (N = round(25 x seconds) in all, as offline)."""
        if self.finished:
            return []
        if self.received == 0:
            raise AudioError("no audio arrived: the stream was empty")
        if self.received < self.samples_per_frame:
            raise AudioError(f"the audio is {1000 * self.received / SAMPLE_RATE:.1f} ms long, shorter than one animation frame "
                             f"({1000 / self.fps:.0f} ms)")
        frames = self._emit(frame_count(self.received, self.fps))
        self.finished = True
        return frames

    # ------------------------------------------------------------------ one block of frames
    def _emit(self, end: int) -> list[StreamFrame]:
        first = self.emitted
        if end <= first:
            return []
        context, emotion, logits = self._features(first, end)
        device = self.animator.device
        noise = None
        if self.with_head:
            cfg = self.animator.bundle.config
            noise = head_noise(self.seed, self.k * end, cfg.d_model, first=self.k * first, sigma=cfg.head_noise_sigma).to(device)
        motion = self._generator.push(context.to(device), emotion.to(device), noise)
        probs = torch.softmax(logits, dim=-1).numpy() if self.hearing is None else self._hear(end - first)
        frames = self._frames(first, motion, probs)
        self.emitted = end
        keep = self._segment_start(end)  # the audio the next block's encoder pass starts from
        if keep > self._audio_start:
            self._audio = self._audio[keep - self._audio_start :]
            self._audio_start = keep
        return frames

    def _features(self, first: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder features of frames first .. end - 1: context (1, k n, Dc), emotion (1, k n, De),
        emotion logits (n, C), from one encoder pass over the audio around them."""
        begin = self._segment_start(first)
        segment = self._audio[begin - self._audio_start :]
        context = self.animator.context.encode(segment)  # (M, Dc), encoder frame m at samples begin + 320 m
        emotion = self.animator.emotion.encode(segment)
        offset = begin / STRIDE
        steps = np.arange(self.k * first, self.k * end) * self.step_ratio - offset
        faces = np.arange(first, end) * self.step_ratio * self.k - offset
        return (
            _rows(context, steps).unsqueeze(0),
            _rows(emotion.hidden, steps).unsqueeze(0),
            _rows(emotion.logits, faces),
        )

    def _hear(self, n: int) -> np.ndarray:
        """(n, C) what the last WINDOW_S seconds are heard as, ramped from the previous block's
        answer; the previous answer (uniform at first) while they hold no voiced speech."""
        labels = len(self.hearing.labels)
        before = np.full(labels, 1 / labels) if self._heard is None else self._heard
        x = clip_features(self._heard_audio) if len(self._heard_audio) >= SAMPLE_RATE // 10 else None
        now = before if x is None else self.hearing.probabilities(x)
        if self._heard is None:
            before = now
        self._heard = now
        ramp = (np.arange(1, n + 1) / n)[:, None]
        return ((1 - ramp) * before + ramp * now).astype(np.float32)

    def _segment_start(self, frame: int) -> int:
        """First sample of the encoder pass for frames from `frame` on: `context_s` before it, on
        the encoder's 20 ms grid, so its frames fall on the offline take's."""
        return max(0, int(frame * self.samples_per_frame) - self.context) // STRIDE * STRIDE

    def _frames(self, first: int, motion, probs: np.ndarray) -> list[StreamFrame]:
        shape = (-1, len(self.template), 3)
        neutral = motion.neutral[0].float().cpu().numpy().reshape(shape) + self.template
        emotional = motion.emotional[0].float().cpu().numpy().reshape(shape) + self.template
        if self.hearing is not None:  # the heard emotion's learned expressions, as offline
            add_expressions(emotional, None, self.prototypes, self.fps, probs, self.hearing.labels)
        rotation = motion.rotation[0].float().cpu().numpy()
        translation = motion.translation[0].float().cpu().numpy()
        amplitude = None if self.hearing is None else heard_amplitude(probs, self.hearing.labels, self.prototypes, self.config.heard_head_amplitude_mean,
                                                                               self.config.heard_head_amplitudes)
        if amplitude is not None and len(rotation):  # the head moves as the heard emotion's takes do
            rotation, translation = scale_head_motion(rotation, translation, amplitude)
        rotation, translation, self._head_last = finish_head_motion(rotation, translation, self.config, self._head_last)  # as offline
        # v_t = R_t (ye_t - P) + P + tau_t  (METHOD.md section 6)
        vertices = add_head_motion(emotional, rotation, translation, self.pivot)
        arkit = [None] * len(emotional)
        if self.solver is not None:
            faces = np.concatenate([self._recent_faces, emotional])
            arkit = self.solver.solve(faces, rest=self.template)[len(self._recent_faces) :]
            self._recent_faces = faces[-ARKIT_PAST_FRAMES:]
        return [
            StreamFrame(index=first + i, vertices=vertices[i], emotional=emotional[i], neutral=neutral[i], rotation=rotation[i],
                        translation=translation[i], emotion_probs=probs[i].astype(np.float32), arkit_weights=arkit[i], fps=self.fps)
            for i in range(len(emotional))
        ]

    def _warm_up(self) -> None:
        silence = np.zeros(SAMPLE_RATE // 2, np.float32)
        self.animator.context.encode(silence)
        self.animator.emotion.encode(silence)
        cfg = self.animator.bundle.config
        trial = GenerationStream(self.animator.bundle.model, self._subject, self._person, self.with_head)
        device = self.animator.device
        trial.push(torch.zeros(1, cfg.k, cfg.context_dim, device=device), torch.zeros(1, cfg.k, cfg.emotion_dim, device=device),
                   torch.zeros(1, cfg.k, cfg.d_model, device=device))
        if self.solver is not None:
            self.solver.solve(self.template[None], rest=self.template)

    # ------------------------------------------------------------------ results
    def animation(self, frames: list[StreamFrame]) -> Animation:
        """The frames of a stream (in order) as one `Animation`, to save like an offline take."""
        if not frames:
            raise AudioError("no frames to save: the stream produced none")
        stack = lambda name: np.stack([getattr(f, name) for f in frames]).astype(np.float32, copy=False)  # noqa: E731
        return Animation(
            vertices=stack("vertices"),
            neutral=stack("neutral"),
            emotional=stack("emotional"),
            rotation=stack("rotation"),
            translation=stack("translation"),
            emotion_probs=stack("emotion_probs"),
            emotion_labels=self.emotion_labels,
            pivot=self.pivot,
            fps=self.fps,
            faces=self.faces,
            arkit_weights=stack("arkit_weights") if self.solver is not None else None,
            arkit_names=self.arkit_names,
        )


def _rows(features: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    """Rows of `features` (M, C) at fractional `positions` (n,), linearly interpolated and held at
    the ends. At whole positions (the 50 Hz model on a 50 Hz encoder) the rows are taken as they are."""
    last = features.shape[0] - 1
    pos = np.clip(positions, 0, last)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, last)
    frac = pos - low
    rows = features[torch.from_numpy(low)]
    if not np.any(frac):
        return rows
    w = torch.from_numpy(frac.astype(np.float32)).unsqueeze(1)
    return rows * (1 - w) + features[torch.from_numpy(high)] * w


# ---------------------------------------------------------------------- latency


class LatencyMeter:
    """Latency of each frame: when it came out minus when the end of its audio would have arrived
    had the audio played in real time. The clock starts a chunk before the first chunk is handed
    over (the first chunk had just finished arriving), and sample s arrives s / 16 kHz later."""

    def __init__(self, samples_per_frame: float = SAMPLE_RATE / 25) -> None:
        self.samples_per_frame = samples_per_frame
        self.start: float | None = None
        self.received = 0
        self.latencies: list[float] = []
        self.busy = 0.0  # seconds spent in feed() and finish()

    def fed(self, samples: int, at: float | None = None) -> None:
        """A chunk of `samples` is handed over at `at` (time.perf_counter(); default now)."""
        at = time.perf_counter() if at is None else at
        if self.start is None:
            self.start = at - samples / SAMPLE_RATE
        self.received += samples

    def emitted(self, frames: list[StreamFrame], at: float | None = None) -> None:
        """These frames came out at `at` (default now)."""
        at = time.perf_counter() if at is None else at
        for frame in frames:
            end = min((frame.index + 1) * self.samples_per_frame, self.received)
            self.latencies.append(at - (self.start + end / SAMPLE_RATE))

    def summary(self) -> dict[str, float]:
        """first, median, p95 and max latency (seconds), and the frame count."""
        if not self.latencies:
            return {"frames": 0}
        x = np.asarray(self.latencies)
        return {"frames": len(x), "first": float(x[0]), "median": float(np.median(x)), "p95": float(np.percentile(x, 95)),
                "max": float(x.max()), "audio_s": self.received / SAMPLE_RATE, "busy_s": self.busy}


# ---------------------------------------------------------------------- sources


def sound_file_chunks(path: str | Path, chunk_s: float) -> Iterator[np.ndarray]:
    """A sound file read a chunk at a time, as 16 kHz mono float32 (the same samples as
    core/audio.py `load_audio`, resampled as a stream when the file's rate differs)."""
    import soundfile
    import soxr

    path = Path(path)
    check_audio_path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"audio path is a folder, not a sound file: {path}")
    try:
        f = soundfile.SoundFile(str(path))
    except Exception as exc:  # libsndfile reports unknown formats as several exception types
        text = str(exc).strip().splitlines()
        raise AudioError(f"not a readable audio file ({text[0] if text else type(exc).__name__}): {path}") from None
    with f:
        rate = f.samplerate
        resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        block = max(1, int(round(chunk_s * rate)))
        while True:
            data = f.read(block, dtype="float32", always_2d=True)
            last = len(data) < block
            mono = data.mean(axis=1).astype(np.float32)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if len(mono):
                yield mono
            if last:
                return


def pcm_chunks(stream: BinaryIO, pcm: str, chunk_s: float) -> Iterator[np.ndarray]:
    """Raw PCM (16 kHz mono, `pcm` "s16le" or "f32le") read a chunk at a time -> float32 samples."""
    dtype = PCM_FORMATS[pcm]
    size = dtype.itemsize
    want = max(1, int(round(chunk_s * SAMPLE_RATE))) * size
    rest = b""
    total = 0
    while True:
        data = stream.read(want - len(rest))
        if not data:
            break
        data, total = rest + data, total + len(data)
        whole = len(data) // size * size
        rest = data[whole:]
        if whole:
            samples = np.frombuffer(data[:whole], dtype)
            if pcm == "s16le":
                yield samples.astype(np.float32) / 32768.0
            else:
                yield _checked_float(samples, total)
    if rest:
        raise AudioError(f"the {pcm} input ended in the middle of a sample: {total} bytes is not a whole number of "
                         f"{size}-byte samples")


def _checked_float(samples: np.ndarray, total: int) -> np.ndarray:
    bad = ~np.isfinite(samples) | (np.abs(samples) > PCM_FLOAT_LIMIT)
    if np.any(bad):
        value = samples[np.argmax(bad)]
        raise AudioError(f"the f32le input holds a sample of {value:.3g} (near byte {total}): not float audio in [-1, 1]; "
                         "is it 16-bit? use --pcm s16le")
    return samples.astype(np.float32)
