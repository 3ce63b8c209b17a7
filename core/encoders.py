"""The two frozen speech encoders (METHOD.md sections 1 and 4).

A source is a folder written by `save_pretrained` or a hub id. A folder that core/wav2vec2.py can
read loads there, in plain torch, without importing transformers (seconds of a short run);
anything else (hub ids, adapters, other architectures) goes through transformers' `from_pretrained`
as before. Both give the same numbers and the same `state_dict()`. Long audio is encoded in
overlapping windows so memory stays flat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import wav2vec2
from .audio import normalize
from .errors import BundleError

log = logging.getLogger(__name__)

# wav2vec2's convolutional front end: 400-sample receptive field, 320-sample stride (20 ms).
RECEPTIVE_FIELD = 400
STRIDE = 320
# Shorter input gets zero padding to this many samples, then the extra frames are cut off.
MIN_SAMPLES = 8_000


@dataclass
class EmotionFeatures:
    """Emotion encoder output at the encoder's frame rate (M frames).

    hidden (M, De): backbone hidden states; logits (M, C): per-frame class scores (see
    `EmotionEncoder`), labels: the C class names.
    """

    hidden: torch.Tensor
    logits: torch.Tensor
    labels: list[str]


def load_pretrained(model_class, source: str, what: str):
    """`model_class.from_pretrained(source)`, with a one-line error when it cannot be loaded."""
    quiet_transformers()
    try:
        # float32 even for half-precision checkpoints (the demo bundle's): CPUs run it faster.
        model = model_class.from_pretrained(source, dtype=torch.float32)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"cannot load the {what} from {source!r}: {first}") from None
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def load_plain(loader: Callable[[str], torch.nn.Module], source: str) -> torch.nn.Module | None:
    """`loader(source)` from core/wav2vec2.py for a folder it can read, else None: the caller then
    loads `source` with transformers, whose error messages also cover broken folders."""
    if not Path(source).is_dir():
        return None
    try:
        return loader(source)
    except wav2vec2.Unsupported as exc:
        log.debug("loading %s with transformers: %s", source, exc)
        return None


def quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars out of the user's terminal."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def autocast(device: str, precision: str):
    """bf16 autocast for the encoders (about 2x faster on CPUs with AVX-512 BF16), or a no-op."""
    if precision not in ("fp32", "bf16"):
        raise BundleError(f"unknown encoder precision {precision!r}; use fp32 or bf16")
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16")


class _WindowedEncoder:
    """Runs a wav2vec2-style model over long audio in windows with context on both sides.

    Each window encodes `window` seconds plus `context` seconds either side and keeps only its
    own frames, so a frame depends on at most window + context seconds of audio around it.
    """

    def __init__(self, window_s: float, context_s: float) -> None:
        self.window = max(1, int(window_s * 16_000) // STRIDE) * STRIDE
        self.context = int(context_s * 16_000) // STRIDE * STRIDE

    @staticmethod
    def frames_for(samples: int) -> int:
        """Frames wav2vec2 yields for this many samples (at least one)."""
        return max(1, (samples - RECEPTIVE_FIELD) // STRIDE + 1)

    def encode(self, samples: np.ndarray, run) -> list[torch.Tensor]:
        """`run(chunk (1, S) tensor)` returns a list of (1, m, C) outputs; stitched along time."""
        length = max(len(samples), MIN_SAMPLES)
        audio = np.zeros(length, np.float32)
        audio[: len(samples)] = samples
        total = self.frames_for(length)
        pieces: list[list[torch.Tensor]] = []
        for begin in range(0, length, self.window):
            lo = max(0, begin - self.context)
            hi = min(length, begin + self.window + self.context)
            # Each window is normalised on its own, as a feature extractor treats one input.
            outputs = run(torch.from_numpy(normalize(audio[lo:hi])).unsqueeze(0))
            first = (begin - lo) // STRIDE
            keep = min(self.window // STRIDE, total - begin // STRIDE)
            if keep <= 0:
                break
            pieces.append([o[:, first : first + keep] for o in outputs])
        stitched = [torch.cat(parts, dim=1)[0] for parts in zip(*pieces)]
        return [s[: self.frames_for(len(samples))] for s in stitched]


class ContextEncoder:
    """E_c: last hidden state of a frozen wav2vec2 (any checkpoint Wav2Vec2Model loads).

    `model` is a core/wav2vec2.py `Wav2Vec2` (`backend` "torch") or a transformers Wav2Vec2Model
    ("transformers"); both have `.config`, `state_dict()`, `save_pretrained()` and the same outputs.
    """

    def __init__(self, source: str, window_s: float = 20.0, context_s: float = 2.0, device: str = "cpu", precision: str = "fp32") -> None:
        model = load_plain(wav2vec2.load_model, source)
        self.backend = "torch" if model is not None else "transformers"
        if model is None:
            from transformers import Wav2Vec2Model

            model = load_pretrained(Wav2Vec2Model, source, "context encoder")
        self.model = model.to(device)
        self.device, self.precision = device, precision
        self.windows = _WindowedEncoder(window_s, context_s)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, samples: np.ndarray) -> torch.Tensor:
        """16 kHz samples -> (M, Dc) hidden states on the CPU."""

        def run(chunk: torch.Tensor) -> list[torch.Tensor]:
            with autocast(self.device, self.precision):
                return [self.model(chunk.to(self.device)).last_hidden_state.float().cpu()]

        return self.windows.encode(samples, run)[0]


class EmotionEncoder:
    """E_e: a frozen wav2vec2 speech-emotion classifier (`Wav2Vec2ForSequenceClassification`).

    Its head is linear -> mean pool -> linear; both maps are linear, so applying them to each
    frame and averaging over a window equals classifying that window. The per-frame scores are
    averaged over `smooth_s` seconds around each frame: what the classifier says of that second.
    `model` is a core/wav2vec2.py `Wav2Vec2Classifier` or the transformers model (see ContextEncoder).
    """

    def __init__(
        self, source: str, window_s: float = 20.0, context_s: float = 2.0, device: str = "cpu", precision: str = "fp32", smooth_s: float = 1.0
    ) -> None:
        model = load_plain(wav2vec2.load_classifier, source)
        self.backend = "torch" if model is not None else "transformers"
        if model is None:
            from transformers import AutoModelForAudioClassification

            model = load_pretrained(AutoModelForAudioClassification, source, "emotion encoder")
        self.model = model.to(device)
        if not (hasattr(self.model, "projector") and hasattr(self.model, "classifier")):
            raise BundleError(
                f"emotion encoder {source!r} is a {type(self.model).__name__}; a wav2vec2-style "
                "sequence classifier (projector + classifier) is needed"
            )
        self.device, self.precision = device, precision
        self.windows = _WindowedEncoder(window_s, context_s)
        self.smooth = max(1, int(round(smooth_s * 16_000 / STRIDE)))
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, samples: np.ndarray) -> EmotionFeatures:
        model = self.model
        weighted = getattr(model.config, "use_weighted_layer_sum", False)

        def run(chunk: torch.Tensor) -> list[torch.Tensor]:
            with autocast(self.device, self.precision):
                out = model.base_model(chunk.to(self.device), output_hidden_states=weighted)
                if weighted:
                    stacked = torch.stack(out.hidden_states, dim=1)
                    norm = torch.softmax(model.layer_weights, dim=-1).view(-1, 1, 1)
                    pooled_input = (stacked * norm).sum(dim=1)
                else:
                    pooled_input = out.last_hidden_state
                return [out.last_hidden_state.float().cpu(), model.projector(pooled_input).float().cpu()]

        hidden, projected = self.windows.encode(samples, run)
        # Mean over a sliding window, then the classifier: logits of that window's pooled features.
        kernel = torch.ones(1, 1, self.smooth) / self.smooth
        padded = torch.nn.functional.pad(projected.t().unsqueeze(1), (self.smooth // 2, (self.smooth - 1) // 2), mode="replicate")
        pooled = torch.nn.functional.conv1d(padded, kernel).squeeze(1).t()
        weight = model.classifier.weight
        logits = model.classifier(pooled.to(weight.device, weight.dtype)).float().cpu()
        return EmotionFeatures(hidden=hidden, logits=logits, labels=self.labels)


# A Hugging Face hub repository id: OWNER/NAME, letters, digits, "-", "_" and ".".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def resolve_source(source: str, bundle_dir: Path, what: str = "encoder") -> str:
    """Where an encoder comes from: a folder inside the bundle, another folder, or a hub id.

    A source that names a path inside the bundle never falls back to the hub: if its folder is
    missing, the bundle is incomplete, and the same name on the hub would be a stranger's
    repository. Only an OWNER/NAME id whose first part is not in the bundle goes to the hub."""
    bundle_dir = Path(bundle_dir)
    local = bundle_dir / source
    if local.is_dir():
        return str(local)
    if Path(source).is_absolute():
        raise BundleError(f"cannot load the {what}: its folder {source} does not exist")
    first = Path(source).parts[0] if Path(source).parts else source
    inside = first in (".", "..", "encoders") or (bundle_dir / first).exists()
    if inside or not _HUB_ID.fullmatch(source) or ".." in source or "--" in source:
        raise BundleError(f"cannot load the {what}: model bundle {bundle_dir} is missing its encoder folder {source}")
    return source
