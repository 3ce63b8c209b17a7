"""Directing the emotion: what Ge and Gh read, instead of (or on top of) what the voice is heard as.

A bundle may carry **emotion prototypes** (`emotion_prototypes.safetensors`, written by
`talking-head bundle emotions`): per emotion class, the mean of the emotion encoder's hidden
states (De,) over the frames of a labelled speech set's clips of that class. An
`EmotionDirection` is a keyed track over the take: keys (time in seconds, {label: weight},
from-voice weight), **linear between keys and held before the first and after the last** (what
keyed sliders do). Per audio step j of face frame i (METHOD.md sections 4-6), with weights taken
at the frame's time i / fps:

    e'_j = v(t_i) * e_j + sum_c w_c(t_i) * proto_c

e_j being the encoder's hidden state (what the voice is heard as). Why this form: Ge (and Gh,
which reads the same e) only ever saw hidden states of real speech, and the prototypes are
averages of exactly those, so with v + sum w = 1 the input is a convex mix of points the
generators were trained on: `happy:1` feeds Ge the average happy clip's features, `happy:0.5`
half the voice and half that. The weights are not renormalised: v = 1 with w = 0 is the voice
exactly (the same floats, tested), and a sum above 1 (voice 1 + happy 1) over-drives the input
beyond what the generators saw.

A bundle may also carry **learned expressions** (`talking-head bundle expressions`,
training/emotion_expressions.py): per class a shape X_c (V, 3) that `add_expressions` adds to Ge's
faces with the direction's weights, ye'_t = ye_t + sum_c w_c(t) X_c: the expression the corpus
shows and the prototype-directed take misses (the demo encoder hears too little emotion for its
prototypes to differ).

An "offset" form that moved only the features' level (keeping their frame-to-frame variation) was
tried and measured: it closed the mouth less but told angry from happy no better, so it was not
kept (README, Direct the emotion). `emotion_probs` of the `Animation` stay what the voice was heard as. Plain Python
and numpy (torch only inside `apply`), so Blender's side can build tracks.
"""

from __future__ import annotations

from collections.abc import Sequence

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TalkingHeadError

PROTOTYPES = "emotion_prototypes.safetensors"
VOICE = "voice"  # the from-voice weight's name in --emotion and track files
HEARD = "heard"  # what the voice is heard as (core/emotion_hearing.py), as class weights: --emotion heard:0.8
# The voice's share of a take gets its heard classes' learned expressions at this weight. Chosen on
# the validation takes of the demo corpus, as synthesised and revoiced, among 0.25 / 0.5 / 0.75 / 1
# (README, Emotion you can hear): the least vertex error over their emotional and neutral takes
# together, in both (not the hearing alone: a uniform mix does about as well, see there).
HEARD_EXPRESSIONS = 0.5
BUILD_HINT = "build them with `talking-head bundle emotions BUNDLE --speech SPEECH_SET`"
EXPRESSIONS_HINT = "fit them again with `talking-head bundle expressions BUNDLE --data CORPUS`"


class EmotionError(TalkingHeadError):
    """A directed emotion the bundle cannot follow: unknown label, bad weight, bad track file,
    or a bundle without emotion prototypes."""


@dataclass
class EmotionPrototypes:
    """Per class the mean emotion-encoder hidden state: `vectors` (C, De), in `labels`' order.
    `clips`: how many clips made each; `weighting`: "mean" or "intensity" (frames weighted by
    their clip's labelled intensity); `measure`: what `bundle emotions` measured to choose."""

    labels: list[str]
    vectors: np.ndarray
    clips: list[int] = field(default_factory=list)
    weighting: str = "mean"
    measure: dict[str, Any] = field(default_factory=dict)
    expressions: np.ndarray | None = None  # (C, V, 3) learned expression shapes (training/emotion_expressions.py), or None
    expressions_measure: dict[str, Any] = field(default_factory=dict)
    head_gains: np.ndarray | None = None  # (C,) learned head-motion amplitude per class, or None

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save

        meta = {"labels": self.labels, "clips": self.clips, "weighting": self.weighting, "measure": self.measure}
        tensors = {"prototypes": np.ascontiguousarray(self.vectors, np.float32)}
        if self.expressions is not None:
            tensors["expressions"] = np.ascontiguousarray(self.expressions, np.float32)
            meta["expressions_measure"] = self.expressions_measure
        if self.head_gains is not None:
            tensors["head_gains"] = np.ascontiguousarray(self.head_gains, np.float32)
        Path(path).write_bytes(save(tensors, metadata={key: json.dumps(value) for key, value in meta.items()}))

    @classmethod
    def load(cls, path: str | Path, dim: int | None = None) -> "EmotionPrototypes":
        """Read a prototypes file; a one-line EmotionError when it is broken or of another width."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                vectors = f.get_tensor("prototypes").astype(np.float32)
                expressions = f.get_tensor("expressions").astype(np.float32) if "expressions" in f.keys() else None
                head_gains = f.get_tensor("head_gains").astype(np.float32) if "head_gains" in f.keys() else None
            labels = [str(x) for x in json.loads(meta["labels"])]
            clips = [int(x) for x in json.loads(meta.get("clips", "[]"))]
            weighting = str(json.loads(meta.get("weighting", '"mean"')))
            measure = json.loads(meta.get("measure", "{}"))
            expressions_measure = json.loads(meta.get("expressions_measure", "{}"))
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
            raise EmotionError(f"{path.name} in {path.parent} is broken ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); {BUILD_HINT}") from None
        if vectors.ndim != 2 or len(vectors) != len(labels) or (dim is not None and vectors.shape[1] != dim):
            raise EmotionError(f"{path.name} in {path.parent} holds {vectors.shape} prototypes for {len(labels)} labels, "
                               f"the emotion encoder gives {dim}-d features; {BUILD_HINT}")
        if expressions is not None and (expressions.ndim != 3 or len(expressions) != len(labels) or expressions.shape[2] != 3):
            raise EmotionError(f"{path.name} in {path.parent} holds {expressions.shape} learned expressions for {len(labels)} labels; {EXPRESSIONS_HINT}")
        if head_gains is not None and (head_gains.shape != (len(labels),) or not (head_gains >= 0).all()):
            raise EmotionError(f"{path.name} in {path.parent} holds head gains {head_gains.shape} for {len(labels)} labels; {EXPRESSIONS_HINT}")
        if not np.isfinite(vectors).all() or any(x is not None and not np.isfinite(x).all() for x in (expressions, head_gains)):
            raise EmotionError(f"{path.name} in {path.parent} has non-finite values; {BUILD_HINT}")
        return cls(labels, vectors, clips, weighting, measure, expressions, expressions_measure, head_gains)


@dataclass
class EmotionKey:
    """One key of the track: at `time` (seconds from the sound's start), weight per label (labels
    not named are 0) and the weight of what the voice is heard as."""

    time: float
    weights: dict[str, float] = field(default_factory=dict)
    from_voice: float = 1.0


@dataclass
class EmotionDirection:
    """A keyed emotion track over a take (linear between keys, held outside them)."""

    keys: list[EmotionKey]

    def __post_init__(self) -> None:
        if not self.keys:
            raise EmotionError("an emotion track needs at least one key")
        for key in self.keys:
            if not math.isfinite(key.time):
                raise EmotionError(f"an emotion key's time must be a number of seconds, not {key.time}")
            for name, value in [*key.weights.items(), (VOICE, key.from_voice)]:
                _check_weight(name, value)
        self.keys = sorted(self.keys, key=lambda k: k.time)

    @property
    def labels(self) -> list[str]:
        """Every label a key names."""
        return sorted({name for key in self.keys for name in key.weights})

    def is_voice_only(self) -> bool:
        return all(key.from_voice == 1.0 and not any(key.weights.values()) for key in self.keys)

    def check(self, known: list[str]) -> None:
        unknown = [name for name in self.labels if name not in known and name != HEARD]
        if unknown:
            raise EmotionError(f"unknown emotion {unknown[0]!r}: this bundle knows {', '.join(known)} (and {VOICE}, {HEARD})")

    def hears(self) -> bool:
        """Whether a key gives weight to what the voice is heard as (`heard`)."""
        return any(key.weights.get(HEARD, 0.0) > 0 for key in self.keys)

    def with_heard(self, heard: np.ndarray, labels: list[str], fps: float) -> "EmotionDirection":
        """The direction with `heard` resolved: at each face frame i, class c gets
        w_c(t_i) + h(t_i) p_ic (at most 1), h the `heard` weight and p (N, C) what the voice is
        heard as in `labels`' order; the voice's weight stays. So `heard:1` directs Ge and Gh by
        the heard emotion as sliders keyed every frame would (Audio2Face's emotion from audio)."""
        heard = np.asarray(heard, np.float64)
        times = np.arange(len(heard)) / float(fps)
        own = [name for name in self.labels if name != HEARD]
        table = [*own, HEARD]
        weights, voice = self.sample(times, table)
        classes = {name: heard[:, labels.index(name)] * weights[:, -1] for name in labels}
        for i, name in enumerate(own):
            classes[name] = classes.get(name, 0.0) + weights[:, i]
        keys = [EmotionKey(float(t), {name: float(min(1.0, values[i])) for name, values in classes.items()}, float(voice[i]))
                for i, t in enumerate(times)]
        return EmotionDirection(keys)

    def sample(self, times: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Weights at `times` (T,) seconds -> (weights (T, C) in `labels`' order, from_voice (T,))."""
        self.check(labels)
        key_times = np.array([key.time for key in self.keys], np.float64)
        table = np.array([[key.weights.get(name, 0.0) for name in labels] + [key.from_voice] for key in self.keys], np.float64)
        # np.interp: linear between keys, the first / last value held outside them.
        columns = [np.interp(times, key_times, table[:, c]) for c in range(table.shape[1])]
        values = np.stack(columns, axis=1) if columns else np.zeros((len(times), 0))
        return values[:, :-1], values[:, -1]

    def apply(self, emotion, prototypes: EmotionPrototypes, fps: float, k: int):
        """Emotion features (1, kN, De) torch tensor -> the directed features (same shape).
        Audio step j belongs to face frame i = j // k (the alignment of METHOD.md section 2), and
        takes the weights at that frame's time i / fps."""
        steps = emotion.shape[1]
        times = (np.arange(steps) // k) / float(fps)
        weights, voice = self.sample(times, prototypes.labels)
        return mix_prototypes(emotion, weights, voice, prototypes)

    def to_json(self) -> dict[str, Any]:
        return {"keys": [{"time": key.time, **key.weights, VOICE: key.from_voice} for key in self.keys]}

    @classmethod
    def from_json(cls, data: Any, fps: float | None = None, source: str = "the emotion track") -> "EmotionDirection":
        """{"keys": [{"time": S | "frame": F, LABEL: W, ..., "voice": V}, ...]}. A key without
        "voice" gets 1 - (sum of its weights), floored at 0. Frames need `fps` (the bundle's)."""
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
            raise EmotionError(f'{source} must be a JSON object {{"keys": [{{"time": 0.0, "happy": 0.8}}, ...]}} with at least one key')
        keys = []
        for index, entry in enumerate(data["keys"]):
            where = f"{source}, key {index + 1}"
            if not isinstance(entry, dict):
                raise EmotionError(f"{where}: a key is a JSON object such as {{\"time\": 1.5, \"angry\": 1.0}}")
            entry = dict(entry)
            if ("time" in entry) == ("frame" in entry):
                raise EmotionError(f'{where}: give either "time" (seconds) or "frame" (at the bundle\'s frame rate)')
            if "frame" in entry:
                if fps is None:
                    raise EmotionError(f"{where}: a frame needs the bundle's frame rate")
                time = _number(entry.pop("frame"), f"{where}: frame") / fps
            else:
                time = _number(entry.pop("time"), f"{where}: time")
            voice = entry.pop(VOICE, None)
            weights = {str(name): _number(value, f"{where}: {name}") for name, value in entry.items()}
            keys.append(_key(time, weights, voice, where))
        return cls(keys)


def parse_emotion(text: str) -> EmotionDirection:
    """`happy:0.8` or `happy:0.8,voice:0.2` -> a direction for the whole take. Without `voice`
    the voice gets 1 - (sum of the weights), floored at 0."""
    weights, voice = {}, None
    for part in (p.strip() for p in text.split(",")):
        name, sep, value = part.partition(":")
        name = name.strip()
        if not part or not sep or not name:
            raise EmotionError(f"--emotion takes LABEL:WEIGHT[,LABEL:WEIGHT...] such as happy:0.8 or happy:0.8,voice:0.2, not {text!r}")
        number = _number(value.strip(), f"--emotion {name}")
        if name == VOICE:
            voice = number
        elif name in weights:
            raise EmotionError(f"--emotion names {name!r} twice")
        else:
            weights[name] = number
    return EmotionDirection([_key(0.0, weights, voice, "--emotion")])


def read_emotion_track(path: str | Path, fps: float) -> EmotionDirection:
    """A track file (see `EmotionDirection.from_json`); one line for an unreadable or malformed file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EmotionError(f"cannot read the emotion track {path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from None
    except json.JSONDecodeError as exc:
        raise EmotionError(f"the emotion track {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    return EmotionDirection.from_json(data, fps, f"the emotion track {path.name}")


def direction_from_json(data: dict[str, Any] | None) -> EmotionDirection | None:
    """A task's direction (times in seconds, every key with "voice"), or None."""
    return None if not data else EmotionDirection.from_json(data)


def _key(time: float, weights: dict[str, float], voice: float | None, where: str) -> EmotionKey:
    for name, value in weights.items():
        _check_weight(name, value, where)
    if voice is None:
        voice = max(0.0, 1.0 - sum(weights.values()))
    _check_weight(VOICE, voice, where)
    return EmotionKey(float(time), weights, float(voice))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise EmotionError(f"{what} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EmotionError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise EmotionError(f"{what} must be a finite number, not {value!r}")
    return number


def _check_weight(name: str, value: float, where: str = "an emotion weight") -> None:
    if not 0.0 <= value <= 1.0:
        raise EmotionError(f"{where}: the weight of {name} must be from 0 to 1, not {value:g}")


def direct(emotion, direction: EmotionDirection | None, prototypes: EmotionPrototypes | None, fps: float, k: int, bundle: str = "the bundle"):
    """The emotion features Ge and Gh read: `emotion` (1, kN, De) itself without a direction (or
    with one that keeps the voice alone), else `direction.apply`. EmotionError for a bundle
    without prototypes or a label it does not know."""
    if direction is None or direction.is_voice_only():
        return emotion
    check_direction(direction, prototypes, bundle)
    return direction.apply(emotion, prototypes, fps, k)


def mix_prototypes(emotion, weights: np.ndarray, voice: np.ndarray, prototypes: EmotionPrototypes):
    """e'_j = v_j e_j + sum_c w_jc proto_c: emotion features (1, S, De) torch tensor, weights
    (S, C) and voice (S,) per audio step -> the features Ge and Gh read."""
    import torch

    weights_t = torch.as_tensor(weights, dtype=emotion.dtype, device=emotion.device)
    voice_t = torch.as_tensor(voice, dtype=emotion.dtype, device=emotion.device)
    protos = torch.as_tensor(prototypes.vectors, dtype=emotion.dtype, device=emotion.device)
    return voice_t[None, :, None] * emotion + (weights_t @ protos)[None]


def add_shapes(faces: np.ndarray, weights: np.ndarray, shapes: np.ndarray, chunk: int = 32) -> np.ndarray:
    """faces (N, V, 3) += weights (N, C) x shapes (C, V, 3), in place, a few frames at a time (no
    second whole-take array)."""
    flat = shapes.reshape(len(shapes), -1)
    for start in range(0, len(faces), chunk):
        part = slice(start, start + chunk)
        faces[part] += (weights[part].astype(np.float32) @ flat).reshape(-1, *faces.shape[1:])
    return faces


def _frame_weights(direction: EmotionDirection | None, prototypes: EmotionPrototypes | None, learned, frames: int,
                   fps: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(weights (N, C), voice (N,)) of the direction at each face frame's time, or None when there
    is no direction to follow or the bundle did not learn what would follow it (`learned`)."""
    if direction is None or direction.is_voice_only() or learned is None:
        return None
    return direction.sample(np.arange(frames) / float(fps), prototypes.labels)


def add_expressions(faces: np.ndarray, direction: EmotionDirection | None, prototypes: EmotionPrototypes | None, fps: float,
                    heard: np.ndarray | None = None, heard_labels: list[str] | None = None) -> np.ndarray:
    """Add the bundle's learned expression shapes to Ge's faces (N, V, 3), in place, weighted by
    the direction at each frame: ye'_t = ye_t + sum_c (w_c(t) + s v(t) p_c(t)) X_c
    (training/emotion_expressions.py), p (N, C) what the voice is heard as (`heard` in
    `heard_labels`' order; none when they are not the prototypes' classes), v the voice's weight
    (1 without a direction) and s = HEARD_EXPRESSIONS. Nothing without learned expressions;
    EmotionError for shapes of another mesh."""
    shapes = None if prototypes is None else prototypes.expressions
    if shapes is None:
        return faces
    sampled = _frame_weights(direction, prototypes, shapes, len(faces), fps)
    weights = None if sampled is None else sampled[0]
    if heard is not None and list(heard_labels or []) == list(prototypes.labels):
        voice = np.ones(len(faces)) if sampled is None else sampled[1]
        from_voice = HEARD_EXPRESSIONS * voice[:, None] * np.asarray(heard, np.float64)
        weights = from_voice if weights is None else weights + from_voice
    if weights is None:
        return faces
    if shapes.shape[1] != faces.shape[1]:
        raise EmotionError(f"the learned expressions are for {shapes.shape[1]} vertices, the faces have {faces.shape[1]}; {EXPRESSIONS_HINT}")
    return add_shapes(faces, weights, shapes)


def direct_head_motion(rotation: np.ndarray, translation: np.ndarray, direction: EmotionDirection | None,
                       prototypes: EmotionPrototypes | None, fps: float, voice_amplitude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gh's head motion (N, 3, 3), (N, 3) with the bundle's learned amplitude of each directed
    class, every angle and the translation times a per frame (training/emotion_expressions.py
    fits g_c: the corpus's head motion of the class over Gh's under the class's prototypes):

        a = (v h + sum_c w_c g_c + max(0, 1 - s)) / max(1, s),    s = v + sum_c w_c

    a mean of the gains and 1 (the voice's share, and whatever the weights leave) weighted by
    the weights: `happy:1` gives g_happy, `happy:0.5` half-way to it; never beyond the gains
    (sliders left at voice 1 with happy 1 give the mean of 1 and g_happy, not their sum), and
    `voice:0` alone does not freeze the head. h: `voice_amplitude` (N,), the voice's own
    amplitude per frame (`heard_amplitude`: what the voice is heard as), 1 when None; without a
    direction (or gains) the motion is scaled by h alone."""
    sampled = _frame_weights(direction, prototypes, None if prototypes is None else prototypes.head_gains, len(rotation), fps)
    if sampled is None:
        return (rotation, translation) if voice_amplitude is None else scale_head_motion(rotation, translation, voice_amplitude)
    weights, voice = sampled
    own = voice if voice_amplitude is None else voice * np.asarray(voice_amplitude, np.float64)
    total = voice + weights.sum(axis=1)
    amplitude = (own + weights @ prototypes.head_gains.astype(np.float64) + np.maximum(0.0, 1.0 - total)) / np.maximum(1.0, total)
    return scale_head_motion(rotation, translation, amplitude)


def scale_head_motion(rotation: np.ndarray, translation: np.ndarray, amplitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every angle of (N, 3, 3) rotations and the (N, 3) translation times amplitude (N,)."""
    from .geometry import matrices_to_quaternions, quaternions_to_matrices, scale_rotation

    amplitude = np.asarray(amplitude, np.float64)
    scaled = quaternions_to_matrices(scale_rotation(matrices_to_quaternions(rotation), amplitude))
    return scaled.astype(rotation.dtype), (translation * amplitude[:, None]).astype(translation.dtype)


def corpus_head_ratios(prototypes: EmotionPrototypes | None) -> np.ndarray | None:
    """(C,) how much more the corpus's takes of each class move the head than its neutral ones
    (training/emotion_expressions.py measures it beside the gains: `head_amplitude_degrees`), or
    None when the bundle did not measure it for every class and neutral."""
    if prototypes is None:
        return None
    amplitudes = prototypes.expressions_measure.get("head_amplitude_degrees", {})
    try:
        corpus = np.array([float(amplitudes[label]["corpus"]) for label in prototypes.labels])
        neutral = float(amplitudes["neutral"]["corpus"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(corpus).all() and (corpus > 0).all() and neutral > 0):
        return None
    return corpus / neutral


def heard_amplitude(heard: np.ndarray, labels: list[str], prototypes: EmotionPrototypes | None, mean: float | None = None,
                    fitted: Sequence[float] | None = None) -> np.ndarray | None:
    """(N,) the head amplitude of a voice heard as `heard` (N, C) (core/emotion_hearing.py):
    a = sum_c p_c r_c, r_c the corpus's head amplitude of class c over its neutral takes'
    (`corpus_head_ratios`), so a voice heard neutral keeps Gh's motion and one heard angry moves
    as much more as the corpus's angry takes move than its neutral ones (sad less). Why these
    ratios and not the gains g_c of a directed emotion: a directed take feeds Gh the class's
    prototype and g_c corrects what Gh makes of that; here Gh reads the voice, whose features
    the emotion encoder hears alike for every class (README, Head motion), so its motion is the
    neutral takes' and the corpus's own ratio is what is missing. `mean`: the mean of a over the
    corpus's training takes (config.json `heard_head_amplitude_mean`, `bundle head-balance`), by
    which a is divided: Gh's motion matches the corpus's average take, not its neutral ones, and
    no voice is ever heard wholly neutral, so undivided a raised every take (the revoiced corpus's
    neutral takes by 18%). None without those ratios or with other labels.

    `fitted` (config.json `heard_head_amplitudes`, one per label): a = sum_c p_c w_c with w fitted
    to the corpus's head amplitude on takes as the hearing hears them (training/head_balance.py
    `fit_heard_head_amplitudes`), which takes its confusions into account: the class ratios
    assume it hears every take's class, and it hears a neutral take 43% neutral."""
    if fitted is not None and len(fitted) == len(labels):
        return np.asarray(heard, dtype=np.float64) @ np.asarray(fitted, dtype=np.float64)
    ratios = corpus_head_ratios(prototypes)
    if ratios is None or list(labels) != list(prototypes.labels):
        return None
    amplitude = np.asarray(heard, dtype=np.float64) @ ratios
    return amplitude if mean is None else amplitude / mean


def check_direction(direction: EmotionDirection | None, prototypes: EmotionPrototypes | None, bundle: str = "the bundle") -> None:
    """EmotionError when the bundle cannot follow `direction` (no prototypes, an unknown label)."""
    if direction is None or direction.is_voice_only():
        return
    if prototypes is None:
        raise EmotionError(f"the bundle {bundle} has no emotion prototypes, so it cannot direct the emotion: {BUILD_HINT}")
    check_heard(direction, False, bundle)  # where the bundle can hear, `with_heard` resolved it before
    direction.check(prototypes.labels)


def check_heard(direction: EmotionDirection | None, can_hear: bool, bundle: str = "the bundle") -> None:
    """EmotionError when `direction` gives weight to `heard` and the bundle has no emotion hearing."""
    if direction is not None and direction.hears() and not can_hear:
        raise EmotionError(f"the bundle {bundle} has no emotion hearing, so it cannot follow {HEARD!r}: "
                           "fit one with `talking-head bundle hearing BUNDLE --speech SET`")


def heard_per_second(probs: np.ndarray, labels: list[str], fps: float) -> list[str]:
    """The top label of each whole or part second of emotion probabilities (N, C)."""
    per = max(1, int(round(fps)))
    return [labels[int(np.argmax(probs[i : i + per].mean(0)))] for i in range(0, len(probs), per)]


def heard_summary(probs: np.ndarray, labels: list[str], fps: float) -> str:
    """What the voice was heard as, per second, runs merged: "neutral 0-3 s, happy 3-5 s"."""
    tops = heard_per_second(np.asarray(probs), list(labels), fps)
    seconds = len(probs) / fps
    runs, begin = [], 0
    for i in range(1, len(tops) + 1):
        if i == len(tops) or tops[i] != tops[begin]:
            runs.append(f"{tops[begin]} {begin:g}-{min(i, seconds):.3g} s")
            begin = i
    return ", ".join(runs)
