"""The demo: a bundled sample clip and one command that shows everything the project makes.

    talking-head demo [--bundle DIR] [--out DIR] [--audio WAV]    # the bundled model on the sample clip
    talking-head demo-speech [--out samples/demo_speech.wav]      # re-synthesise the sample clip
    talking-head demo-biwi --template BIWI.ply --out DIR           # a demo model on BIWI's topology

`demo` runs the same code as `talking-head bake` (app/bake.py, the bpy module) and writes
the `Animation` arrays next to the take. `demo-biwi` builds the demo corpus on the BIWI
template and trains a bundle on it, reusing the demo bundle's trained encoders.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.bundle_info import DEMO_BUNDLE  # torch- and bpy-free: the package's weights/demo
from ..core.animation import Animation
from ..core.config import ModelConfig
from ..core.errors import AudioError, BundleError, TalkingHeadError
from ..core.outputs import check_writable_folder
from . import checks

SAMPLE_AUDIO = Path(__file__).resolve().parents[1] / "samples" / "demo_speech.wav"
OUTPUT_NAMES = {"blend": "demo.blend", "fbx": "demo.fbx", "abc": "demo.abc", "npz": "demo.npz", "preview": "preview.png"}

# --- the sample clip -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    text: str
    emotion: str  # a name in corpus/emotions.py EMOTION_PROFILES


DEMO_VOICE = ("festival", "slt_hts")  # (engine, voice): the corpus's best-sounding voice
DEMO_PASSAGES = (
    Passage("Hello. This is a short demonstration of the talking head, reading a calm and simple sentence.", "neutral"),
    Passage("And now I am really happy, because it finally works! What a wonderful day!", "happy"),
)
PAUSE_SECONDS = 0.5
REGENERATE_COMMAND = "talking-head demo-speech --out samples/demo_speech.wav  # in the repository root"


def synthesize_demo_speech(out: str | Path) -> dict:
    """Speak DEMO_PASSAGES with the corpus speech tools and the emotions' prosody profiles, with
    PAUSE_SECONDS of silence between them; write OUT (16 kHz mono PCM16) and OUT.json. -> metadata"""
    import soundfile

    from ..core.audio import SAMPLE_RATE
    from ..training.corpus.emotions import EMOTION_PROFILES
    from ..training.corpus.speech import Voice, synthesize

    out = Path(out).with_suffix(".wav")
    voice = Voice(*DEMO_VOICE)
    pieces: list[np.ndarray] = []
    passages = []
    start = 0
    for index, passage in enumerate(DEMO_PASSAGES):
        if index:
            pieces.append(np.zeros(round(PAUSE_SECONDS * SAMPLE_RATE), np.float32))
            start += len(pieces[-1])
        profile = EMOTION_PROFILES[passage.emotion]
        speech = synthesize(passage.text, voice, profile.prosody)
        pieces.append(speech.samples)
        passages.append({
            "text": passage.text,
            "emotion": passage.emotion,
            "voice": voice.describe(),
            "prosody": vars(profile.prosody),
            "start": round(start / SAMPLE_RATE, 4),
            "end": round((start + len(speech.samples)) / SAMPLE_RATE, 4),
        })
        start += len(speech.samples)
    samples = np.concatenate(pieces)
    out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(out), samples, SAMPLE_RATE, subtype="PCM_16")
    metadata = {
        "file": out.name,
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "samples": int(len(samples)),
        "seconds": round(len(samples) / SAMPLE_RATE, 4),
        "pause_seconds": PAUSE_SECONDS,
        "passages": passages,
        "regenerate": REGENERATE_COMMAND,
        "needs": "festival with the cmu_us_slt_arctic_hts voice (bash scripts/install-speech-tools.sh)",
        "made_with": "training/corpus/speech.py synthesize() and the prosody profiles of training/corpus/emotions.py",
    }
    out.with_suffix(".json").write_text(json.dumps(metadata, indent=1) + "\n")
    return metadata


# --- talking-head demo ---------------------------------------------------------------------------


def check_bundle(bundle: Path, option: str = "--bundle") -> ModelConfig:
    """The bundle's configuration, or a one-line BundleError that says how to get a bundle."""
    if not (bundle / "config.json").is_file():
        if bundle.resolve() == DEMO_BUNDLE.resolve():
            raise BundleError(
                f"the demo model bundle is not in {_show(bundle)}: use a checkout or release zip of Talking Head that "
                f"includes weights/demo, or pass {option} DIR (for a quick untrained try: talking-head bundle tiny --out out/tiny)"
            )
        raise BundleError(f"not a model bundle (no config.json): {_show(bundle)}; pass {option} DIR with a bundle folder")
    return ModelConfig.load(bundle / "config.json")


def run_demo(bundle: Path | None = None, out: Path = Path("out"), audio: Path | None = None, device: str = "auto",
             per_frame: bool = False) -> dict[str, Path]:
    """Animate `audio` with `bundle` and write OUTPUT_NAMES into `out`: `talking-head bake` with
    its defaults (first subject, seed 0, head motion on), whose animation arrays are also saved,
    so the model runs once. -> {kind: path}"""
    from ..core.audio import SAMPLE_RATE, load_audio
    from .bake import bake

    check_writable_folder(out, "--out")  # before anything runs
    bundle = bundle or DEMO_BUNDLE
    config = check_bundle(bundle)
    audio = audio or SAMPLE_AUDIO
    samples = load_audio(audio)  # a bad sound file fails here, before anything heavy is loaded
    paths = {kind: out / name for kind, name in OUTPUT_NAMES.items()}
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    baked = bake(Path(audio), Path(bundle), paths["blend"], fbx=paths["fbx"], abc=paths["abc"], preview=paths["preview"], device=device,
                  per_frame=per_frame)
    _add_face_camera(paths["blend"], baked.take.frame_start, baked.take.frame_end)
    baked.animation.save_npz(paths["npz"])
    print(f"wrote {paths['npz']} ({baked.animation.n_frames} frames)")
    heard = _emotions_heard(baked.animation, audio) if config.trained else ""
    seconds = time.perf_counter() - started

    print(f"\nTalking Head demo: {len(samples) / SAMPLE_RATE:.1f} s of speech animated in {seconds:.0f} s. Files in {_show(out)}:")
    notes = {
        "blend": "open in Blender and press play: the animated head with its sound",
        "fbx": "shape-key and head animation, for other 3D tools",
        "abc": "Alembic: vertex positions per frame",
        "npz": "the animation arrays (core/animation.py Animation.load_npz)",
        "preview": "six frames rendered with Cycles",
    }
    width = max(len(_show(path)) for path in paths.values())
    for kind, path in paths.items():
        print(f"  {_show(path):<{width}}  {notes[kind]}")
    if heard:
        print(f"The voice was heard as: {heard}")
    if not config.trained:
        sys.stdout.flush()
        print(f"warning: {_show(bundle)} is an UNTRAINED bundle (random weights): the face moves, but the motion means nothing",
              file=sys.stderr)
    print(f"Next, your own voice: talking-head bake my_voice.wav --bundle {_show(bundle)} --blend {_show(out / 'my_voice.blend')}"
          " (add --emotion happy:1 to direct its emotion)")
    return paths


def _add_face_camera(blend: Path, frame_start: int, frame_end: int) -> None:
    """Give demo.blend (a scene `bake` built) a camera framed on the face, so it renders as it is."""
    import bpy

    from ..blender.preview import frame_face, spread_frames

    bpy.ops.wm.open_mainfile(filepath=str(blend.resolve()))
    scene = bpy.context.scene
    head = next(o for o in scene.objects if o.type == "MESH")  # bake adds one: the animated head
    frame_face(scene, head, spread_frames(frame_start, frame_end))
    versions = bpy.context.preferences.filepaths.save_version
    bpy.context.preferences.filepaths.save_version = 0  # overwrite in place: no demo.blend1 backup beside it
    try:
        bpy.ops.wm.save_mainfile(filepath=str(blend.resolve()), check_existing=False)
    finally:
        bpy.context.preferences.filepaths.save_version = versions


def _emotions_heard(animation: Animation, audio: Path) -> str:
    """Per passage of a clip with a sidecar JSON (the sample clip): the emotion heard most."""
    sidecar = Path(audio).with_suffix(".json")
    try:
        passages = json.loads(sidecar.read_text())["passages"]
    except (OSError, ValueError, KeyError):
        return ""
    parts = []
    for passage in passages:
        lo, hi = int(passage["start"] * animation.fps), int(np.ceil(passage["end"] * animation.fps))
        probs = animation.emotion_probs[lo:hi].mean(axis=0)
        best = int(np.argmax(probs))
        parts.append(f"{passage['emotion']} passage -> {animation.emotion_labels[best]} ({100 * probs[best]:.0f}%)")
    return "; ".join(parts)


def _show(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- talking-head demo-biwi ----------------------------------------------------------------------

# Defaults sized for about 4 GB of corpus on BIWI's 23,370 vertices (see the README): the first
# two subjects of the build order (F2, M3) are both training subjects, and sentences 33-36 are the
# validation set that picks the best epoch, so 36 is the fewest sentences that train a bundle.
BIWI_SUBJECTS = 2
BIWI_SENTENCES = 40  # 1-32 train, 33-36 validation, 37-40 test
BIWI_EPOCHS = 20


def run_demo_biwi(template: str, out: Path, subjects: int = BIWI_SUBJECTS, sentences: int = BIWI_SENTENCES,
                  epochs: int | None = None, settings: Path | None = None, corpus: Path | None = None,
                  encoders: Path | None = None, device: str = "auto", workers: int | None = None) -> dict:
    """Build (or reuse) the demo corpus on `template`, then train a bundle into `out` with the
    encoders of the `encoders` bundle (default: the demo bundle). `settings` is a training JSON as
    `talking-head train --config` takes; epochs: `epochs`, else the JSON's, else BIWI_EPOCHS.
    -> the training summary"""
    from ..training.corpus.build import CorpusError, build_corpus
    from ..core.device import resolve_device
    from ..core.encoders import resolve_source
    from ..training.train import TrainingConfig, train

    if template != "ours" and not Path(template).is_file():
        raise CorpusError(f"template mesh not found: {template} (pass the BIWI template, BIWI.ply)")
    if sentences < 33:
        raise CorpusError("--sentences must be at least 33: sentences 33-36 are the validation set that picks the best epoch")
    encoder_bundle = encoders or DEMO_BUNDLE
    config = check_bundle(encoder_bundle, "--encoders")
    sources = [resolve_source(s, encoder_bundle) for s in (config.context_encoder, config.emotion_encoder)]
    corpus = corpus or out.with_name(out.name + "-corpus")
    if settings is not None and not Path(settings).is_file():
        raise TalkingHeadError(f"training settings not found: {settings}")
    given = json.loads(Path(settings).read_text()) if settings else {}
    training = TrainingConfig.load(settings, epochs=epochs or given.get("epochs", BIWI_EPOCHS))

    if _corpus_matches(corpus, template, subjects, sentences):
        print(f"reusing the corpus in {corpus}")
    else:
        info = build_corpus(corpus, subjects, sentences, 0, template, workers)
        print(f"wrote {len(info['clips'])} clips of {len(info['subjects'])} subjects to {corpus} in {info['build_seconds']:.0f} s")
    resume = (out / "checkpoint" / "state.json").is_file()
    if resume:
        print(f"resuming the training in {out / 'checkpoint'}")
    summary = train(corpus, out, training, context_encoder=sources[0], emotion_encoder=sources[1],
                    resume=resume, device=resolve_device(device))
    print(f"best epoch {summary['best_epoch']} (val {summary['best_val']:.6g}); bundle in {out}")
    print(f"Next: talking-head demo --bundle {out} --out {out.with_name(out.name + '-take')}")
    return summary


def _corpus_matches(corpus: Path, template: str, subjects: int, sentences: int) -> bool:
    """A finished build (corpus.json is written last) with the same template and sizes."""
    try:
        info = json.loads((corpus / "corpus.json").read_text())
    except (OSError, ValueError):
        return False
    sentence_numbers = {clip["sentence"] for clip in info.get("clips", {}).values()}
    expected_template = "ours" if template == "ours" else "BIWI"
    return (info.get("template") == expected_template and len(info.get("subjects", [])) == subjects
            and sentence_numbers == set(range(1, sentences + 1)))


# --- command line --------------------------------------------------------------------------------


def register(commands) -> None:
    """Add `demo`, `demo-speech` and `demo-biwi` to app/cli.py's sub-parsers."""
    demo = commands.add_parser("demo", help="animate the sample clip with the bundled model: .blend, FBX, Alembic, arrays, preview")
    demo.add_argument("--bundle", type=Path, help="model bundle folder (default: the package's weights/demo)")
    demo.add_argument("--out", type=Path, default=Path("out"), help="folder for the outputs (default: ./out)")
    demo.add_argument("--audio", type=Path, help="sound file (default: samples/demo_speech.wav)")
    demo.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto", help="auto (CUDA, else Apple MPS, when present), cpu, cuda or mps")
    demo.add_argument("--per-frame", action="store_true", help="one shape key per frame (exact, 16 times larger) instead of compact PCA keys")
    demo.set_defaults(run=_run_demo)

    speech = commands.add_parser("demo-speech", help="re-synthesise the sample clip (needs the speech tools)")
    speech.add_argument("--out", type=Path, default=SAMPLE_AUDIO, help="WAV to write, and its .json (default: the package's samples/demo_speech.wav)")
    speech.set_defaults(run=_run_demo_speech)

    biwi = commands.add_parser("demo-biwi", help="build the demo corpus on the BIWI template and train a bundle on it")
    biwi.add_argument("--template", required=True, help="the BIWI template mesh (BIWI.ply, 23,370 vertices), or 'ours'")
    biwi.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    biwi.add_argument("--subjects", type=int, default=BIWI_SUBJECTS, help=f"corpus subjects (default {BIWI_SUBJECTS})")
    biwi.add_argument("--sentences", type=int, default=BIWI_SENTENCES, help=f"sentences per subject, at least 33 (default {BIWI_SENTENCES})")
    biwi.add_argument("--epochs", type=int, help=f"training epochs (default {BIWI_EPOCHS})")
    biwi.add_argument("--config", type=Path, help="JSON training settings, as for `talking-head train --config`")
    biwi.add_argument("--corpus", type=Path, help="corpus folder (default: OUT-corpus next to OUT; reused when complete)")
    biwi.add_argument("--encoders", type=Path, help="bundle whose encoders to reuse (default: weights/demo)")
    biwi.add_argument("--workers", type=int, help="corpus build processes (default: all cores)")
    biwi.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto")
    biwi.set_defaults(run=_run_demo_biwi)


def _run_demo(args: argparse.Namespace) -> int:
    if args.audio is not None and not args.audio.is_file():
        raise AudioError(f"audio file not found: {args.audio}")
    run_demo(args.bundle, args.out, args.audio, args.device, args.per_frame)
    return 0


def _run_demo_speech(args: argparse.Namespace) -> int:
    metadata = synthesize_demo_speech(args.out)
    print(f"wrote {args.out} ({metadata['seconds']:.2f} s) and {Path(args.out).with_suffix('.json')}")
    return 0


def _run_demo_biwi(args: argparse.Namespace) -> int:
    run_demo_biwi(args.template, args.out, args.subjects, args.sentences, args.epochs, args.config, args.corpus,
                  args.encoders, args.device, args.workers)
    return 0

