"""`talking-head stream`: animate audio while it arrives (a sound file read chunk by chunk, or raw
PCM on stdin) and write each frame as it comes out (core/streaming.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import checks
from .notes import say_notes

DEFAULT_CHUNK_MS = 200.0


def register(commands) -> None:
    p = commands.add_parser("stream", help="animate audio as it arrives (a file chunk by chunk, or raw PCM on stdin); frames out as they are ready")
    p.add_argument("audio", help="sound file (WAV, FLAC, ...), or - for raw PCM on stdin (16 kHz mono, see --pcm)")
    p.add_argument("--bundle", required=True, type=Path, help="model bundle folder")
    p.add_argument("--pcm", choices=("s16le", "f32le"), help="the input is raw 16 kHz mono PCM: 16-bit integers or 32-bit floats, little-endian "
                   "(default for -: s16le; with a path, e.g. a named pipe, the file is read as raw PCM)")
    p.add_argument("--chunk-ms", type=_milliseconds(10, 10_000), default=DEFAULT_CHUNK_MS, help="audio read per step (default 200)")
    p.add_argument("--lookahead-ms", type=_milliseconds(0, 60_000), default=500.0,
                   help="audio after a frame that must arrive before the frame comes out: more is closer to the offline take, and later (default 500)")
    p.add_argument("--context-ms", type=_milliseconds(0, 60_000), default=1000.0, help="past audio the encoders see with each new chunk (default 1000)")
    p.add_argument("--out", type=Path, help="OUT.npz: the whole take (vertices included), written when the audio ends")
    p.add_argument("--csv", type=Path, help="OUT.csv: the take as a Live Link Face CSV (ARKit channels, head), written when the audio ends")
    p.add_argument("--jsonl", metavar="PATH", help="each frame as a JSON line (ARKit channels, head rotation/translation, emotion): - for stdout "
                   "(the default when neither --out nor --csv is given) or a .jsonl file")
    p.add_argument("--subject", help="speaking style: a subject of the bundle (default: its first)")
    p.add_argument("--style", type=Path, help="a tuned style (STYLE.json from `talking-head tune`)")
    p.add_argument("--seed", type=checks.seed, default=0, help=f"head-motion variation, 0 to {checks.SEED_MAX} (the same stream as `animate --seed`)")
    p.add_argument("--no-head", action="store_true", help="no head motion")
    p.add_argument("--device", type=checks.device, choices=checks.DEVICES, default="auto", help="auto (CUDA, else Apple MPS, when present), cpu, cuda or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="encoder precision (auto: bf16 on CPUs with native bf16, else fp32)")
    p.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (default: torch's own; 1 keeps latency steady on a busy CPU)")
    p.add_argument("--realtime", action="store_true", help="read a sound file at the pace it plays, as live audio would arrive")
    p.add_argument("--report", action="store_true", help="print frame latency and compute figures to stderr at the end")
    p.set_defaults(run=_run_stream)


def _milliseconds(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be a number of milliseconds from {low:g} to {high:g}, not {text!r}")
        return value

    return parse


def _threads(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 (torch's default) to 256, not {text!r}")
    return int(text)


def _run_stream(args: argparse.Namespace) -> int:
    from ..core.errors import AudioError, TalkingHeadError
    from ..core.outputs import check_output_file

    stdin = args.audio == "-"
    pcm = args.pcm or ("s16le" if stdin else None)
    inputs = [] if stdin else [("sound file", Path(args.audio))]
    for option, path, suffixes in (("--out", args.out, (".npz",)), ("--csv", args.csv, (".csv",)), ("--jsonl", args.jsonl, (".jsonl", ".ndjson"))):
        if path is not None and str(path) != "-":  # checked before the model loads
            check_output_file(path, suffixes, option, inputs)
    jsonl = args.jsonl if args.jsonl is not None else ("-" if args.out is None and args.csv is None else None)

    from ..core import streaming

    chunk_s = args.chunk_ms / 1000
    if pcm is None:
        source = streaming.sound_file_chunks(args.audio, chunk_s)
        first = next(source, None)  # a missing or unreadable file is refused before the model loads
        source = _chain(first, source)
    else:
        if not stdin and not Path(args.audio).exists():
            raise AudioError(f"audio file not found: {args.audio}")
        stream = sys.stdin.buffer if stdin else open(args.audio, "rb")  # noqa: SIM115 (closed below)
        source = streaming.pcm_chunks(stream, pcm, chunk_s)

    import torch

    from ..core.pipeline import load_animator, person_for
    from ..core.tasks import StyleChoice

    if args.threads:
        torch.set_num_threads(args.threads)
    animator = load_animator(args.bundle, args.device, args.precision)
    if args.csv is not None and animator.arkit_solver() is None:
        raise TalkingHeadError(f"no ARKit channels for a Live Link CSV: {animator.arkit_problem}")
    choice = StyleChoice(subject=args.subject or "", file=str(args.style) if args.style else "")
    subject, person = person_for(animator.bundle, choice.to_json())
    streamer = streaming.Streamer(animator, subject=subject, seed=args.seed, with_head=not args.no_head, person=person,
                                  lookahead_s=args.lookahead_ms / 1000, context_s=args.context_ms / 1000)
    meter = streaming.LatencyMeter(streamer.samples_per_frame)
    keep = args.out is not None or args.csv is not None
    frames: list[streaming.StreamFrame] = []
    sink = None if jsonl is None else (sys.stdout if jsonl == "-" else open(jsonl, "w"))  # noqa: SIM115 (closed below)
    write = _json_writer(sink, streamer) if sink is not None else (lambda got: None)
    started = time.perf_counter()
    clock = None  # with --realtime: when the file's first sample "arrived"
    try:
        for chunk in source:
            if args.realtime and pcm is None:
                clock = time.perf_counter() - len(chunk) / 16_000 if clock is None else clock
                time.sleep(max(0.0, clock + (meter.received + len(chunk)) / 16_000 - time.perf_counter()))
            meter.fed(len(chunk))
            got = _timed(streamer.feed, chunk, meter)
            write(got)
            frames += got if keep else []
        if streamer.received == 0:
            raise AudioError(f"no audio: {'stdin' if stdin else args.audio} held no samples")
        got = _timed(lambda _: streamer.finish(), None, meter)
        write(got)
        frames += got if keep else []
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"talking-head: stdout was closed; stopped after {streamer.emitted} frames", file=sys.stderr)
        return 0
    finally:
        if sink is not None and sink is not sys.stdout:
            sink.close()
        if pcm is not None and not stdin:
            stream.close()
    wall = time.perf_counter() - started
    _write_takes(args, streamer, frames)
    if args.report:
        _report(streamer, meter, wall, args.chunk_ms, live=stdin or args.realtime)
    say_notes(animator)
    return 0


def _chain(first, rest):
    if first is not None:
        yield first
    yield from rest


def _timed(step, value, meter):
    t = time.perf_counter()
    got = step(value)
    meter.busy += time.perf_counter() - t
    meter.emitted(got)
    return got


def _json_writer(sink, streamer):
    from ..core.live_link import head_angles

    labels, names = streamer.emotion_labels, streamer.arkit_names

    def write(frames) -> None:
        for f in frames:
            line = {
                "frame": f.index,
                "time": round(f.time_s, 3),
                "arkit": None if f.arkit_weights is None else dict(zip(names, _rounded(f.arkit_weights, 5))),
                "head": {
                    "rotation": [_rounded(row, 6) for row in f.rotation],
                    "translation": _rounded(f.translation, 6),
                    "yaw_pitch_roll": _rounded(head_angles(f.rotation[None])[0], 6),
                },
                "emotion": dict(zip(labels, _rounded(f.emotion_probs, 4))),
            }
            sink.write(json.dumps(line, separators=(",", ":")) + "\n")
        if frames:
            sink.flush()

    return write


def _rounded(values, digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]


def _write_takes(args: argparse.Namespace, streamer, frames) -> None:
    if args.out is None and args.csv is None:
        return
    animation = streamer.animation(frames)
    if args.out is not None:
        animation.save_npz(args.out)
        print(f"wrote {animation.n_frames} frames to {args.out}", file=sys.stderr)
    if args.csv is not None:
        from ..core.live_link import write_live_link_csv

        write_live_link_csv(args.csv, animation.arkit_weights, animation.fps, animation.rotation)
        print(f"wrote {animation.n_frames} frames of 52 ARKit channels and head rotation to {args.csv}", file=sys.stderr)


def _report(streamer, meter, wall: float, chunk_ms: float, live: bool) -> None:
    s = meter.summary()
    audio = s.get("audio_s", 0.0)
    print(f"stream: {s['frames']} frames, {audio:.2f} s of audio in {wall:.2f} s; chunks of {chunk_ms:g} ms, lookahead "
          f"{1000 * streamer.lookahead_s:.0f} ms, left context {1000 * streamer.context_s:.0f} ms", file=sys.stderr)
    if not s["frames"]:
        return
    print(f"compute: {s['busy_s']:.2f} s ({s['busy_s'] / max(audio, 1e-9):.2f} s per second of audio)", file=sys.stderr)
    if not live:
        print("latency: not measured (the file was read as fast as possible; add --realtime to read it at the pace it plays)", file=sys.stderr)
    elif wall < 0.9 * audio:
        print("latency: not measured (the audio came in faster than real time, so its arrival times are not those of live audio)", file=sys.stderr)
    else:
        print(f"latency, frame out - end of its audio in (audio arriving in real time from the first chunk on): first frame {s['first']:.3f} s, "
              f"median {s['median']:.3f} s, 95th percentile {s['p95']:.3f} s, max {s['max']:.3f} s", file=sys.stderr)
