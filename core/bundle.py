"""Model bundles: a folder with config.json, model.safetensors, template.ply and the encoders.

Loading reads JSON, safetensors and PLY only: no pickle, and no code from the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from .emotion_direction import PROTOTYPES, EmotionError, EmotionPrototypes
from .emotion_hearing import FILE as HEARING, EmotionHearing
from .encoders import ContextEncoder, EmotionEncoder, resolve_source
from .errors import BundleError, MeshError
from .mesh_io import Mesh, read_mesh, write_mesh
from .phone_features import FILE as PHONE_PROTOTYPES
from .model import TalkingHeadModel
from .style import BundleIdentity

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TEMPLATE = "template.ply"
EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised"]
BIWI_SEEN_SUBJECTS = ["F2", "F3", "F4", "M3", "M4", "M5"]
# The dtypes a bundle's weights may be stored in (all widened to float32 on load).
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass
class ModelBundle:
    """A loaded bundle: its folder, configuration, generators and template mesh."""

    path: Path
    config: ModelConfig
    model: TalkingHeadModel
    template: Mesh
    # Per-class emotion features (core/emotion_direction.py), when the folder has them.
    emotion_prototypes: EmotionPrototypes | None = None
    # What a voice is heard as from its prosody (core/emotion_hearing.py), when the folder has it.
    emotion_hearing: EmotionHearing | None = None

    @property
    def pivot(self) -> np.ndarray:
        """Head pivot P (3,) (core/config.py `head_pivot`)."""
        return self.config.head_pivot(self.template.vertices)

    @property
    def identity(self) -> BundleIdentity:
        """What a style is checked against (core/style.py): width, subjects, pivots, fingerprint."""
        emotion = self.model.emotion
        pivots = None if emotion is None else self.model.person_embeddings().detach().float().cpu().numpy()
        return BundleIdentity.of(self.config, pivots)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "ModelBundle":
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"model bundle folder not found: {path}")
        for name in (CONFIG, WEIGHTS, TEMPLATE):
            if not (path / name).is_file():
                raise BundleError(f"model bundle {path} is missing {name}")
        config = ModelConfig.load(path / CONFIG)
        try:
            template = read_mesh(path / TEMPLATE)
        except MeshError as exc:
            raise BundleError(f"model bundle {path}: {exc}") from None
        if template.n_vertices != config.n_vertices:
            raise BundleError(
                f"model bundle {path}: {TEMPLATE} has {template.n_vertices} vertices but config.json "
                f"says {config.n_vertices}"
            )
        model = TalkingHeadModel.uninitialised(config)
        model.load_state_dict(_read_weights(path / WEIGHTS, model.state_dict()), strict=True)
        model.to(device).eval()
        prototypes = None
        if (path / PROTOTYPES).is_file():
            try:
                prototypes = EmotionPrototypes.load(path / PROTOTYPES, config.emotion_dim)
            except EmotionError as exc:
                raise BundleError(str(exc)) from None
        hearing = None
        if (path / HEARING).is_file():
            hearing = EmotionHearing.load(path / HEARING)
            if hearing.labels != list(config.emotion_labels):
                raise BundleError(f"model bundle {path}: {HEARING} hears {', '.join(hearing.labels)} but the bundle's emotions are "
                                  f"{', '.join(config.emotion_labels)}; fit it again with `talking-head bundle hearing {path.name} --speech SET`")
        return cls(path=path, config=config, model=model, template=template, emotion_prototypes=prototypes, emotion_hearing=hearing)

    def save(self, path: str | Path, half: bool = False) -> None:
        """Write config, weights and template; encoders are saved separately (`save_encoders`).

        `half` stores floating-point weights as float16 (half the download; widened on load).
        """
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.save(path / CONFIG)
        state = {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(path / WEIGHTS), metadata={"format": "pt"})
        write_mesh(path / TEMPLATE, self.template.vertices, self.template.faces)
        self.path = path

    def encoder_source(self, which: str) -> str:
        source = self.config.context_encoder if which == "context" else self.config.emotion_encoder
        return resolve_source(source, self.path, f"{which} encoder")

    def load_encoders(self, device: str = "cpu", precision: str = "fp32") -> tuple[ContextEncoder, EmotionEncoder]:
        cfg = self.config
        windows = (cfg.encode_window_s, cfg.encode_context_s)
        context = ContextEncoder(self.encoder_source("context"), *windows, device, precision)
        emotion = EmotionEncoder(self.encoder_source("emotion"), *windows, device, precision)
        if context.dim != cfg.context_dim or emotion.dim != cfg.emotion_dim:
            raise BundleError(
                f"model bundle {self.path}: encoders give {context.dim}/{emotion.dim}-d features but the "
                f"generators expect {cfg.context_dim}/{cfg.emotion_dim}"
            )
        return context, emotion


def _read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of `path`, checked against `expected` (a state dict: names, shapes, dtypes),
    widened to float32; a one-line BundleError for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{path.name} in {path.parent} is corrupt or unreadable ({str(exc).splitlines()[0]})") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise BundleError(
            f"{path.name} does not match config.json: {len(missing)} missing and {len(unexpected)} "
            f"unexpected tensors (e.g. {(missing or unexpected)[0]})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise BundleError(
                f"{path.name} does not match config.json: {name} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[name].shape)} (wrong vertex count?)"
            )
    bundle = path.parent
    for name, tensor in state.items():
        if tensor.dtype not in WEIGHT_DTYPES:
            raise BundleError(
                f"model bundle {bundle} has {str(tensor.dtype).removeprefix('torch.')} weights in {name}; "
                "a bundle's weights are floating point (float16, bfloat16, float32 or float64)"
            )
    # Half-precision bundles are widened on load; the generators always run in float32.
    widened = {name: tensor.to(expected[name].dtype) for name, tensor in state.items()}
    for name, tensor in widened.items():
        # NaN or inf weights (or float64 values beyond float32's range) animate nothing sensible.
        # A float64 sum is NaN or inf exactly when an element is (float32 values cannot overflow
        # it). The float32 sum, 20 times faster still, is finite whenever that one is, short of
        # an overflow of large finite weights: only a non-finite float32 sum is summed again.
        if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor.sum(dtype=torch.float64))):
            raise BundleError(f"model bundle {bundle} has non-finite weights (NaN or inf) in {name}; it is corrupt: retrain or re-download it")
    return widened


def pack_bundle(source: str | Path, out: str | Path, half: bool = True) -> ModelBundle:
    """A trained bundle made ready to ship: generators and local encoders in float16, without the
    training leftovers (checkpoint, logs). Hub-id encoders stay hub ids."""
    import shutil

    from .encoders import load_pretrained

    bundle = ModelBundle.load(source)
    out = Path(out)
    if out.resolve() == Path(source).resolve():
        raise BundleError("pack writes a new folder: --out must differ from the source bundle")
    sources = {which: Path(bundle.encoder_source(which)) for which in ("context", "emotion")}
    bundle.save(out, half=half)
    for which, location in sources.items():
        if not location.is_dir():
            continue
        from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, Wav2Vec2ForCTC

        architecture = (AutoConfig.from_pretrained(location).architectures or [""])[0]
        model_class = Wav2Vec2ForCTC if "CTC" in architecture else AutoModelForAudioClassification if "Classification" in architecture else AutoModel
        model = load_pretrained(model_class, str(location), f"{which} encoder")
        target = out / "encoders" / which
        (model.half() if half else model).save_pretrained(target)
        for extra in ("preprocessor_config.json", "vocab.json", "tokenizer_config.json", "special_tokens_map.json", "training.json"):
            if (location / extra).is_file():
                shutil.copy2(location / extra, target / extra)
        setattr(bundle.config, f"{which}_encoder", f"encoders/{which}")
    for extra in (PROTOTYPES, PHONE_PROTOTYPES, HEARING):  # emotion and phone prototypes belong to the encoders packed here; the hearing to the labels
        if (Path(source) / extra).is_file():
            shutil.copy2(Path(source) / extra, out / extra)
    bundle.config.save(out / CONFIG)
    return ModelBundle.load(out)
