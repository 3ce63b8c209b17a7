"""What the worker is asked to do, as typed values: Blender builds them, the worker reads them, and
the command line builds the same `AnimateTask` for `animate`. Plain Python (no torch, no bpy) so
both sides share one definition; on the wire a task is JSON (`to_json` / `task_from_json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .emotion_direction import EmotionDirection, direction_from_json
from .errors import TalkingHeadError


class TaskError(TalkingHeadError):
    """A worker task file that is not one this version understands."""


@dataclass
class StyleChoice:
    """Who speaks: a training subject, or a tuned style file (METHOD.md section 9). For a style
    file, `subject` (optional) names the training subject whose speaking style Gn uses instead of
    the style's own."""

    subject: str = ""
    file: str = ""

    def to_json(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "StyleChoice":
        data = data or {}
        return cls(subject=str(data.get("subject") or ""), file=str(data.get("file") or ""))


@dataclass
class AnimateTask:
    """Animate one sound file with a bundle. `blend_with` mixes a second style in:
    p = w p(style) + (1 - w) p(blend_with), w = `blend_weight`. `blinks`: add core/eyes.py's
    blinks and gaze (seeded by `seed`). `emotion`: the directed emotion (core/emotion_direction.py),
    on the wire its JSON track (times in seconds). `transcript`, `recognise`, `phone_loop`, `rest_in_pauses`: what Gn
    reads and the mouth in pauses (core/pipeline.py `Animator.animate`)."""

    audio: str
    bundle: str
    out: str = ""  # the worker's result folder
    style: StyleChoice = field(default_factory=StyleChoice)
    blend_with: StyleChoice | None = None
    blend_weight: float = 1.0
    seed: int = 0
    with_head: bool = True
    device: str = "auto"
    precision: str = "auto"
    blinks: bool = True
    emotion: EmotionDirection | None = None
    transcript: str = ""  # the words spoken, for forced alignment (core/alignment.py); "" for none
    rest_in_pauses: bool = True  # fade the mouth-opening channels out where no speech is heard (core/pauses.py)
    recognise: bool = False  # without a transcript: recognise the words and weigh their phones in (core/alignment.py)
    phone_loop: bool = True  # without a transcript or --recognise: weigh the phones pocketsphinx hears in (core/phone_loop.py)
    heard_expressions: bool = True  # the voice's share gets the heard emotion's learned expressions (core/emotion_direction.py)

    kind = "animate"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["style"] = self.style.to_json()
        data["blend_with"] = self.blend_with.to_json() if self.blend_with is not None else None
        data["emotion"] = self.emotion.to_json() if self.emotion is not None else None
        return {"task": self.kind, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AnimateTask":
        blend = data.get("blend_with")
        return cls(
            audio=str(data["audio"]),
            bundle=str(data["bundle"]),
            out=str(data.get("out") or ""),
            style=StyleChoice.from_json(data.get("style")),
            blend_with=StyleChoice.from_json(blend) if blend else None,
            blend_weight=float(data.get("blend_weight", 1.0)),
            seed=int(data.get("seed", 0)),
            with_head=bool(data.get("with_head", True)),
            device=str(data.get("device", "auto")),
            precision=str(data.get("precision", "auto")),
            blinks=bool(data.get("blinks", True)),
            emotion=direction_from_json(data.get("emotion")),
            transcript=str(data.get("transcript") or ""),
            rest_in_pauses=bool(data.get("rest_in_pauses", True)),
            recognise=bool(data.get("recognise", False)),
            phone_loop=bool(data.get("phone_loop", True)),
            heard_expressions=bool(data.get("heard_expressions", True)),
        )


@dataclass
class TuneClipFile:
    """A tuning clip on disk: its sound, its faces (.npy (frames, V, 3) in template coordinates
    at the model's frame rate) and what the user called it (sound strip, object)."""

    audio: str
    mesh: str
    label: list[str] = field(default_factory=list)


@dataclass
class TuneTask:
    """Tune a style from clips. `speaking_style` empty: the clips pick the training subject."""

    bundle: str
    clips: list[TuneClipFile]
    out: str = ""
    name: str = "style"
    mode: str = "convex"
    speaking_style: str = ""
    device: str = "auto"

    kind = "tune"

    def to_json(self) -> dict[str, Any]:
        return {"task": self.kind, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TuneTask":
        return cls(
            bundle=str(data["bundle"]),
            clips=[TuneClipFile(str(c["audio"]), str(c["mesh"]), [str(x) for x in c.get("label") or ()]) for c in data.get("clips", ())],
            out=str(data.get("out") or ""),
            name=str(data.get("name") or "style"),
            mode=str(data.get("mode", "convex")),
            speaking_style=str(data.get("speaking_style") or ""),
            device=str(data.get("device", "auto")),
        )


Task = AnimateTask | TuneTask


def task_from_json(data: dict[str, Any]) -> Task:
    """The task a worker file holds; TaskError for anything else."""
    kinds = {AnimateTask.kind: AnimateTask, TuneTask.kind: TuneTask}
    kind = data.get("task", AnimateTask.kind) if isinstance(data, dict) else None
    if kind not in kinds:
        raise TaskError(f"not a Talking Head worker task: {str(data)[:80]}")
    try:
        return kinds[kind].from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise TaskError(f"a broken {kind} task ({type(exc).__name__}: {exc})") from None
