"""Streaming (core/streaming.py, `talking-head stream`): audio fed in chunks gives the offline take's
frames, as the audio arrives, with an untrained tiny bundle (so only agreement is checked, not motion)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from talking_head.app.cli import main
from talking_head.core.config import ModelConfig
from talking_head.core.errors import AudioError
from talking_head.core.model import GenerationStream, TalkingHeadModel, head_noise
from talking_head.core.pipeline import load_animator
from talking_head.core.streaming import Streamer, pcm_chunks

from conftest import speech_like, write_clip

RATE = 16_000
# 3.01 s: a length whose M encoder frames are exactly 2N, so the offline take's stretch of the
# encoder frames over the model's steps, (M - 1) / (2N - 1), is 1, as a stream's is.
UNSTRETCHED = 640 * 75 + 160


@pytest.fixture(scope="module")
def animator(tiny_bundle_dir):
    return load_animator(tiny_bundle_dir, "cpu")


def stream(animator, audio, chunk_s=0.2, **options):
    """(frames, samples fed when the first frame came out, frames that came out in finish())."""
    streamer = Streamer(animator, **options)
    frames, first_at, step = [], None, int(chunk_s * RATE)
    for begin in range(0, len(audio), step):
        got = streamer.feed(audio[begin : begin + step])
        if got and first_at is None:
            first_at = min(begin + step, len(audio))
        frames += got
    last = streamer.finish()
    return streamer.animation(frames + last), first_at, len(last)


def mean_distance(a, b) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean())


# ---------------------------------------------------------------------- the model's step-wise API


@pytest.mark.parametrize("variant", ["full", "no-head", "baseline"])
def test_generation_pushed_in_blocks_equals_generate(variant):
    """Frames pushed a few at a time, across several positional windows, are generate()'s frames."""
    torch.manual_seed(2)
    cfg = ModelConfig.for_variant(variant, n_vertices=20, subjects=["A", "B"], context_dim=12, emotion_dim=10, max_frames=16, window_overlap=6)
    model = TalkingHeadModel(cfg).eval()
    for layer in (model.neutral.viseme_out, getattr(model.emotion, "expression_out", None), getattr(model.head, "motion_out", None)):
        if layer is not None:
            layer.reset_parameters()  # large outputs, so the comparison has something to compare
    frames = 53
    g = torch.Generator().manual_seed(0)
    context, emotion = torch.randn(1, 2 * frames, 12, generator=g), torch.randn(1, 2 * frames, 10, generator=g)
    noise = head_noise(5, 2 * frames, cfg.d_model)
    whole = model.generate(context, emotion, torch.tensor([1]), noise)
    stream, parts, t = GenerationStream(model, torch.tensor([1])), [], 0
    for n in (1, 4, 9, 2, 17, 1, 11, 8):
        s = slice(2 * t, 2 * (t + n))
        parts.append(stream.push(context[:, s], emotion[:, s], noise[:, s]))
        t += n
    assert t == frames
    for name in ("neutral", "emotional", "rotation", "translation"):
        pushed = torch.cat([getattr(p, name) for p in parts], dim=1)
        assert torch.allclose(pushed, getattr(whole, name), atol=1e-5, rtol=0), (name, (pushed - getattr(whole, name)).abs().max())
    # What no window can reach again is gone: the stream's memory does not grow with its length.
    assert stream.run.neutral_latent[0] is None and all(d.offset > 0 for d in stream.run.decodings.values())


def test_head_noise_from_a_frame_on_is_the_same_stream():
    whole = head_noise(7, 700, 16)
    for first in (0, 1, 255, 256, 300, 699, 700):
        assert torch.equal(head_noise(7, 700, 16, first=first), whole[:, first:])


# ---------------------------------------------------------------------- Streamer


@pytest.mark.parametrize("samples", [UNSTRETCHED, 48_000, 37_913, 1_000])
def test_stream_gives_the_offline_frame_count(animator, samples):
    audio = speech_like(samples / RATE)
    take, _, _ = stream(animator, audio, seed=1)
    offline = animator.animate(audio, seed=1)
    assert take.n_frames == offline.n_frames
    assert take.vertices.shape == offline.vertices.shape and take.emotion_probs.shape == offline.emotion_probs.shape


def test_lookahead_over_the_whole_clip_gives_the_offline_take(animator):
    """Nothing comes out before the end; then every frame, from the offline take's encoder pass."""
    audio = speech_like(UNSTRETCHED / RATE)
    offline = animator.animate(audio, seed=3)
    take, first_at, at_finish = stream(animator, audio, seed=3, lookahead_s=4.0)
    assert first_at is None and at_finish == offline.n_frames
    for name in ("vertices", "emotional", "neutral", "rotation", "translation"):
        np.testing.assert_allclose(getattr(take, name), getattr(offline, name), atol=1e-4, err_msg=name)
    # The probabilities differ a little: offline stretches the encoder's frames over the take's
    # frames by (M - 1) / (N - 1) = 149 / 74, a stream takes every second one.
    np.testing.assert_allclose(take.emotion_probs, offline.emotion_probs, atol=1e-3)


def test_stream_comes_closer_to_offline_as_the_lookahead_grows(animator):
    audio = speech_like(UNSTRETCHED / RATE, seed=4)
    offline = animator.animate(audio, seed=0)
    seeds = mean_distance(animator.animate(audio, seed=1).vertices, offline.vertices)
    gaps = [mean_distance(stream(animator, audio, seed=0, lookahead_s=s)[0].vertices, offline.vertices) for s in (0.1, 0.3, 1.0, 4.0)]
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] and gaps[3] < 1e-5, gaps
    # A streamed take is closer to the offline one of its seed than another seed's offline take.
    assert gaps[0] < seeds, (gaps, seeds)


def test_frames_come_out_while_the_audio_arrives(animator):
    audio = speech_like(3.0, seed=2)
    chunk, lookahead = 0.2, 0.3
    take, first_at, at_finish = stream(animator, audio, chunk_s=chunk, lookahead_s=lookahead, seed=0)
    # The first frame needs its own 40 ms and the lookahead after it; chunks come 200 ms at a time.
    assert first_at <= (chunk + lookahead + 0.04) * RATE
    # At the end only the frames within the lookahead (and the last partial chunk) are left.
    assert at_finish <= (lookahead + chunk) * 25 + 1
    # v_t = R_t (ye_t - P) + P + tau_t, frame by frame as offline
    pivot = take.pivot
    recomposed = np.einsum("nij,nvj->nvi", take.rotation, take.emotional - pivot) + pivot + take.translation[:, None]
    np.testing.assert_allclose(recomposed, take.vertices, atol=1e-5)


def test_frames_are_numbered_in_order_whatever_the_chunks(animator):
    streamer = Streamer(animator, lookahead_s=0.1)
    audio, got, rng, begin = speech_like(2.0, seed=5), [], np.random.default_rng(0), 0
    while begin < len(audio):
        size = int(rng.integers(1, 6000))
        got += streamer.feed(audio[begin : begin + size])
        begin += size
    got += streamer.finish()
    assert [f.index for f in got] == list(range(50))
    with pytest.raises(AudioError, match="finished"):
        streamer.feed(audio[:100])


def test_bad_streams_are_refused(animator):
    with pytest.raises(AudioError, match="empty"):
        Streamer(animator).finish()
    short = Streamer(animator)
    short.feed(np.zeros(300, np.float32))
    with pytest.raises(AudioError, match="shorter than one animation frame"):
        short.finish()
    with pytest.raises(AudioError, match="NaN"):
        Streamer(animator).feed(np.array([0.0, np.nan], np.float32))


def test_pcm_chunks_read_both_formats():
    import io

    samples = np.array([0, 16384, -32768, 32767, 5], np.int16)
    read = np.concatenate(list(pcm_chunks(io.BytesIO(samples.tobytes()), "s16le", 2 / RATE)))
    np.testing.assert_array_equal(read, samples / 32768.0)
    floats = np.array([0.0, 0.5, -1.0, 0.25], np.float32)
    np.testing.assert_array_equal(np.concatenate(list(pcm_chunks(io.BytesIO(floats.tobytes()), "f32le", 3 / RATE))), floats)


# ---------------------------------------------------------------------- talking-head stream


def run_stream(*args: str, data: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talking_head", "stream", *map(str, args)], input=data, capture_output=True, timeout=300)


def test_stream_command_reads_pcm_on_stdin(tmp_path, tiny_bundle_dir, animator):
    audio = speech_like(2.0, seed=6)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    out = tmp_path / "take.npz"
    result = run_stream("-", "--bundle", tiny_bundle_dir, "--pcm", "s16le", "--jsonl", "-", "--out", out, "--seed", "4", "--device", "cpu", "--report",
                        data=pcm.tobytes())
    assert result.returncode == 0, result.stderr.decode()
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [line["frame"] for line in lines] == list(range(50))
    first = lines[0]
    assert first["arkit"] is None  # the sphere template has no face landmarks
    assert np.asarray(first["head"]["rotation"]).shape == (3, 3) and len(first["head"]["translation"]) == 3
    assert set(first["emotion"]) == set(animator.emotion.labels) and abs(sum(first["emotion"].values()) - 1) < 1e-3
    assert "latency" in result.stderr.decode() and "Traceback" not in result.stderr.decode()
    data = np.load(out)
    assert data["vertices"].shape == (50, 200, 3)
    # the same frames as the Python API on the same samples
    take, _, _ = stream(animator, pcm.astype(np.float32) / 32768.0, seed=4)
    np.testing.assert_allclose(data["vertices"], take.vertices, atol=1e-5)
    np.testing.assert_allclose(np.asarray([line["head"]["translation"] for line in lines]), take.translation, atol=2e-6)


@pytest.mark.parametrize(
    "options, data, message",
    [
        (["--pcm", "s16le"], b"\x00\x01" * 4000 + b"\x07", "ended in the middle of a sample"),
        (["--pcm", "f32le"], b"\x00\x01" * 4000 + b"\x07", "ended in the middle of a sample"),
        (["--pcm", "s24le"], b"\x00\x01" * 4000, "invalid choice"),
        (["--pcm", "f32le"], (np.linspace(-1, 1, 4000) * 30000).astype("<i2").tobytes(), "use --pcm s16le"),
        ([], b"", "no audio: stdin held no samples"),
    ],
)
def test_bad_stdin_gets_one_line_and_exit_code_2(tiny_bundle_dir, options, data, message):
    result = run_stream("-", "--bundle", tiny_bundle_dir, "--device", "cpu", *options, data=data)
    err = result.stderr.decode().strip()
    assert result.returncode == 2, err
    assert message in err and err.startswith("talking-head: error:") and len(err.splitlines()) == 1 and "Traceback" not in err


def test_stream_command_reads_a_sound_file_chunk_by_chunk(tmp_path, tiny_bundle_dir, animator, capsys):
    clip = write_clip(tmp_path / "clip.wav", 2.0, rate=22_050, seed=3)
    jsonl = tmp_path / "frames.jsonl"
    assert main(["stream", str(clip), "--bundle", str(tiny_bundle_dir), "--jsonl", str(jsonl), "--chunk-ms", "120", "--device", "cpu"]) == 0
    lines = jsonl.read_text().splitlines()
    assert len(lines) == animator.animate(clip).n_frames == 50
    assert capsys.readouterr().out == ""  # frames went to the file, not stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["{clip}", "--csv", "{t}/take.csv"], "no ARKit channels"),
        (["{clip}", "--out", "{t}/take.mp4"], "must end in .npz"),
        (["{t}/missing.wav"], "not found"),
        (["{clip}", "--lookahead-ms", "-5"], "milliseconds"),
        (["{clip}", "--chunk-ms", "nan"], "milliseconds"),
    ],
)
def test_stream_command_refuses_bad_options(tmp_path, tiny_bundle_dir, capsys, args, message):
    clip = write_clip(tmp_path / "clip.wav", 1.0)
    values = {"clip": clip, "t": tmp_path}
    code = main(["stream", *[a.format(**values) for a in args], "--bundle", str(tiny_bundle_dir), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and err.startswith("talking-head: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "take.csv").exists()


def test_streamed_arkit_channels(tmp_path):
    """A template with face landmarks: ARKit weights per frame, in the .npz and a Live Link CSV that
    reads back; solved a block at a time (with the frames before), so close to the solve of the
    whole take, and equal to it when the lookahead covers the clip."""
    from talking_head.core.arkit import ARKIT_NAMES
    from talking_head.core.live_link import head_angles, read_live_link_csv
    from talking_head.core.mesh_io import write_mesh
    from talking_head.core.template_head import load_template_head
    from talking_head.training.tiny import make_tiny_bundle

    head = load_template_head()
    write_mesh(tmp_path / "head.ply", head.vertices, head.faces)
    make_tiny_bundle(tmp_path / "head", template=str(tmp_path / "head.ply"), max_frames=40, window_overlap=15)
    audio = speech_like(UNSTRETCHED / RATE, seed=8)
    clip = tmp_path / "clip.wav"
    soundfile.write(str(clip), audio, RATE, subtype="FLOAT")
    npz, csv = tmp_path / "take.npz", tmp_path / "take.csv"
    assert main(["stream", str(clip), "--bundle", str(tmp_path / "head"), "--out", str(npz), "--csv", str(csv), "--device", "cpu"]) == 0
    data = np.load(npz)
    weights = data["arkit_weights"]
    assert weights.shape == (75, 52) and list(data["arkit_names"]) == list(ARKIT_NAMES)
    assert weights.min() >= 0 and weights.max() <= 1 and weights.max() > 0
    take = read_live_link_csv(csv)
    np.testing.assert_allclose(take.weights, weights, atol=1e-6)
    np.testing.assert_allclose(take.head, head_angles(data["rotation"]), atol=1e-6)

    animator = load_animator(tmp_path / "head", "cpu")
    streamed, _, _ = stream(animator, audio, seed=0)
    solver = animator.arkit_solver()
    whole = solver.solve(streamed.emotional, rest=head.vertices)  # the same faces, solved as one take
    alone = np.concatenate([solver.solve(face[None], rest=head.vertices) for face in streamed.emotional])
    assert np.abs(streamed.arkit_weights - whole).mean() < 0.5 * np.abs(alone - whole).mean()  # the past frames smooth it
    covered, _, _ = stream(animator, audio, seed=0, lookahead_s=4.0)
    np.testing.assert_allclose(covered.arkit_weights, animator.animate(audio, seed=0).arkit_weights, atol=1e-4)


def test_sound_files_are_read_as_load_audio_reads_them(tmp_path):
    from talking_head.core.audio import load_audio
    from talking_head.core.streaming import sound_file_chunks

    same = write_clip(tmp_path / "a.wav", 1.3)
    np.testing.assert_array_equal(np.concatenate(list(sound_file_chunks(same, 0.2))), load_audio(same))
    other = tmp_path / "b.wav"
    soundfile.write(str(other), np.stack([speech_like(1.3, 44_100), speech_like(1.3, 44_100, seed=1)], 1), 44_100)
    chunks = np.concatenate(list(sound_file_chunks(other, 0.2)))
    whole = load_audio(other)
    assert abs(len(chunks) - len(whole)) <= 2
    n = min(len(chunks), len(whole))
    assert np.abs(chunks[:n] - whole[:n]).max() < 1e-3
