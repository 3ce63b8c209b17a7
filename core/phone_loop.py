"""Phones heard in the sound: the words pocketsphinx recognises (its general US-English language
model), aligned to the sound, or where it recognises none, its phone loop ("allphone": the same
real-speech acoustic model with a phone bigram); all of it inside its wheel.

Why: the content encoder learned phones from synthetic voices and hears real ones poorly. Words
place phones far better than the phone loop (on the independent ARCTIC labels, 0.77 of the frames
against 0.56; README, Real voices) and, by a faster search than `--recognise`'s full one, cost
about 0.2 s per second of audio on one core. The phones are a hint weighed against what the
encoder hears (`PhonePrototypes.blend`): what Gn reads then carries more phone information and
the lips follow p/b/m, open and rounded vowels on real voices as on synthetic ones.

`PhoneLoopJob` runs it in a child process (this module as a script, no torch), started before
the model loads, so on a 2-core machine it runs beside torch's import and the encoders;
`heard_phones` runs it here.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .alignment import FRAME_S, TranscriptError, align_pcm, decode, pcm16, words_heard
from .audio import SAMPLE_RATE
from .bootstrap import bootstrap
from .bundle_info import PHONE_PROTOTYPES

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # this package's folder, whatever it is called

LANGUAGE_WEIGHT = 2.0  # the phone bigram's weight: 1-4 measured alike (README, Real voices); 8 worse
WAIT_S = 60.0  # a child that has not answered by then, or by the audio's own length if longer, is given up (the phones are made here)
_DECODER = None
_RECOGNISER = None
PIECE_S = 30.0  # long audio is heard in pieces of about this length (`pieces`)
CHILD_PROCESSES = 2  # the child hears long audio's pieces in this many processes


def available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def _decoder():
    global _DECODER
    if _DECODER is None:
        from pocketsphinx import Decoder, get_model_path

        # beams of 1e-20; 1e-10 was measured 23% faster with 98.6% of the frames' phones the same: not worth it
        _DECODER = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                           lw=LANGUAGE_WEIGHT, beam=1e-20, pbeam=1e-20)
    return _DECODER


def heard_phones(samples: np.ndarray) -> list[tuple[str, float, float]]:
    """16 kHz samples -> [(ARPAbet phone, start_s, end_s)], silence and noise as `SIL`: the phones
    of the words pocketsphinx recognises, aligned; the phone loop's when it recognises none."""
    return _decode(pcm16(np.asarray(samples, np.float32)))


def _decode(pcm: bytes, processes: int = 1) -> list[tuple[str, float, float]]:
    """Long audio is heard in pieces of about `PIECE_S`, cut at the quietest 10 ms near each cut:
    the language model was made for sentences, and one utterance of many minutes costs the search
    memory for all of it. `processes` > 1 hears the pieces in that many forked processes where the
    platform forks (the child does: it holds no threads; 10 minutes of audio, README Speed)."""
    ranges = pieces(np.frombuffer(pcm, "<i2"))
    chunks = [pcm[2 * start: 2 * end] for start, end in ranges]
    if processes > 1 and len(chunks) > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(min(processes, len(chunks))) as pool:
            heard = pool.map(_hear, chunks, chunksize=1)
    else:
        heard = [_hear(chunk) for chunk in chunks]
    out: list[tuple[str, float, float]] = []
    for (start, _), phones in zip(ranges, heard):
        offset = start / SAMPLE_RATE
        out.extend((name, a + offset, b + offset) for name, a, b in phones)
    return out


def pieces(samples: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)] sample ranges covering `samples`: one for audio up to twice `PIECE_S`, else
    cuts every `PIECE_S` moved to the quietest 10 ms frame within 5 s (at most half a piece) of it."""
    n, frame = len(samples), int(SAMPLE_RATE * FRAME_S)
    if n <= 2 * PIECE_S * SAMPLE_RATE:
        return [(0, n)]
    energy = np.square(samples[: n // frame * frame].astype(np.float64)).reshape(-1, frame).sum(axis=1)
    step = int(PIECE_S / FRAME_S)
    cuts, reach = [0], min(int(5.0 / FRAME_S), step // 2)
    while (len(energy) - cuts[-1]) > 2 * step:
        lo, hi = cuts[-1] + step - reach, cuts[-1] + step + reach
        cuts.append(lo + int(np.argmin(energy[lo:hi])))
    bounds = [c * frame for c in cuts] + [n]
    return list(zip(bounds[:-1], bounds[1:]))


def _hear(pcm: bytes) -> list[tuple[str, float, float]]:
    words = _recognised_words(pcm)
    if words:
        try:
            return align_pcm(pcm, words)
        except TranscriptError:
            pass
    return _phone_loop(pcm)


def _recognised_words(pcm: bytes) -> str:
    """The words pocketsphinx's general US-English language model hears ("" for none), by a
    faster search than `alignment.recognise` (no flat-lexicon pass, a phone lookahead of 5
    frames): 0.17 s per second of audio on one core against 0.21, its words aligned the same on
    the independent ARCTIC labels (README, Real voices)."""
    global _RECOGNISER
    if _RECOGNISER is None:
        from pocketsphinx import Decoder

        _RECOGNISER = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", fwdflat=False, pl_window=5)
    return words_heard(_RECOGNISER, pcm)


def _phone_loop(pcm: bytes) -> list[tuple[str, float, float]]:
    decoder = _decoder()
    decode(decoder, pcm, fresh=True)
    phones = []
    for segment in decoder.seg():
        name = segment.word
        if name == "SIL" or name.startswith(("+", "<")):  # +NSN+, +SPN+, <s>: silence and noise
            name = "SIL"
        phones.append((name, segment.start_frame * FRAME_S, (segment.end_frame + 1) * FRAME_S))
    return phones


class PhoneLoopJob:
    """`heard_phones` in a child process. `start` returns at once; `result` waits for the phones
    (made here if the child failed: a job never loses them)."""

    def __init__(self, samples: np.ndarray, process: subprocess.Popen | None, pcm_path: str | None) -> None:
        self.samples, self.process, self.pcm_path = samples, process, pcm_path
        self._phones: list | None = None

    @classmethod
    def start(cls, samples: np.ndarray) -> "PhoneLoopJob":
        samples = np.asarray(samples, np.float32)
        try:
            handle, path = tempfile.mkstemp(suffix=".pcm", prefix="talking-head-")
            with os.fdopen(handle, "wb") as f:
                f.write(pcm16(samples))
            process = subprocess.Popen([sys.executable, "-c", bootstrap("core.phone_loop"), str(PACKAGE_ROOT), path],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        except OSError:
            return cls(samples, None, None)
        return cls(samples, process, path)

    def result(self) -> list[tuple[str, float, float]]:
        if self._phones is None:
            self._phones = self._from_child()
            if self._phones is None:
                self._phones = heard_phones(self.samples)
        return self._phones

    def cancel(self) -> None:
        """Stop the child if it still runs (the take failed or did not need it) and remove its input."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None and not self.process.stdout.closed:
                self.process.stdout.close()
        self._cleanup()

    def _from_child(self) -> list | None:
        if self.process is None:
            return None
        try:
            # it hears at about a fifth of real time: the audio's length is a generous limit
            out, _ = self.process.communicate(timeout=max(WAIT_S, len(self.samples) / SAMPLE_RATE))
            if self.process.returncode != 0:
                return None
            return [(str(p), float(a), float(b)) for p, a, b in json.loads(out)]
        except (subprocess.TimeoutExpired, ValueError, TypeError):
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self.pcm_path is not None:
            try:
                os.unlink(self.pcm_path)
            except OSError:
                pass
            self.pcm_path = None


def wanted(task) -> bool:
    """Does an `AnimateTask` ask for heard phones (and can pocketsphinx run here)?"""
    return bool(task.phone_loop and not task.transcript and not task.recognise and available())


def start_for(task, samples: np.ndarray, bundle_hears: bool | None = None) -> PhoneLoopJob | None:
    """The heard phones of `task`'s take, started now when the task asks for it and the bundle can
    use it (`bundle_hears`; None: its folder has phone prototypes, known before it loads)."""
    if not wanted(task):
        return None
    hears = bundle_hears if bundle_hears is not None else (Path(task.bundle) / PHONE_PROTOTYPES).is_file()
    return PhoneLoopJob.start(samples) if hears else None


def main(args: list[str]) -> int:
    """The child: a PCM file in (removed once read: nothing is left behind, whatever the parent
    does next), the phones as JSON on stdout."""
    with open(args[0], "rb") as pcm_file:
        pcm = pcm_file.read()
    try:
        os.unlink(args[0])
    except OSError:
        pass
    print(json.dumps(_decode(pcm, processes=CHILD_PROCESSES)))
    return 0
