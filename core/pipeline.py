"""Sound file -> encoders -> Gn -> Ge -> Gh -> `Animation`: the main job, without Blender.

`animate_task` is the one way a clip is animated: the command line, the worker (and so the
panel and `bake`) and the demo all call it with an `AnimateTask`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .animation import Animation, add_head_motion
from .alignment import TranscriptError, align, recognised_phones
from .arkit import ARKIT_NAMES, ArkitSolver, TemplateLandmarksError, template_arkit_shapes
from .audio import SAMPLE_RATE, frame_count, load_audio
from .bundle import ModelBundle
from .device import resolve_device, resolve_precision
from .head_balance import finish_head_motion
from .emotion_direction import EmotionDirection, add_expressions, check_heard, direct, direct_head_motion, heard_amplitude
from .eyes import SKIPPED, EyeMotion, add_eyes, eye_motion
from .model import head_noise, interpolate_frames
from . import pauses, phone_loop
from .phone_features import PhonePrototypes, load_for_bundle
from .phone_loop import PhoneLoopJob
from .shape_cache import cached_shapes
from .style import Style, TuningError
from .tasks import AnimateTask

Progress = Callable[[str, int, int], None]


class Animator:
    """A loaded bundle with its encoders, ready to animate clip after clip."""

    def __init__(self, bundle: ModelBundle, device: str = "cpu", precision: str = "auto") -> None:
        """precision: "fp32", "bf16" (the encoders about twice as fast on CPUs with native bf16,
        features within about 2% of fp32) or "auto" (core/device.py `resolve_precision`); the
        generators always run in float32."""
        self.bundle = bundle
        self.device = device
        self.precision = resolve_precision(precision, device)
        precision = self.precision
        bundle.model.to(device)
        self.context, self.emotion = bundle.load_encoders(device, precision)
        self._arkit: ArkitSolver | None | bool = False  # built on first use; None: no landmarks
        self.arkit_problem = ""  # why there are no ARKit channels, when there are none
        self.eyes_problem = ""  # why takes get no blinks and gaze, once one was asked for in vain
        self.phones: PhonePrototypes | None = load_for_bundle(bundle.path, self.context.dim)
        self.pauses_problem = ""  # why pauses were not brought to rest, once that was asked for in vain
        self.recognise_problem = ""  # why the last take asked to recognise words did not follow any
        self._segments: tuple[np.ndarray, list] | None = None  # (samples, their speech segments) of the last take

    def arkit_solver(self) -> ArkitSolver | None:
        """The solver for the bundle's template's ARKit channels, or None when the template has no
        face landmarks (core/arkit.py `template_landmarks`)."""
        if self._arkit is False:
            template = self.bundle.template
            try:
                landmarks = self.bundle.config.landmarks
                shapes = cached_shapes(template.vertices, template.faces, landmarks,
                                       lambda: template_arkit_shapes(template.vertices, template.faces, landmarks))
                self._arkit = ArkitSolver(shapes)
            except TemplateLandmarksError as exc:
                self._arkit, self.arkit_problem = None, str(exc)
        return self._arkit

    def features(self, samples: np.ndarray, phones: list | None = None, recognised: list | None = None,
                 hear: Callable[[], list | None] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """16 kHz samples -> context (1, kN, Dc), emotion (1, kN, De), emotion probs (N, C).

        The context is the content encoder's hidden states; given `phones` (a forced alignment,
        [(phone, start_s, end_s)]) and a bundle with phone prototypes (core/phone_features.py), Gn
        reads the prototype of each aligned phone instead and the encoder is not run. Given
        `recognised` (the alignment of recognised words), Gn reads the prototypes weighted by the
        encoder's phone classifier and the recognised phones (`PhonePrototypes.blend`). `hear`
        (without those two): called once both encoders have run, for phones weighed in the same
        way (the heard phones, still being heard beside the encoders until then), or None."""
        cfg = self.bundle.config
        frames = frame_count(len(samples), cfg.fps)
        audio_frames = cfg.k * frames
        if (phones is not None or recognised is not None) and self.phones is None:
            raise TranscriptError(f"the bundle {self.bundle.path.name} has no phone prototypes, so it cannot follow "
                                  f"{'a transcript' if phones is not None else 'recognised words'}: "
                                  "build them with `talking-head bundle phones BUNDLE --speech SPEECH_SET`")
        if phones is not None:
            context = self.phones.features(self.phones.timeline(phones, audio_frames, cfg.k * cfg.fps))
        else:
            context = interpolate_frames(self.context.encode(samples).unsqueeze(0), audio_frames)
        emotion = self.emotion.encode(samples)
        if phones is None and recognised is None and hear is not None:
            recognised = hear()
        if phones is None and recognised is not None:
            context = self.phones.weigh(context, recognised, cfg.k * cfg.fps)
        probs = torch.softmax(interpolate_frames(emotion.logits.unsqueeze(0), frames)[0], dim=-1)
        return context, interpolate_frames(emotion.hidden.unsqueeze(0), audio_frames), probs

    def speech_weights(self, samples: np.ndarray, n_frames: int, phones: list | None = None) -> np.ndarray | None:
        """(N,) 1 while speaking, 0 in pauses (core/pauses.py): from the alignment when there is
        one, else silero-vad. None, and `pauses_problem` says why, when the face has no landmarks
        (no ARKit channels to close the mouth with) or silero-vad is missing."""
        if self.arkit_solver() is None:
            self.pauses_problem = "pauses were not brought to rest: " + self.arkit_problem
            return None
        if phones is not None:
            segments = pauses.speech_from_phones(phones)
        elif pauses.available():
            segments = self.speech_segments(samples)
        else:
            self.pauses_problem = "pauses were not brought to rest: silero-vad is not installed (`pip install silero-vad`)"
            return None
        paused = pauses.pauses_to_close(segments, len(samples) / SAMPLE_RATE)
        return pauses.speech_weights(paused, n_frames, self.bundle.config.fps)

    def animate(
        self,
        audio: str | Path | np.ndarray,
        subject: str | None = None,
        seed: int = 0,
        with_head: bool = True,
        person: np.ndarray | None = None,
        progress: Progress | None = None,
        blinks: bool = False,
        transcript: str = "",
        rest_in_pauses: bool = False,
        direction: EmotionDirection | None = None,
        recognise: bool = False,
        phone_loop: "bool | PhoneLoopJob" = False,
        heard_expressions: bool = True,
    ) -> Animation:
        """Animate one clip. `subject` picks Gn's speaking style and, unless `person` (a style's
        p*, shape (d,)) is given, Ge's person embedding. Same seed, same head motion. `blinks`:
        add core/eyes.py's blinks and gaze (seeded by `seed` too; `animate_task` asks for them).
        `transcript`: the words spoken; Gn reads the phone prototypes of their forced alignment
        (see `features`); with phone timings (a transcript or recognised words) the lips also meet
        on p, b and m (core/pauses.py `closure_weights`). `recognise` (without a transcript): recognise the words (pocketsphinx,
        English) and weigh their phones against the encoder's (see `features`); when none are
        recognised the encoder alone is read and `recognise_problem` says so. `phone_loop`
        (without a transcript or `recognise`; True, or a `PhoneLoopJob` already running on these
        samples): the phones pocketsphinx hears (recognised words, or its phone loop) are weighed in the same way
        (core/phone_loop.py; `animate_task` asks for it by default); a bundle without a phone
        classifier reads the encoder alone. `rest_in_pauses`: the ARKit channels that open the mouth are faded out
        where no speech is heard (core/pauses.py; the alignment's silences with a transcript, else
        silero-vad); `neutral` stays Gn's own. `direction`: the emotion
        Ge and Gh read instead of (or mixed with) the voice's (core/emotion_direction.py; needs the
        bundle's emotion prototypes); the take's `emotion_probs` stay what the voice is heard as.
        `heard_expressions` (with a bundle that has an emotion hearing and learned expressions): the
        voice's share of the take gets the heard classes' expressions (`add_expressions`)."""
        bundle, cfg, model = self.bundle, self.bundle.config, self.bundle.model
        samples = load_audio(audio) if not isinstance(audio, np.ndarray) else audio
        self._segments = None  # an array changed in place since the last take is heard again
        subject_index = cfg.subject_index(subject) if subject else 0
        check_heard(direction, bundle.emotion_hearing is not None, bundle.path.name)  # refused before any second is spent
        if progress:
            progress("encoding", 0, 1)
        phones = align(samples, transcript) if transcript else None
        recognised, self.recognise_problem = None, ""
        if recognise and phones is None:
            if self.phones is None or self.phones.classifier is None:  # refused before the recognition's seconds are spent
                lacks = "no phone prototypes" if self.phones is None else "phone prototypes without a phone classifier"
                raise TranscriptError(f"the bundle {self.bundle.path.name} has {lacks}, so it cannot follow recognised words: "
                                      "build them with `talking-head bundle phones BUNDLE --speech SPEECH_SET`")
            recognised, heard = recognised_phones(samples)
            if recognised is not None and pauses.available():  # words "recognised" where silero-vad hears no speech are dropped
                recognised = pauses.spoken(recognised, self.speech_segments(samples))
                if recognised is None:
                    heard = "no speech was heard"
            self.recognise_problem = "" if recognised is not None else f"{heard}: Gn read the content encoder alone"
        heard: list = []  # the heard phones, asked for once the encoders have run
        # What the voice is heard as (core/emotion_hearing.py): numpy and WORLD in a thread beside
        # the encoders and generators, which leave the GIL while they compute.
        hearing = None if bundle.emotion_hearing is None else _background(bundle.emotion_hearing.take, samples, frame_count(len(samples), cfg.fps), cfg.fps)

        def hear() -> list | None:
            heard.append(self.heard_phones(samples, phone_loop))
            return heard[0]

        context, emotion, probs = self.features(samples, phones, recognised, hear if phone_loop and phones is None and not recognise else None)
        if heard:
            recognised = heard[0]
        if direction is not None and direction.hears() and hearing is not None:  # `heard`: the heard emotion as class weights
            direction = direction.with_heard(hearing.result(), bundle.emotion_hearing.labels, cfg.fps)
        emotion = direct(emotion, direction, bundle.emotion_prototypes, cfg.fps, cfg.k, bundle.path.name)
        if progress:
            progress("encoding", 1, 1)
        noise = head_noise(seed, emotion.shape[1], cfg.d_model, sigma=cfg.head_noise_sigma)
        person_t = None if person is None else torch.as_tensor(person, dtype=torch.float32).reshape(1, -1).to(self.device)
        motion = model.generate(
            context.to(self.device),
            emotion.to(self.device),
            torch.tensor([subject_index], device=self.device),
            noise=noise.to(self.device),
            person=person_t,
            with_head=with_head,
            progress=(lambda done, total: progress("generating", done, total)) if progress else None,
        )
        del context, emotion
        template = bundle.template.vertices
        shape = (-1, cfg.n_vertices, 3)
        # The arrays are large (N x V x 3: 0.8 GB each for 10 minutes at 4,482 vertices). neutral
        # and emotional are the model's own tensors seen as numpy (float32 on the CPU: no copy) and
        # changed in place; anything else of that size is made a chunk of frames at a time.
        neutral = motion.neutral[0].float().cpu().numpy().reshape(shape)
        neutral += template
        if motion.emotional is motion.neutral:  # no emotion stage (a baseline bundle): the same faces
            emotional = neutral.copy()
        else:
            emotional = motion.emotional[0].float().cpu().numpy().reshape(shape)
            emotional += template
        heard_emotion = None if hearing is None else hearing.result()  # what the voice is heard as, per moment
        # The learned expression shapes (when the bundle has them) of a directed emotion and of the heard one, on Ge's faces.
        add_expressions(emotional, direction, bundle.emotion_prototypes, cfg.fps, heard_emotion if heard_expressions else None,
                        None if bundle.emotion_hearing is None else bundle.emotion_hearing.labels)
        weight = self.speech_weights(samples, len(emotional), phones) if rest_in_pauses else None
        known = phones if phones is not None else recognised  # phone timings, when a transcript or recognition gave them
        if known is not None and self.arkit_solver() is not None:  # the lips meet on p, b, m
            closure = pauses.closure_weights(known, len(emotional), cfg.fps)
            weight = closure if weight is None else np.minimum(weight, closure)
        if weight is not None:
            pauses.to_rest(emotional, template, weight, self.arkit_solver())
        # Blinks and gaze go on Ge's faces, before head motion and the ARKit solve: every output has them.
        eyes = self.eye_motion(samples, len(emotional), seed) if blinks else None
        if eyes is not None:
            add_eyes(emotional, self.arkit_solver().shapes, eyes)
        rotation = motion.rotation[0].float().cpu().numpy()
        translation = motion.translation[0].float().cpu().numpy()
        voice_amplitude = None
        if heard_emotion is not None:
            probs = torch.from_numpy(heard_emotion)
            # the voice's head moves as the corpus's takes of the heard emotion do
            voice_amplitude = heard_amplitude(heard_emotion, bundle.emotion_hearing.labels, bundle.emotion_prototypes, cfg.heard_head_amplitude_mean,
                                              cfg.heard_head_amplitudes)
        # a directed emotion's learned head-motion amplitude (when the bundle has it), the voice's share as heard
        rotation, translation = direct_head_motion(rotation, translation, direction, bundle.emotion_prototypes, cfg.fps, voice_amplitude)
        rotation, translation, _ = finish_head_motion(rotation, translation, cfg)  # nod, turn and tilt in the corpus's proportions, less shake
        del motion  # on a GPU, its tensors; on the CPU the arrays above keep their memory
        pivot = bundle.pivot
        # v_t = R_t (ye_t - P) + P + tau_t  (METHOD.md section 6)
        vertices = add_head_motion(emotional, rotation, translation, pivot)
        solver = self.arkit_solver()
        arkit = solver.solve(emotional, rest=template) if solver is not None else None
        return Animation(
            arkit_weights=arkit,
            arkit_names=list(ARKIT_NAMES) if arkit is not None else [],
            vertices=vertices,
            neutral=neutral,
            emotional=emotional,
            rotation=rotation,
            translation=translation,
            emotion_probs=probs.numpy().astype(np.float32, copy=False),
            emotion_labels=list(self.emotion.labels) if bundle.emotion_hearing is None else list(bundle.emotion_hearing.labels),
            pivot=pivot,
            fps=cfg.fps,
            faces=bundle.template.faces,
            blink_weights=None if eyes is None else eyes.blink,
            gaze=None if eyes is None else eyes.gaze,
        )

    def speech_segments(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """silero-vad's speech segments of `samples`, found once per take (heard phones and rest
        in pauses both ask)."""
        if self._segments is None or self._segments[0] is not samples:
            self._segments = (samples, pauses.speech_segments(samples))
        return self._segments[1]

    def hears_phones(self) -> bool:
        """True when the bundle can weigh heard phones in (phone prototypes with a classifier) and
        pocketsphinx is installed."""
        return self.phones is not None and self.phones.classifier is not None and phone_loop.available()

    def heard_phones(self, samples: np.ndarray, job: "bool | PhoneLoopJob") -> list | None:
        """The heard phones (core/phone_loop.py) inside silero-vad's speech (the rest read as silence), or None
        when the bundle cannot use them or none were heard."""
        if not self.hears_phones():
            return None
        heard = job.result() if isinstance(job, PhoneLoopJob) else phone_loop.heard_phones(samples)
        return pauses.spoken(heard, self.speech_segments(samples) if pauses.available() else None)

    def eye_motion(self, samples: np.ndarray, n_frames: int, seed: int) -> EyeMotion | None:
        """core/eyes.py's blinks and gaze for a clip, or None when the template has no face
        landmarks (no eyelid shapes): `eyes_problem` then says why, for the caller to say once."""
        if self.arkit_solver() is None:
            self.eyes_problem = SKIPPED + self.arkit_problem
            return None
        return eye_motion(samples, n_frames, seed, self.bundle.config.fps)


def load_animator(bundle: str | Path, device: str = "auto", precision: str = "auto") -> Animator:
    """A bundle loaded with its encoders on `device` ("auto": CUDA when torch sees one)."""
    device = resolve_device(device)
    return Animator(ModelBundle.load(bundle, device), device, precision)


def _background(function: Callable, *args):
    """`function(*args)` started in a thread now; `.result()` waits for it (and raises what it raised)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(function, *args)
    pool.shutdown(wait=False)
    return future


def animate_task(
    task: AnimateTask, animator: Animator | None = None, progress: Progress | None = None, samples: np.ndarray | None = None,
    phone_job: PhoneLoopJob | None = None,
) -> tuple[Animation, Animator]:
    """Animate `task.audio` as the task says. The sound file is read (and refused when bad)
    before the model loads, unless the caller already read it (`samples`, 16 kHz mono); pass
    `animator` to reuse a loaded bundle; `phone_job`, the heard phones of these samples already
    started (core/phone_loop.py `start_for`: the command line starts it before torch loads).
    -> (animation, animator)"""
    if samples is None:
        samples = load_audio(task.audio)
    # Heard phones: in a child process when the model is still to load (torch's import leaves a
    # core idle; the bundle may use it when its folder has phone prototypes); with a loaded model
    # (the serving worker, a batch) there is nothing to hide it behind, and it runs here, where
    # its decoders stay loaded (a child loads them again: 0.9 s).
    job = phone_job
    if job is None and animator is None:
        job = phone_loop.start_for(task, samples)
    loop = job if job is not None else animator is not None and phone_loop.wanted(task)
    try:
        if animator is None:
            animator = load_animator(task.bundle, task.device, task.precision)
        subject, person = person_for(
            animator.bundle, task.style.to_json(), task.blend_with.to_json() if task.blend_with is not None else None, task.blend_weight
        )
        animation = animator.animate(samples, subject=subject, seed=task.seed, with_head=task.with_head, person=person, progress=progress,
                                     blinks=task.blinks, direction=task.emotion, transcript=task.transcript,
                                     rest_in_pauses=task.rest_in_pauses, recognise=task.recognise,
                                     phone_loop=loop, heard_expressions=task.heard_expressions)
    finally:
        if job is not None:
            job.cancel()
    return animation, animator


def person_for(bundle: ModelBundle, first: dict, second: dict | None = None, weight: float = 1.0) -> tuple[str, np.ndarray | None]:
    """(Gn's subject, Ge's person embedding p (d,) or None) for the chosen style(s).

    A choice is {"subject": NAME} (a training subject: p is its pivot p_i) or {"file": STYLE.json}
    (a tuned style: p is its p*, and Gn speaks like its `subject`, unless the choice also names a
    "subject"). With `second`, p = w p_first + (1 - w) p_second (section 9), and Gn speaks like
    the end with the larger weight (the first at w = 0.5): w = 1 and w = 0 give the two ends.
    A lone subject gives p = None: exactly the subject's own animation."""
    subject, person = _choice(bundle, first)
    if second is None:
        return subject, person
    if not 0.0 <= weight <= 1.0:
        raise TuningError(f"the style weight must be between 0 and 1, got {weight}")
    other_subject, other_person = _choice(bundle, second)
    pivots = None
    if person is None or other_person is None:
        if bundle.model.emotion is None:
            raise TuningError("this bundle has no emotion stage (baseline): styles cannot be mixed")
        pivots = bundle.model.person_embeddings().detach().cpu().numpy()  # (S, d)
    a = person if person is not None else pivots[bundle.config.subject_index(subject)]
    b = other_person if other_person is not None else pivots[bundle.config.subject_index(other_subject)]
    return (subject if weight >= 0.5 else other_subject), Style.interpolate(a, b, weight)


def _choice(bundle: ModelBundle, choice: dict) -> tuple[str, np.ndarray | None]:
    cfg = bundle.config
    if "file" in choice:
        style = Style.load(choice["file"])
        if bundle.model.emotion is None:
            raise TuningError("this bundle has no emotion stage (baseline): it cannot use a tuned style")
        style.check(bundle.identity, Path(choice["file"]).name)
        style.note_if_legacy(Path(choice["file"]).name)
        subject = choice.get("subject") or style.subject
        cfg.subject_index(subject)
        return subject, np.asarray(style.p, np.float32)
    subject = choice.get("subject") or cfg.subjects[0]
    cfg.subject_index(subject)
    return subject, None
