"""The one audio loader: any file libsndfile reads (`READABLE_FORMATS`), as 16 kHz mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16_000
# Anything quieter than this peak (about -80 dBFS) is treated as digital silence.
SILENCE_PEAK = 1e-4
FACE_FPS = 25

# The formats libsndfile reads (`soundfile.available_formats()`, libsndfile 1.2) and their file
# extensions. Static, so that Blender, whose Python may lack soundfile, can build Load Audio's file
# filter; tests/test_audio_formats.py checks it against soundfile. RAW is left out: a header-less
# file cannot be read without being told its rate and channels.
READABLE_FORMATS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav", ".wave"),
    "WAVEX": (".wav",),
    "RF64": (".rf64",),
    "W64": (".w64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"),
    "CAF": (".caf",),
    "AU": (".au", ".snd"),
    "AVR": (".avr",),
    "HTK": (".htk",),
    "SVX": (".iff", ".svx"),
    "MAT4": (".mat",),
    "MAT5": (".mat",),
    "MPC2K": (".mpc",),
    "PAF": (".paf",),
    "PVF": (".pvf",),
    "SD2": (".sd2",),
    "SDS": (".sds",),
    "IRCAM": (".sf", ".ircam"),
    "VOC": (".voc",),
    "NIST": (".nist", ".sph"),
    "WVE": (".wve",),
    "XI": (".xi",),
}
UNREADABLE_FORMATS = ("RAW",)
AUDIO_EXTENSIONS: tuple[str, ...] = tuple(dict.fromkeys(e for exts in READABLE_FORMATS.values() for e in exts))
FILE_FILTER = ";".join(f"*{extension}" for extension in AUDIO_EXTENSIONS)  # a file browser's filter_glob


def check_audio_path(path: str | Path) -> None:
    """Refuse, by its extension, a sound file the loader cannot read (`.m4a`, `.aac`, a video),
    before anything runs. A file without an extension is left to the loader. Raises `AudioError`."""
    path = Path(path)
    if path.suffix and path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioError(_unsupported(path))


def _unsupported(path: Path) -> str:
    return (
        f"'{path.suffix}' sound files cannot be read (WAV, FLAC, OGG, MP3, AIFF and other libsndfile formats can): "
        f'convert it first, e.g. ffmpeg -i "{path.name}" "{path.stem}.wav": {path}'
    )


def load_audio(path: str | Path) -> np.ndarray:
    """Read a sound file, mix it to mono and resample it to 16 kHz (what wav2vec2 expects).

    Returns float32 samples in [-1, 1], shape (samples,). Raises `AudioError` with a one-line
    message for anything a user could hand us by mistake.
    """
    import soundfile
    import soxr

    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"audio path is a folder, not a sound file: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports unknown formats as several exception types
        if path.suffix and path.suffix.lower() not in AUDIO_EXTENSIONS:
            raise AudioError(_unsupported(path)) from None
        raise AudioError(f"not a readable audio file ({_first_line(exc)}): {path}") from None
    if samples.shape[0] == 0:
        raise AudioError(f"audio file contains no samples (zero length): {path}")
    mono = samples.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"audio file contains invalid (NaN or infinite) samples: {path}")
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if mono.shape[0] < SAMPLE_RATE // FACE_FPS:
        seconds = mono.shape[0] / SAMPLE_RATE
        raise AudioError(
            f"audio is {seconds * 1000:.1f} ms long, shorter than one animation frame (40 ms): {path}"
        )
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        raise AudioError(f"audio is silent (peak below -80 dBFS), nothing to animate: {path}")
    return np.ascontiguousarray(mono, dtype=np.float32)


def frame_count(num_samples: int, fps: int = FACE_FPS) -> int:
    """Face frames for a clip: N = round(fps * seconds) (METHOD.md, notation), at least one."""
    return max(1, int(round(num_samples * fps / SAMPLE_RATE)))


def normalize(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole clip, as wav2vec2 feature extractors do."""
    samples = samples.astype(np.float32)
    return (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
