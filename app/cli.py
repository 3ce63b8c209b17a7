"""The `talking-head` command line. User errors print one line and exit 2; no tracebacks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.config import VARIANTS
from ..core.errors import TalkingHeadError
from . import checks, emotion_cli, speech_options
from .notes import say_notes

# Show a progress bar only when a clip is at least this long (frames at 25 fps).
PROGRESS_MIN_FRAMES = 250


def build_parser() -> argparse.ArgumentParser:
    parser = checks.Parser(prog="talking-head", description="Animate a 3D face from a sound file.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bundle = commands.add_parser("bundle", help="write model bundles")
    kinds = bundle.add_subparsers(dest="kind", required=True, metavar="KIND")
    tiny = kinds.add_parser("tiny", help="an UNTRAINED random bundle for tests and timings")
    tiny.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    size = tiny.add_mutually_exclusive_group()
    size.add_argument("--vertices", type=int, help="vertex count of a generated sphere template")
    size.add_argument("--template", type=Path, help="template mesh (.ply or .obj)")
    tiny.add_argument("--encoders", choices=("tiny", "base"), default="tiny", help="encoder size (base = wav2vec2-base)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_run_bundle_tiny)
    pack = kinds.add_parser("pack", help="a trained bundle ready to ship: float16 weights, no training leftovers")
    pack.add_argument("source", type=Path, help="trained bundle folder")
    pack.add_argument("--out", required=True, type=Path, help="folder to write")
    pack.add_argument("--fp32", action="store_true", help="keep float32 weights")
    pack.set_defaults(run=_run_bundle_pack)
    emotions = kinds.add_parser("emotions", help="emotion prototypes from a labelled speech set, for animate --emotion")
    emotions.add_argument("bundle", type=Path, help="bundle folder (emotion_prototypes.safetensors is written into it)")
    emotions.add_argument("--speech", required=True, type=Path, help="speech set (labels.jsonl, wav/ID.wav) from `talking-head corpus speech`")
    emotions.set_defaults(run=_run_bundle_emotions)
    expressions = kinds.add_parser("expressions", help="learned expression shapes from a labelled corpus, so that --emotion gives each class's face")
    expressions.add_argument("bundle", type=Path, help="bundle folder with emotion prototypes (the shapes are written beside them)")
    expressions.add_argument("--data", required=True, type=Path, help="corpus in the BIWI layout with emotions/CLIP.npz labels (`talking-head corpus build`)")
    expressions.add_argument("--cache", type=Path, default=None, help="feature cache (default DATA/.cache, as `train`)")
    expressions.set_defaults(run=_run_bundle_expressions)
    balance = kinds.add_parser("head-balance", help="how Gh shares head motion between nod, turn and tilt, set to a corpus's proportions "
                               "(config.json head_axis_balance)")
    balance.add_argument("bundle", type=Path, help="bundle folder with a trained Gh (its config.json gets head_axis_balance)")
    _corpus_takes_arguments(balance, "(`talking-head corpus build`)", 120)
    balance.add_argument("--smoothing", type=float, nargs="+", default=None, metavar="SECONDS",
                         help="time constant of the head smoothing, written with the balance: one, or three for nod, turn and tilt "
                         "(default: the bundle's head_smoothing_s; 0: none)")
    balance.set_defaults(run=_run_bundle_head_balance)
    heard_head = kinds.add_parser("heard-head", help="the head amplitude per heard emotion, fitted on a corpus whose voices carry their emotion "
                                  "(config.json heard_head_amplitudes; after head-balance)")
    heard_head.add_argument("bundle", type=Path, help="bundle folder with a trained Gh and an emotion hearing")
    _corpus_takes_arguments(heard_head, "whose voices carry their emotion (`talking-head corpus revoice`)", 200)
    heard_head.set_defaults(run=_run_bundle_heard_head)
    hearing = kinds.add_parser("hearing", help="emotion hearing: what a voice is heard as from its prosody, fitted on speech with audible emotion")
    hearing.add_argument("bundle", type=Path, help="bundle folder (emotion_hearing.json is written into it)")
    hearing.add_argument("--speech", required=True, type=Path, nargs="+", help="speech sets with audible emotion (`talking-head corpus emotion-voices`); "
                         "their held-out voices (M1, F8) are left out")
    hearing.set_defaults(run=_run_bundle_hearing)
    phones = kinds.add_parser("phones", help="phone prototypes and a phone classifier from a labelled speech set, for animate --transcript and --recognise")
    phones.add_argument("bundle", type=Path, help="bundle folder (phone_prototypes.safetensors is written into it)")
    phones.add_argument("--speech", required=True, type=Path, help="speech set (labels.jsonl, wav/ID.wav, phones/ID.json) from `talking-head corpus speech`")
    phones.add_argument("--limit", type=int, default=0, help="at most this many utterances (0: all but the held-out voices)")
    phones.set_defaults(run=_run_bundle_phones)

    animate = commands.add_parser("animate", help="sound file -> animation arrays or meshes")
    animate.add_argument("audio", type=Path, nargs="+", help="sound file (WAV, FLAC, OGG, MP3, ...); several, or a folder of them: "
                         "one output each, named after it, in the --out folder")
    animate.add_argument("--bundle", required=True, type=Path, help="model bundle folder")
    animate.add_argument("--out", required=True, type=Path, help="OUT.npz, OUT.csv (Live Link Face: ARKit channels and head), OUT.ply / OUT.obj (one mesh per frame), or a folder; "
                         "with several inputs (or --format), the folder for their outputs")
    animate.add_argument("--format", choices=("npz", "csv", "ply", "obj"), help="with several inputs: OUT/NAME.npz (the default), OUT/NAME.csv, "
                         "or OUT/NAME/ of .ply / .obj meshes per frame, NAME being the input's; with one input, the same into the --out folder")
    animate.add_argument("--recursive", action="store_true", help="a folder's sub-folders too (their outputs go into the same sub-folders of --out)")
    animate.add_argument("--subject", help="speaking style: a subject of the bundle (default: its first)")
    animate.add_argument("--style", type=Path, help="a tuned style (STYLE.json from `talking-head tune`)")
    animate.add_argument("--blend-with", metavar="SUBJECT_OR_STYLE", help="mix a second style in: a subject name or a STYLE.json")
    animate.add_argument("--blend-weight", type=checks.weight, default=0.5, metavar="W", help="with --blend-with: p = W p(first) + (1 - W) p(second) (default 0.5)")
    animate.add_argument("--seed", type=checks.seed, default=0, help=f"head-motion, blink and gaze variation, 0 to {checks.SEED_MAX} (same seed, same motion)")
    animate.add_argument("--no-head", action="store_true", help="no head motion")
    animate.add_argument("--no-blinks", action="store_true", help="no blinks and gaze (added by default, seeded by --seed; "
                         "needs a template with face landmarks)")
    animate.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto", help="auto (CUDA, else Apple MPS, when present), cpu, cuda or mps")
    animate.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="encoder precision (auto: bf16 on CPUs with native bf16, where it is about 2x faster, else fp32)")
    emotion_cli.add_arguments(animate)
    speech_options.add_arguments(animate)
    animate.add_argument("--stages", action="store_true", help="the .npz also holds neutral and emotional (Gn's and Ge's faces without head motion): three times the size")
    animate.add_argument("--mesh-format", choices=("ply", "obj"), help="per-frame meshes in a folder (default ply; with several inputs, as --format)")
    animate.set_defaults(run=_run_animate)

    tune = commands.add_parser("tune", help="tune a personal style from a few clips of a person")
    tune.add_argument("--bundle", required=True, type=Path)
    tune.add_argument("--out", required=True, type=Path, help="STYLE.json to write")
    source = tune.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a corpus: tune on clips of --subject")
    source.add_argument("--clip", nargs=2, action="append", metavar=("AUDIO", "MESH"), help="a clip: audio and its mesh sequence (.npy, folder of .ply/.obj, or .abc); repeat")
    tune.add_argument("--subject", help="with --data: the person to tune for")
    tune.add_argument("--clips", type=int, default=6, help="with --data: clips used for tuning (one more stops early)")
    tune.add_argument("--name", help="style name (default: the output file's name)")
    tune.add_argument("--mode", choices=("convex", "direct"), default="convex")
    tune.add_argument("--evaluate", type=int, default=None, metavar="N", help="with --data: measure error_before/after on N other clips (default all; 0 skips)")
    tune.add_argument("--speaking-style", help="bundle subject whose Gn speaking style the person uses (default: the one that animates the clips best)")
    tune.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto")
    tune.set_defaults(run=_run_tune)

    train = commands.add_parser("train", help="train a bundle on a BIWI-layout corpus")
    train.add_argument("--data", required=True, type=Path, help="corpus folder (BIWI preprocessed layout)")
    train.add_argument("--out", required=True, type=Path, help="bundle folder to write (best epoch)")
    train.add_argument("--config", type=Path, help="JSON training settings (epochs, lr, model overrides, ...)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--variant", choices=VARIANTS)
    train.add_argument("--split", choices=("paper", "faceformer"))
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    train.add_argument("--context-encoder", default=None, help="folder or hub id (default facebook/wav2vec2-base-960h)")
    train.add_argument("--emotion-encoder", default=None, help="folder or hub id of a wav2vec2 emotion classifier")
    train.add_argument("--template", type=Path, help="template mesh with the corpus topology (default: DATA/template.ply)")
    train.add_argument("--cache", type=Path, help="feature cache folder (default: DATA/.cache)")
    train.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto")
    train.set_defaults(run=_run_train)

    evaluate = commands.add_parser("evaluate", help="metrics of a bundle on a corpus: JSON, Markdown and figures")
    evaluate.add_argument("--data", required=True, type=Path)
    evaluate.add_argument("--bundle", required=True, type=Path)
    evaluate.add_argument("--out", required=True, type=Path, help="report folder")
    evaluate.add_argument("--subsets", default="SN,SE,UN,UE")
    evaluate.add_argument("--lip", type=Path, help="lip vertex indices (BIWI: lve.txt); default from corpus.json")
    evaluate.add_argument("--upper-face", type=Path, help="upper-face vertex indices (BIWI: fdd.txt)")
    evaluate.add_argument("--style-subject", help="seen subject whose style animates unseen subjects")
    evaluate.add_argument("--split", choices=("paper", "faceformer"), default="paper")
    evaluate.add_argument("--phone-loop", action="store_true", help="Gn reads what `animate` reads by default: the content encoder "
                          "weighed with the phones pocketsphinx hears (recognised words, or its phone loop; the bundle needs a phone classifier); "
                          "without it, the encoder alone, as the paper's model")
    evaluate.add_argument("--cache", type=Path)
    evaluate.set_defaults(run=_run_evaluate)

    from . import bake as blender_bake  # adds `bake`; bpy is imported only when it runs
    from .corpus_cli import register as register_corpus
    from .demo import register as register_demo
    from .encoder_cli import register as register_encoders
    from .stream_cli import register as register_stream

    register_corpus(commands)
    register_encoders(commands)
    register_demo(commands)
    register_stream(commands)

    blender_bake.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # a bad option: checks.UsageError, one line
        return args.run(args) or 0
    except TalkingHeadError as exc:
        print(f"talking-head: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("talking-head: cancelled", file=sys.stderr)
        return 130


# Commands whose process ends as soon as their files are written (see `run`).
QUICK_EXIT = frozenset({"animate"})


def run() -> None:
    """The `talking-head` console script: `main`, then exit. After `animate` the process ends
    without the interpreter's teardown of torch and its modules (`os._exit`, streams flushed
    first): a third of a second of the user's wait on the 10.5 s demo clip, for nothing
    (bench/whole_process.py). Its files are complete by then (written, closed and renamed);
    other commands, which may leave pools, temporary folders or Blender to close, exit as usual."""
    import os

    code = main()
    if sys.argv[1:2] and sys.argv[1] in QUICK_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _run_bundle_tiny(args: argparse.Namespace) -> int:
    from ..training.tiny import make_tiny_bundle

    bundle = make_tiny_bundle(args.out, n_vertices=args.vertices, template=args.template, encoders=args.encoders, seed=args.seed)
    print(f"wrote UNTRAINED bundle ({bundle.config.n_vertices} vertices, {args.encoders} encoders) to {args.out}")
    return 0


def _run_bundle_pack(args: argparse.Namespace) -> int:
    from ..core.bundle import pack_bundle

    pack_bundle(args.source, args.out, half=not args.fp32)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB)")
    return 0


def _run_bundle_emotions(args: argparse.Namespace) -> int:
    from ..training.emotion_prototypes import build_emotion_prototypes

    with _ProgressBar(stage="encoding", min_total=0) as bar:
        prototypes = build_emotion_prototypes(args.bundle, args.speech, progress=lambda done, total: bar("encoding", done, total))
    m = prototypes.measure
    counts = ", ".join(f"{label} {n}" for label, n in zip(prototypes.labels, prototypes.clips))
    print(f"wrote {args.bundle / 'emotion_prototypes.safetensors'}: {prototypes.weighting} of {m['clips']} clips ({counts}); "
          f"nearest-prototype accuracy mean {m['accuracy_mean']:.3f}, intensity-weighted {m['accuracy_intensity']:.3f}")
    return 0


def _run_bundle_expressions(args: argparse.Namespace) -> int:
    from ..training.emotion_expressions import fit_expressions

    with _ProgressBar(stage="fitting", min_total=0) as bar:
        prototypes = fit_expressions(args.bundle, args.data, cache=args.cache, progress=bar)
    m = prototypes.expressions_measure
    errors = " / ".join("-" if m[f"{name}_error"] is None else f"{m[f'{name}_error']:.3g}" for name in ("voice", "prototypes", "expressions"))
    print(f"wrote learned expressions for {', '.join(prototypes.labels)} into {args.bundle / 'emotion_prototypes.safetensors'}; "
          f"{m['takes']} validation emotional takes, vertex error with the voice / their labelled direction / and the expressions: {errors}")
    return 0


def _corpus_takes_arguments(parser: argparse.ArgumentParser, which: str, clips: int) -> None:
    """--data, --clips and --cache of the commands that measure a bundle on a corpus's training takes."""
    parser.add_argument("--data", required=True, type=Path, help=f"corpus in the BIWI layout with poses/CLIP.npz {which}; its training takes are measured")
    parser.add_argument("--clips", type=int, default=clips, help=f"at most this many training takes, spread over the split (default {clips})")
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default DATA/.cache, as `train`)")


def _run_bundle_head_balance(args: argparse.Namespace) -> int:
    from ..training.head_balance import write_head_balance

    if args.clips < 1:
        raise checks.UsageError(f"--clips must be at least 1 (got {args.clips})")
    smoothing = args.smoothing
    if smoothing is not None:
        if len(smoothing) not in (1, 3) or not all(0 <= s <= 2 for s in smoothing):
            raise checks.UsageError(f"--smoothing takes one or three (nod, turn, tilt) times from 0 to 2 seconds (got {' '.join(f'{s:g}' for s in smoothing)})")
        smoothing = smoothing[0] if len(smoothing) == 1 else list(smoothing)
    with _ProgressBar(stage="measuring", min_total=0) as bar:
        m = write_head_balance(args.bundle, args.data, args.clips, args.cache, progress=lambda done, total: bar("measuring", done, total),
                               smoothing_s=smoothing)

    def show(values: list[float]) -> str:
        return " / ".join(f"{v:.2f}" for v in values)

    times = m["smoothing_s"] if isinstance(m["smoothing_s"], list) else [m["smoothing_s"]]
    print(f"wrote head_axis_balance {show(m['balance'])} (x nod / y turn / z tilt) into {args.bundle / 'config.json'}: on {m['takes']} training takes "
          f"the head turns {show(m['truth'])} degrees in the corpus, {show(m['model'])} from Gh (std over time)"
          + (f", {show(m['smoothed'])} smoothed over {' / '.join(f'{s:g}' for s in times)} s" if any(s > 0 for s in times) else "")
          + ("" if m["heard_amplitude_mean"] is None else f"; heard head amplitude {m['heard_amplitude_mean']:.3f} on average (heard_head_amplitude_mean)"))
    if m["heard_head_amplitudes_cleared"]:
        print(f"heard_head_amplitudes cleared (fitted with the previous balance): run `talking-head bundle heard-head {args.bundle} --data CORPUS` again")
    return 0


def _run_bundle_heard_head(args: argparse.Namespace) -> int:
    from ..training.head_balance import fit_heard_head_amplitudes

    if args.clips < 1:
        raise checks.UsageError(f"--clips must be at least 1 (got {args.clips})")
    with _ProgressBar(stage="measuring", min_total=0) as bar:
        m = fit_heard_head_amplitudes(args.bundle, args.data, args.clips, args.cache, progress=lambda done, total: bar("measuring", done, total))
    amplitudes = ", ".join(f"{label} {w:.2f}" for label, w in m["amplitudes"].items())

    def way(name: str) -> str:
        f = m[name]
        return f"{f['emotional_over_neutral']:.2f} times, correlation {f['correlation_with_truth']:.2f}"

    print(f"wrote heard_head_amplitudes ({amplitudes}) into {args.bundle / 'config.json'}: on {m['takes']} training takes the emotional takes' heads "
          f"move {m['truth']['emotional_over_neutral']:.2f} times as much as the neutral ones' in the corpus; now {way('fitted')}"
          + (f" (with the class ratios {way('ratios')})" if "ratios" in m else ""))
    return 0


def _run_bundle_hearing(args: argparse.Namespace) -> int:
    from ..core.emotion_hearing import FILE
    from ..training.emotion_hearing import write_hearing

    with _ProgressBar(stage="hearing", min_total=0) as bar:
        hearing = write_hearing(args.bundle, args.speech, progress=lambda done, total: bar("hearing", done, total))
    m = hearing.measure
    counts = ", ".join(f"{label} {n}" for label, n in m["per_class"].items())
    print(f"wrote {args.bundle / FILE}: fitted on {m['utterances']} utterances ({counts}), each also as an 8 kHz recording would hold it; accuracy on them {m['train_accuracy']:.3f}")
    return 0


def _run_bundle_phones(args: argparse.Namespace) -> int:
    from ..training.phone_prototypes import write_phone_prototypes

    protos = write_phone_prototypes(args.bundle, args.speech, limit=args.limit)
    print(f"wrote {args.bundle / 'phone_prototypes.safetensors'}: {len(protos.phones)} phones from {int(protos.counts.sum())} encoder steps, "
          "and a phone classifier of those steps (for animate --recognise)")
    return 0


def _run_animate(args: argparse.Namespace) -> int:
    from . import batch

    if args.format or batch.several(args.audio):
        return _run_animate_many(args)
    audio: Path = args.audio[0]
    mesh_format = args.mesh_format or "ply"
    from ..core.outputs import FrameFiles, check_animate_out

    kind = check_animate_out(args.out, audio)  # before the model loads: a bad --out costs a moment
    earlier = FrameFiles.of(args.out, mesh_format).existing() if kind in ("meshes", "folder") else []

    from ..core.audio import load_audio
    from ..core.phone_loop import start_for

    task = _animate_task(args, audio)
    samples = load_audio(audio)  # a bad sound file is refused before anything loads
    job = start_for(task, samples)  # beside torch's import, on the core it leaves idle

    from ..core.pipeline import animate_task

    with _ProgressBar() as bar:
        animation, animator = animate_task(task, progress=bar, samples=samples, phone_job=job)
    print(_write_take(animation, animator, args.out, kind, mesh_format, earlier, args.stages))
    say_notes(animator)
    return 0


def _run_animate_many(args: argparse.Namespace) -> int:
    """Several sound files (or a folder, or --format): one model load, OUT/NAME.FORMAT each, a bar
    over the files, a failing file skipped with one line (app/batch.py)."""
    import dataclasses

    from ..core.outputs import FrameFiles
    from . import batch

    form = args.format or args.mesh_format or "npz"
    kind, suffix = (form, "." + form) if form in ("npz", "csv") else ("folder", "")
    files = batch.sound_files(args.audio, args.recursive)  # refuses a folder without sound files, two inputs of one name
    batch.check_output_folder(args.out, "--out", suffix, "with several inputs" if batch.several(args.audio) else "with --format")
    targets = {file: file.output(args.out, suffix) for file in files}
    batch.check_not_inputs(targets.values(), "--out", [("audio file", file.path) for file in files])

    from ..core.audio import load_audio
    from ..core.emotion_direction import check_direction
    from ..core.pipeline import animate_task, load_animator, person_for

    animator = load_animator(args.bundle, args.device, args.precision)  # once, for every file
    task = _animate_task(args, "")
    if args.transcript not in (None, "beside") and len(files) > 1:
        raise TalkingHeadError("one --transcript for several sound files: use `--transcript beside` (NAME.txt next to each NAME.wav)")
    # What every file would fail on is said once, before the first: an unknown subject or style, no ARKit channels.
    person_for(animator.bundle, task.style.to_json(), task.blend_with.to_json() if task.blend_with is not None else None, task.blend_weight)
    check_direction(task.emotion, animator.bundle.emotion_prototypes, animator.bundle.path.name)
    if kind == "csv" and animator.arkit_solver() is None:
        raise TalkingHeadError(f"no ARKit channels for a Live Link CSV: {animator.arkit_problem}")

    def animate_one(file) -> str:
        samples = load_audio(file.path)  # a bad file fails here, in its turn
        with _ProgressBar() as bar:
            transcript = speech_options.transcript_for(args, file.path)
            animation, _ = animate_task(dataclasses.replace(task, audio=str(file.path), transcript=transcript), animator=animator,
                                        progress=bar, samples=samples)
        out = targets[file]
        earlier = FrameFiles.of(out, form).existing() if kind == "folder" else []
        line = _write_take(animation, animator, out, kind, form, earlier, args.stages)
        if animator.recognise_problem:  # this file's, said with it rather than once at the end
            line, animator.recognise_problem = f"{line} (note: {animator.recognise_problem})", ""
        return line

    code = batch.run_each(files, animate_one, "animated", args.out)
    say_notes(animator)
    return code


def _animate_task(args: argparse.Namespace, audio: Path | str):
    """The `AnimateTask` of `animate`'s options for one sound file."""
    from ..core.tasks import AnimateTask, StyleChoice

    return AnimateTask(
        audio=str(audio),
        bundle=str(args.bundle),
        style=StyleChoice(subject=args.subject or "", file=str(args.style) if args.style else ""),
        blend_with=_style_choice(args.blend_with) if args.blend_with else None,
        blend_weight=args.blend_weight,
        seed=args.seed,
        with_head=not args.no_head,
        device=args.device,
        precision=args.precision,
        blinks=not args.no_blinks,
        emotion=emotion_cli.direction(args, args.bundle),
        transcript=speech_options.transcript_for(args, audio) if audio else "",
        rest_in_pauses=not args.no_pause_rest,
        recognise=args.recognise,
        phone_loop=not args.no_phone_loop,
        heard_expressions=not args.no_heard_expressions,
    )


def _write_take(animation, animator, out: Path, kind: str, mesh_format: str, earlier: list[Path], stages: bool = False) -> str:
    """Write one take as `kind` says (core/outputs.py: whole or not at all). -> the line that says what was written"""
    if kind == "csv":
        from ..core.live_link import write_live_link_csv

        if animation.arkit_weights is None:
            raise TalkingHeadError(f"no ARKit channels for a Live Link CSV: {animator.arkit_problem}")
        write_live_link_csv(out, animation.arkit_weights, animation.fps, animation.rotation)
        return f"wrote {animation.n_frames} frames of 52 ARKit channels and head rotation to {out}"
    if kind == "npz":
        animation.save_npz(out, stages=stages)
        return f"wrote {animation.n_frames} frames to {out}"
    paths = animation.write_frames(out, mesh_format)
    replaced = f"; replaced an earlier take of {len(earlier)} frames" if earlier else ""
    return f"wrote {len(paths)} meshes ({paths[0].name} ... {paths[-1].name}) to {paths[0].parent}{replaced}"


def _run_tune(args: argparse.Namespace) -> int:
    from ..core.bundle import ModelBundle
    from ..core.device import resolve_device
    from ..core.pipeline import Animator
    from ..core.outputs import atomic_path, check_output_file
    from ..core.tuning import TuningClip, TuningError, tune_style
    from .clips import read_clip

    inputs = [("bundle's config.json", args.bundle / "config.json")] + [("clip file", path) for clip in args.clip or () for path in clip]
    check_output_file(args.out, (".json",), "--out", inputs)  # before the bundle loads
    device = resolve_device(args.device)
    bundle = ModelBundle.load(args.bundle, device)
    v = bundle.config.n_vertices
    evaluation: list[TuningClip] = []
    if args.data:
        from ..training.dataset import Corpus

        if not args.subject:
            raise TuningError("--data needs --subject NAME: whose clips to tune on")
        corpus = Corpus(args.data)
        own = sorted((c for c in corpus.clips.values() if c.subject == args.subject and c.emotional), key=lambda c: c.sentence)
        if not own:
            raise TuningError(f"{args.data} has no emotional clips of subject {args.subject}")
        marked = [c for c in corpus.tuning if c.subject == args.subject]
        chosen = (marked or own)[: args.clips]
        rest = [c for c in own if c not in chosen]
        chosen = chosen + rest[:1]  # one more clip to stop early
        evaluation_clips = rest[1:] if args.evaluate is None else rest[1 : 1 + args.evaluate]
        make = lambda c: TuningClip(str(corpus.wav_path(c.name)), f"{args.data}/vertices_npy/{c.name}.npy", corpus.vertices(c.name) - corpus.template(c.subject) + bundle.template.vertices)
        clips = [make(c) for c in chosen]
        evaluation = [make(c) for c in evaluation_clips]
    else:
        clips = [TuningClip(audio, mesh, read_clip(mesh, v)) for audio, mesh in args.clip]
    animator = Animator(bundle, device)
    with _ProgressBar(stage="tuning", min_total=0) as bar:
        style = tune_style(animator, clips, evaluation, args.name or args.out.stem, args.mode, args.speaking_style,
                           progress=lambda done, total: bar("tuning", done, total))
    with atomic_path(args.out) as temporary:
        style.save(temporary)
    summary = ""
    if style.error_before is not None:
        change = 100 * (1 - style.error_after / style.error_before)
        summary = f"; error on {len(evaluation)} other clips {style.error_before:.4g} -> {style.error_after:.4g} ({change:.1f}% lower)"
    print(f"wrote style {style.name!r} (speaks like {style.subject}) to {args.out}{summary}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..training.train import DEFAULT_CONTEXT_ENCODER, DEFAULT_EMOTION_ENCODER, TrainingConfig, train

    settings = TrainingConfig.load(args.config, epochs=args.epochs, variant=args.variant, split=args.split)
    summary = train(
        args.data,
        args.out,
        settings,
        context_encoder=args.context_encoder or DEFAULT_CONTEXT_ENCODER,
        emotion_encoder=args.emotion_encoder or DEFAULT_EMOTION_ENCODER,
        cache=args.cache,
        resume=args.resume,
        template=args.template,
        device=resolve_device(args.device),
    )
    if not summary["history"]:
        print("no epochs to run: encoder features are cached, nothing trained")
        return 0
    print(f"best epoch {summary['best_epoch']} (val {summary['best_val']:.6g}); bundle in {args.out}; "
          f"median {summary['median_epoch_seconds']:.1f} s per epoch; log {args.out / 'train_log.csv'}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from ..training.evaluate import evaluate, markdown_table

    report = evaluate(
        args.data, args.bundle, args.out, [s.strip() for s in args.subsets.split(",") if s.strip()],
        lip=args.lip, upper_face=args.upper_face, style_subject=args.style_subject, cache=args.cache, split=args.split,
        phone_loop=args.phone_loop,
    )
    print(markdown_table(report))
    print(f"report in {args.out}")
    return 0


def _style_choice(value: str):
    """A subject name, or a style file when the value names an existing file or ends in .json."""
    from ..core.tasks import StyleChoice

    return StyleChoice(file=value) if value.endswith(".json") or Path(value).is_file() else StyleChoice(subject=value)


class _ProgressBar:
    """tqdm over generated frames, shown on long clips only."""

    def __init__(self, stage: str = "generating", min_total: int = 3 * PROGRESS_MIN_FRAMES) -> None:
        self.bar = None
        self.stage, self.min_total = stage, min_total

    def __enter__(self) -> "_ProgressBar":
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage or total < self.min_total:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=stage, unit="step", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
