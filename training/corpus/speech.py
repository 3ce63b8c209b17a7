"""Speech with exact phone timings from the synthesisers themselves.

- festival (HTS `cmu_us_slt_arctic_hts`, diphone `kal_diphone`): the utterance's Segment relation.
- flite (slt, kal16, awb, rms): its `-psdur` segment end times.
- espeak-ng (en-us with variants): phoneme events from libespeak-ng (ctypes), sample exact.

Prosody (pitch level and range, rate, energy) is applied by each synthesiser, so the timings it
reports are those of the audio it wrote. Install the tools with scripts/install-speech-tools.sh.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...core.audio import SAMPLE_RATE
from ...core.errors import TalkingHeadError
from .phones import from_espeak, normalise


class SpeechToolError(TalkingHeadError):
    """A speech synthesiser is missing or failed."""


@dataclass(frozen=True)
class Voice:
    engine: str  # festival | flite | espeak
    name: str  # festival voice, flite voice or espeak-ng voice (+variant)
    pitch: float = 0.0  # semitones added to the voice's own level
    rate: float = 1.0  # speaking-rate factor

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prosody:
    pitch: float = 0.0  # semitones
    pitch_range: float = 1.0  # factor on F0 variation
    rate: float = 1.0  # factor on speaking rate (1.2 = 20 % faster)
    energy_db: float = 0.0  # level change


@dataclass
class Speech:
    samples: np.ndarray  # (S,) float32 at 16 kHz
    phones: list[tuple[str, float, float]]  # (phone, start s, end s), contiguous, covering the audio

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


# Voices whose synthesiser cannot move pitch as asked: WORLD moves it after synthesis, timing
# untouched. Measured before: festival's slt_hts spoke +5 semitones and a doubled range at the
# same 174 Hz and range (its HTS module passes only -r); espeak-ng's pitch parameter gave -2 to +3
# semitones for -6 to +6 asked, by voice (en-us, en-us+f3).
HTS_PITCH_AFTER = ("slt_hts",)


def pitch_after(voice: Voice) -> bool:
    """True when `synthesize` moves this voice's pitch and range with WORLD after synthesis."""
    return voice.engine == "espeak" or (voice.engine == "festival" and voice.name in HTS_PITCH_AFTER)


def synthesize(text: str, voice: Voice, prosody: Prosody = Prosody()) -> Speech:
    text = " ".join(text.replace('"', " ").replace("\\", " ").split())
    pitch = voice.pitch + prosody.pitch
    rate = voice.rate * prosody.rate
    if voice.engine == "festival":
        samples, rate_hz, ends = _festival(text, voice.name, pitch, prosody.pitch_range, rate)
    elif voice.engine == "flite":
        samples, rate_hz, ends = _flite(text, voice.name, pitch, prosody.pitch_range, rate)
    elif voice.engine == "espeak":
        samples, rate_hz, ends = _espeak(text, voice.name, rate)  # pitch and range: below
    else:
        raise SpeechToolError(f"unknown speech engine {voice.engine!r} (use festival, flite or espeak)")
    import soxr

    samples = np.asarray(samples, np.float32)
    if rate_hz != SAMPLE_RATE:
        samples = soxr.resample(samples, rate_hz, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if pitch_after(voice) and (pitch != 0.0 or prosody.pitch_range != 1.0):
        from .voice_warp import shift_pitch

        samples = shift_pitch(samples, pitch, prosody.pitch_range)
    peak = float(np.abs(samples).max()) or 1.0
    samples = samples / peak * 0.5 * 10 ** (prosody.energy_db / 20)
    samples = np.clip(samples, -0.99, 0.99).astype(np.float32)
    return Speech(samples, _contiguous(ends, len(samples) / SAMPLE_RATE))


def _contiguous(ends: list[tuple[str, float]], seconds: float) -> list[tuple[str, float, float]]:
    """(phone, end) list -> (phone, start, end), clipped to the audio, merged adjacent pauses."""
    phones: list[tuple[str, float, float]] = []
    start = 0.0
    for name, end in ends:
        end = min(float(end), seconds)
        if end <= start + 1e-4:
            continue
        if phones and name == "pau" and phones[-1][0] == "pau":
            phones[-1] = ("pau", phones[-1][1], end)
        else:
            phones.append((name, start, end))
        start = end
    if start < seconds - 1e-4:
        if phones and phones[-1][0] == "pau":
            phones[-1] = ("pau", phones[-1][1], seconds)
        else:
            phones.append(("pau", start, seconds))
    return phones


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SpeechToolError(f"{tool} is not installed: run scripts/install-speech-tools.sh")
    return path


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


FESTIVAL_VOICES = {"slt_hts": "voice_cmu_us_slt_arctic_hts", "kal": "voice_kal_diphone"}


def _festival(text: str, voice: str, pitch: float, pitch_range: float, rate: float):
    festival = _require("festival")
    if voice not in FESTIVAL_VOICES:
        raise SpeechToolError(f"unknown festival voice {voice!r} (known: {', '.join(FESTIVAL_VOICES)})")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        if voice == "slt_hts":
            # Festival's HTS module passes only -r (speed) to the engine: -fm (half-tones) and -jf
            # were ignored, so this voice spoke every pitch and range alike. synthesize() moves
            # them afterwards (pitch_after).
            setup = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.4f}))))'
        else:
            mean, std = 105.0 * 2 ** (pitch / 12), 14.0 * pitch_range * 2 ** (pitch / 12)
            setup = (
                f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})"
                f"(set! int_lr_params (append (list (list 'target_f0_mean {mean:.2f}) (list 'target_f0_std {std:.2f})) int_lr_params))"
            )
        script = (
            f"({FESTIVAL_VOICES[voice]})\n{setup}\n"
            f'(set! utt (utt.synth (Utterance Text "{text}")))\n'
            f'(utt.save.wave utt "{wav}" \'riff)\n'
            '(mapcar (lambda (s) (format t "SEG %s %f\\n" (item.name s) (item.feat s "end"))) (utt.relation.items utt \'Segment))\n'
        )
        (Path(tmp) / "say.scm").write_text(script)
        result = subprocess.run([festival, "-b", str(Path(tmp) / "say.scm")], capture_output=True, text=True, timeout=120)
        if not wav.is_file():
            raise SpeechToolError(f"festival failed for voice {voice}: {(result.stderr or result.stdout).strip()[:200]}")
        ends = [(normalise(p[1]), float(p[2])) for p in (line.split() for line in result.stdout.splitlines()) if len(p) == 3 and p[0] == "SEG"]
        samples, rate_hz = _read_wav(wav)
    return samples, rate_hz, ends


FLITE_VOICES = {"slt": 170.0, "kal16": 105.0, "awb": 110.0, "rms": 100.0, "kal": 105.0}


def _flite(text: str, voice: str, pitch: float, pitch_range: float, rate: float):
    flite = _require("flite")
    if voice not in FLITE_VOICES:
        raise SpeechToolError(f"unknown flite voice {voice!r} (known: {', '.join(FLITE_VOICES)})")
    base = FLITE_VOICES[voice]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        command = [
            flite, "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.4f}",
            "--setf", f"int_f0_target_mean={base * 2 ** (pitch / 12):.2f}",
            "--setf", f"int_f0_target_stddev={0.12 * base * pitch_range * 2 ** (pitch / 12):.2f}",
            "-psdur", "-t", text, "-o", str(wav),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if not wav.is_file():
            raise SpeechToolError(f"flite failed for voice {voice}: {result.stderr.strip()[:200]}")
        ends = []
        for token in result.stdout.split():
            name, _, end = token.rpartition(":")
            try:
                ends.append((normalise(name), float(end)))
            except ValueError:
                continue
        samples, rate_hz = _read_wav(wav)
    return samples, rate_hz, ends


class _EspeakEventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EspeakEventId),
    ]


_ESPEAK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))
_EVENT_PHONEME = 7
_espeak_state: dict = {}


def _espeak_library():
    if "lib" in _espeak_state:
        return _espeak_state
    try:
        lib = ctypes.CDLL("libespeak-ng.so.1")
    except OSError:
        raise SpeechToolError("libespeak-ng is not installed: run scripts/install-speech-tools.sh") from None
    # AUDIO_OUTPUT_SYNCHRONOUS = 2; option 1 = phoneme events.
    rate_hz = lib.espeak_Initialize(2, 200, None, 1)
    if rate_hz <= 0:
        raise SpeechToolError("libespeak-ng failed to initialise (is espeak-ng-data installed?)")
    chunks: list[np.ndarray] = []
    events: list[tuple[str, int]] = []

    def callback(wav, n, event):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while event[i].type != 0:
            if event[i].type == _EVENT_PHONEME:
                events.append((event[i].id.string.decode("ascii", "replace"), int(event[i].sample)))
            i += 1
        return 0

    handle = _ESPEAK_CALLBACK(callback)
    lib.espeak_SetSynthCallback(handle)
    _espeak_state.update(lib=lib, rate=rate_hz, chunks=chunks, events=events, handle=handle)
    return _espeak_state


def _espeak(text: str, voice: str, rate: float):
    state = _espeak_library()
    lib = state["lib"]
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise SpeechToolError(f"unknown espeak-ng voice {voice!r} (try en-us, en-us+f3, en+m2)")
    # espeakRATE=1 (words/min), espeakVOLUME=2, espeakPITCH=3 (0-99), espeakRANGE=4 (0-99)
    lib.espeak_SetParameter(1, int(round(165 * rate)), 0)
    lib.espeak_SetParameter(2, 100, 0)
    lib.espeak_SetParameter(3, 50, 0)  # the voice's own pitch and range: synthesize() moves them (pitch_after)
    lib.espeak_SetParameter(4, 50, 0)
    state["chunks"].clear()
    state["events"].clear()
    data = text.encode("utf-8")
    # position type POS_CHARACTER = 1, flags espeakCHARS_UTF8 = 1
    lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)
    lib.espeak_Synchronize()
    samples = np.concatenate(state["chunks"]).astype(np.float32) / 32768.0
    rate_hz = state["rate"]
    events = list(state["events"])
    ends = []
    if events and events[0][1] > 0:
        ends.append(("pau", events[0][1] / rate_hz))
    for (name, _), (_, next_sample) in zip(events, events[1:] + [("", len(samples))]):
        ends.append((from_espeak(name), next_sample / rate_hz))
    return samples, rate_hz, ends
