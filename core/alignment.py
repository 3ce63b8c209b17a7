"""Transcript -> phone timings, by pocketsphinx forced alignment (its wheel carries a US-English
acoustic model trained on real speech and the CMU dictionary: nothing is downloaded).

Why: the content encoder hears real voices poorly; when the words are known, the aligner places
each phone to 10 ms and Gn can read the phone prototypes (core/phone_features.py) instead, the
way Rhubarb Lip Sync's dialog option uses a script. English only: the dictionary is.

Without a transcript, `recognised_phones` first recognises the words (pocketsphinx's general
US-English language model, also in its wheel) and aligns those, as Rhubarb Lip Sync does by
default; its phones are a hint that is weighed against what the content encoder hears
(`PhonePrototypes.blend`), since the recogniser errs, most on synthetic voices.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .errors import TalkingHeadError

FRAME_S = 0.01  # pocketsphinx's frame
MAX_CHARS = 20000
_WORD = re.compile(r"[a-z0-9']+")
_ALIGNER = None  # one aligner per process (`align_pcm`)


class TranscriptError(TalkingHeadError):
    """A transcript that cannot be used: empty, unreadable, words the dictionary lacks, or one the
    recording does not fit."""


def read_transcript(value: str) -> str:
    """`--transcript` takes the text itself or a .txt file's path; -> the text."""
    text = value
    if value.strip().lower().endswith(".txt") or ("\n" not in value and Path(value).is_file()):
        path = Path(value.strip())
        if not path.is_file():
            raise TranscriptError(f"transcript file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TranscriptError(f"cannot read the transcript {path}: {exc.__class__.__name__}") from None
    if len(text) > MAX_CHARS:
        raise TranscriptError(f"the transcript is {len(text)} characters long; at most {MAX_CHARS} are aligned in one take")
    if not words_of(text):
        raise TranscriptError("the transcript is empty (no words): leave it out to animate from the sound alone")
    return text


def words_of(text: str) -> list[str]:
    """Lower-case words as the dictionary spells them: punctuation dropped, apostrophes kept."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _decoder(**options):
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise TranscriptError("a transcript needs pocketsphinx: `pip install pocketsphinx` (in Blender: the add-on's "
                              "Install dependencies button)") from None
    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **options)


def recognise(samples: np.ndarray) -> str:
    """16 kHz samples -> the words pocketsphinx recognises ("" for none). With its alignment about
    a third of the clip's length on a 2-core CPU: its full search beams; narrower ones made
    nonsense of real speech."""
    return words_heard(_decoder(), pcm16(samples))


def words_heard(decoder, pcm: bytes) -> str:
    """The words a language-model `decoder` recognises in 16-bit PCM ("" for none)."""
    decode(decoder, pcm, fresh=True)
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def decode(decoder, pcm: bytes, fresh: bool = False) -> None:
    """One whole recording through `decoder`; `fresh`: from the model's own cepstral mean, not
    the last recording's (a kept decoder carries it over: the same clip aligned differently)."""
    if fresh:
        decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def recognised_phones(samples: np.ndarray) -> tuple[list[tuple[str, float, float]] | None, str]:
    """(phone timings of the recognised words as `align` gives them, the words); (None, why) when
    no words were recognised or they did not align."""
    words = recognise(samples)
    if not words_of(words):
        return None, "no words were recognised"
    try:
        return align(samples, words), words
    except TranscriptError as exc:
        return None, f"the recognised words did not align ({exc})"


def pcm16(samples: np.ndarray) -> bytes:
    """16 kHz float samples -> little-endian 16-bit PCM, what pocketsphinx reads."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def align(samples: np.ndarray, text: str) -> list[tuple[str, float, float]]:
    """16 kHz samples and their words -> [(ARPAbet phone, start_s, end_s)], silences as `SIL`.
    Refuses words the dictionary lacks (named) and recordings the words do not fit."""
    return align_pcm(pcm16(samples), text)


def align_pcm(pcm: bytes, text: str) -> list[tuple[str, float, float]]:
    """`align` of 16-bit PCM (`pcm16`)."""
    global _ALIGNER
    words = words_of(text)
    if not words:
        raise TranscriptError("the transcript is empty (no words): leave it out to animate from the sound alone")
    if _ALIGNER is None:
        _ALIGNER = _decoder(bestpath=False)  # kept: its dictionary takes 0.4 s to load
    decoder = _ALIGNER
    missing = sorted({w for w in words if decoder.lookup_word(w) is None})
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise TranscriptError(f"the transcript has words the English dictionary lacks: {shown} (write numbers and names as "
                              "they sound, e.g. 'twenty one', or leave the transcript out)")
    try:
        decoder.set_align_text(" ".join(words))
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()
            decode(decoder, pcm, fresh=not second_pass)
        alignment = decoder.get_alignment()
    except RuntimeError as exc:
        _ALIGNER = None  # a failed search may leave it mid-utterance: the next alignment gets a fresh one
        raise TranscriptError(f"the transcript could not be aligned to the sound ({exc})") from None
    phones = [] if alignment is None else [(p.name, p.start * FRAME_S, (p.start + p.duration) * FRAME_S) for p in alignment.phones()]
    spoken = [p for p in phones if p[0].upper() != "SIL"]
    if not spoken:
        raise TranscriptError("the transcript could not be aligned to the sound: is it the text of this recording?")
    return phones
