"""Phone prototypes: what Gn reads, made from a phone timeline instead of the content encoder.

Why: the content encoder learned from synthetic voices and, on real speakers, keeps less phone
identity than plain MFCCs, so the mouth follows loudness. When the phones are known (a forced
alignment of a transcript, or a voice-activity decision that a stretch is silence) Gn can read
the encoder's own average state for each phone, measured on the synthetic speech it understands:
a prototype per phone, the mean of the encoder's hidden states over every step labelled with that
phone (training/phone_prototypes.py builds them; the bundle keeps them in
`phone_prototypes.safetensors`). Gn is not retrained: it reads vectors from the space it was
trained on.

Recognised words (no transcript) are a weaker hint: the recogniser errs, most on synthetic
voices. There the prototypes also carry a linear phone classifier of the encoder's states
(fitted on the same steps) and `blend` weighs the two: a product of the classifier's phone
posteriors and the recognised phone's (trusted at `TRUST`), and Gn reads the posterior-weighted
mean of the prototypes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bundle_info import PHONE_PROTOTYPES
from .errors import BundleError

FILE = PHONE_PROTOTYPES
PAUSE = "pau"
TRUST = 0.9  # probability given to the recognised phone (the rest spread over all phones)
RECOGNISED_WEIGHT = 1.0  # its exponent in the product with the classifier's posteriors
# pocketsphinx (ARPAbet, upper case) and festival names that are not phones of their own.
_SILENCES = frozenset({"sil", "sp", "spn", "h#", "#", "ssil", "pau", "<sil>", "<s>", "</s>"})


def phone_key(name: str) -> str:
    """A phone as aligners and synthesisers write it (`AH0`, ` m`) -> its lower-case name without stress."""
    return str(name).strip().lower().rstrip("012")


def is_silence(name: str) -> bool:
    """A silence or noise as aligners and synthesisers name it (`SIL`, `sp`, `pau`, `+NSN+`, empty)."""
    key = str(name).strip().lower()
    return not key or key in _SILENCES or key.startswith("+")


@dataclass
class PhonePrototypes:
    """phones: names (ARPAbet, lower case, `pau` for silence); vectors: (P, Dc) mean encoder states;
    counts: steps each mean was taken over; encoder: the content encoder they belong to;
    classifier: (weight (P, Dc), bias (P,)) of a linear phone classifier of the encoder's states,
    or None (older bundles: no recognised-words blend)."""

    phones: list[str]
    vectors: np.ndarray
    counts: np.ndarray
    encoder: str = ""
    classifier: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if PAUSE not in self.phones:
            raise BundleError(f"phone prototypes need a `{PAUSE}` entry (silence); they have {', '.join(self.phones)}")
        self.index = {p: i for i, p in enumerate(self.phones)}

    def lookup(self, name: str) -> int:
        """A phone name as aligners write it (`AH0`, `SIL`, `+NSN+`, `ax`) -> a row of `vectors`.
        Silence and noise -> `pau`; a phone the prototypes lack -> the schwa (`ax`/`ah`) if present."""
        key = phone_key(name)
        if is_silence(key):
            return self.index[PAUSE]
        if key in self.index:
            return self.index[key]
        for fallback in ("ax", "ah"):
            if fallback in self.index:
                return self.index[fallback]
        return self.index[PAUSE]

    def timeline(self, phones: list, steps: int, steps_per_s: float) -> np.ndarray:
        """Row index per step: the phone under each step's centre; steps no phone covers are `pau`.
        phones: [name, start_s, end_s] in time order."""
        out = np.full(steps, self.index[PAUSE], np.int64)
        centres = (np.arange(steps) + 0.5) / steps_per_s
        for name, start, end in phones:
            out[(centres >= float(start)) & (centres < float(end))] = self.lookup(str(name))
        return out

    def features(self, rows: np.ndarray, smooth: int = 1) -> torch.Tensor:
        """(steps,) rows -> (1, steps, Dc) prototype features, averaged over +-`smooth` steps: the
        encoder's states glide from phone to phone, so an abrupt switch is not what Gn learned on."""
        return self._smoothed(torch.from_numpy(self.vectors[rows]).float(), smooth)

    def weigh(self, context: torch.Tensor, phones: list, steps_per_s: float) -> torch.Tensor:
        """`blend` with the rows of a phone timing [(phone, start_s, end_s)] (recognised words',
        the phone loop's) at the context's steps; in the context's dtype."""
        return self.blend(context, self.timeline(phones, context.shape[1], steps_per_s)).to(context.dtype)

    def blend(self, context: torch.Tensor, rows: np.ndarray, trust: float = TRUST, weight: float = RECOGNISED_WEIGHT,
              smooth: int = 1) -> torch.Tensor:
        """Encoder states (1, steps, Dc) and the recognised phone row per step (steps,) -> what Gn
        reads (1, steps, Dc): the prototypes weighted by p(phone) ~ classifier(state) *
        recognised(phone)^weight, where the recognised phone has `trust` and the others share the
        rest. weight 0 is the classifier alone; a large weight the recognised phones alone."""
        if self.classifier is None:
            raise BundleError("these phone prototypes have no phone classifier (made by an older `bundle phones`): rebuild them "
                              "to follow recognised words")
        w, b = (torch.from_numpy(a).float() for a in self.classifier)
        log_p = torch.log_softmax(torch.nn.functional.linear(context[0].float().cpu(), w, b), dim=-1)
        n = len(self.phones)
        hint = torch.full((len(rows), n), (1.0 - trust) / n)
        hint[torch.arange(len(rows)), torch.from_numpy(np.asarray(rows, np.int64))] += trust
        q = torch.softmax(log_p + weight * torch.log(hint), dim=-1)
        return self._smoothed(q @ torch.from_numpy(self.vectors).float(), smooth)

    @staticmethod
    def _smoothed(x: torch.Tensor, smooth: int) -> torch.Tensor:
        """(steps, Dc) -> (1, steps, Dc) averaged over +-`smooth` steps."""
        if smooth > 0 and len(x) > 1:
            kernel = 2 * smooth + 1
            padded = torch.nn.functional.pad(x.T.unsqueeze(0), (smooth, smooth), mode="replicate")
            x = torch.nn.functional.avg_pool1d(padded, kernel, stride=1)[0].T
        return x.unsqueeze(0)

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        meta = {"phones": json.dumps(self.phones), "encoder": self.encoder}
        tensors = {"vectors": torch.from_numpy(np.ascontiguousarray(self.vectors, np.float32)),
                   "counts": torch.from_numpy(np.ascontiguousarray(self.counts, np.int64))}
        if self.classifier is not None:
            tensors["classifier_weight"] = torch.from_numpy(np.ascontiguousarray(self.classifier[0], np.float32))
            tensors["classifier_bias"] = torch.from_numpy(np.ascontiguousarray(self.classifier[1], np.float32))
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "PhonePrototypes":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                vectors = f.get_tensor("vectors").float().numpy()
                counts = f.get_tensor("counts").numpy()
                keys = set(f.keys())
                classifier = None
                if {"classifier_weight", "classifier_bias"} <= keys:
                    classifier = (f.get_tensor("classifier_weight").float().numpy(), f.get_tensor("classifier_bias").float().numpy())
            phones = json.loads(meta["phones"])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{path} is not a phone prototype file ({exc})") from None
        if vectors.ndim != 2 or len(vectors) != len(phones) or len(counts) != len(phones):
            raise BundleError(f"{path}: {len(phones)} phone names for {vectors.shape} prototype vectors")
        if classifier is not None and (classifier[0].shape != vectors.shape or classifier[1].shape != (len(phones),)):
            raise BundleError(f"{path}: a phone classifier of shape {classifier[0].shape} for {vectors.shape} prototypes")
        return cls(list(phones), vectors, counts, meta.get("encoder", ""), classifier)


def load_for_bundle(folder: Path, context_dim: int) -> PhonePrototypes | None:
    """The bundle's prototypes, or None when it has none; refused when they do not fit its encoder."""
    path = folder / FILE
    if not path.is_file():
        return None
    protos = PhonePrototypes.load(path)
    if protos.vectors.shape[1] != context_dim:
        raise BundleError(f"{path} holds {protos.vectors.shape[1]}-wide prototypes; the bundle's content encoder gives {context_dim}: "
                          "rebuild them with `talking-head bundle phones`")
    return protos
