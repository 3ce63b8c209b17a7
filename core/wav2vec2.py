"""wav2vec2 for inference in plain torch, read from the folders transformers' `save_pretrained` writes.

Why it exists: importing transformers' wav2vec2 takes seconds (transformers itself, plus the
torch._dynamo, torch.distributed.tensor and sympy it pulls in), more than encoding a short clip.
This file mirrors transformers' `Wav2Vec2Model` and `Wav2Vec2ForSequenceClassification` in eval
mode with no attention mask, top to bottom: feature encoder (conv stack) -> feature projection ->
positional conv embedding -> transformer layers (post-LN as in wav2vec2-base, or pre-LN "stable
layer norm" as in large-lv60), with the same torch calls in the same order.

Anything it does not implement (adapters, other model types, other activations, unknown or
missing tensors, weights not in model.safetensors) raises `Unsupported`, and the caller loads the
folder with transformers instead, which stays the reference and the training path. Parameter names
mirror transformers', so `state_dict()` is the same whichever loader ran (the training feature
cache is keyed by a hash of it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Unsupported(Exception):
    """This folder needs transformers: the reason is the message."""


# --------------------------------------------------------------------------- configuration

# Activations by their transformers name, written as transformers computes them.
ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "gelu_new": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0)))),
}


@dataclass
class EncoderConfig:
    """The hyper-parameters of config.json this model uses; defaults are transformers' Wav2Vec2Config's."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_dim: list[int] = field(default_factory=lambda: [512] * 7)
    conv_stride: list[int] = field(default_factory=lambda: [5, 2, 2, 2, 2, 2, 2])
    conv_kernel: list[int] = field(default_factory=lambda: [10, 3, 3, 3, 3, 2, 2])
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    mask_time_prob: float = 0.05
    mask_feature_prob: float = 0.0
    use_weighted_layer_sum: bool = False
    classifier_proj_size: int = 256
    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})

    @classmethod
    def from_json(cls, data: dict) -> EncoderConfig:
        """The config of a transformers wav2vec2 folder, or `Unsupported` for what this file lacks."""
        if data.get("model_type") != "wav2vec2":
            raise Unsupported(f"model_type {data.get('model_type')!r} is not wav2vec2")
        if data.get("add_adapter") or data.get("adapter_attn_dim") is not None:
            raise Unsupported("adapters are not implemented")
        if data.get("tie_last_hidden_states"):
            raise Unsupported("tie_last_hidden_states is not implemented")
        names = cls.__dataclass_fields__.keys() - {"id2label"}
        cfg = cls(**{name: data[name] for name in names if name in data})
        if "id2label" in data:
            cfg.id2label = {int(i): str(label) for i, label in data["id2label"].items()}
        elif "num_labels" in data:
            cfg.id2label = {i: f"LABEL_{i}" for i in range(int(data["num_labels"]))}
        for key in ("hidden_act", "feat_extract_activation"):
            if getattr(cfg, key) not in ACTIVATIONS:
                raise Unsupported(f"{key} {getattr(cfg, key)!r} is not implemented")
        if cfg.feat_extract_norm not in ("group", "layer"):
            raise Unsupported(f"feat_extract_norm {cfg.feat_extract_norm!r} is not implemented")
        if not len(cfg.conv_dim) == len(cfg.conv_stride) == len(cfg.conv_kernel) or cfg.hidden_size % cfg.num_attention_heads:
            raise Unsupported("inconsistent conv or attention sizes")
        return cfg


@dataclass
class Wav2Vec2Output:
    """last_hidden_state (B, M, D); hidden_states: the input of the first layer and each layer's output."""

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


# --------------------------------------------------------------------------- feature encoder


class ConvLayer(nn.Module):
    """Conv1d -> norm -> activation. "group": GroupNorm (one group per channel) on the first conv
    only; "layer": LayerNorm over channels after every conv."""

    def __init__(self, cfg: EncoderConfig, index: int) -> None:
        super().__init__()
        c_in = cfg.conv_dim[index - 1] if index > 0 else 1
        c_out = cfg.conv_dim[index]
        self.conv = nn.Conv1d(c_in, c_out, cfg.conv_kernel[index], stride=cfg.conv_stride[index], bias=cfg.conv_bias)
        self.norm = cfg.feat_extract_norm if cfg.feat_extract_norm == "layer" or index == 0 else None
        if self.norm == "group":
            self.layer_norm = nn.GroupNorm(c_out, c_out, affine=True)
        elif self.norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out)  # eps 1e-5, not layer_norm_eps, as in transformers
        self.activation = ACTIVATIONS[cfg.feat_extract_activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        x = self.conv(x)
        if self.norm == "group":
            x = self.layer_norm(x)
        elif self.norm == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        return self.activation(x)


class FeatureEncoder(nn.Module):
    """Raw samples (B, S) -> conv features (B, C, M): 20 ms per frame for the usual strides."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(ConvLayer(cfg, i) for i in range(len(cfg.conv_dim)))

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        x = samples[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(cfg.conv_dim[-1], eps=cfg.layer_norm_eps)
        self.projection = nn.Linear(cfg.conv_dim[-1], cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, C) -> (B, M, D)
        return self.projection(self.layer_norm(x))


# --------------------------------------------------------------------------- positional conv embedding


class WeightNormParts(nn.Module):
    """g (original0) and v (original1) of a weight-normalised conv, named as torch's parametrization
    names them, so `state_dict()` matches transformers'."""

    def __init__(self, g_shape: tuple[int, ...], v_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.original0 = nn.Parameter(torch.empty(g_shape))
        self.original1 = nn.Parameter(torch.empty(v_shape))


class WeightNormConv(nn.Module):
    """Grouped Conv1d whose weight is g * v / ||v|| (norm over all dims but the kernel's, dim=2).
    The weight is computed once, by `refresh_weight()` after loading, not on every call."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        self.parametrizations = nn.ModuleDict({"weight": WeightNormParts((1, 1, kernel), (channels, channels // groups, kernel))})
        self.bias = nn.Parameter(torch.empty(channels))
        self.register_buffer("weight", torch.empty(channels, channels // groups, kernel), persistent=False)

    def refresh_weight(self) -> None:
        parts = self.parametrizations["weight"]  # the call torch's weight_norm parametrization makes
        self.weight = torch._weight_norm(parts.original1, parts.original0, 2).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, padding=self.padding, groups=self.groups)


class PositionalConvEmbedding(nn.Module):
    """Relative position from a wide grouped conv over time; an even kernel yields one extra frame,
    which is dropped."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.conv = WeightNormConv(cfg.hidden_size, cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups)
        self.drop_last = cfg.num_conv_pos_embeddings % 2 == 0
        self.activation = ACTIVATIONS[cfg.feat_extract_activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, D)
        x = self.conv(x.transpose(1, 2))
        if self.drop_last:
            x = x[:, :, :-1]
        return self.activation(x).transpose(1, 2)


# --------------------------------------------------------------------------- transformer layers


class Attention(nn.Module):
    """Bidirectional multi-head self-attention, softmax(q k^T / sqrt(d)) v, with no mask."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.scale = (d // self.heads) ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, D)
        b, m, _ = x.shape
        q, k, v = (proj(x).view(b, m, self.heads, -1).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, scale=self.scale, is_causal=False)
        return self.out_proj(out.transpose(1, 2).contiguous().reshape(b, m, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.activation = ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(self.activation(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Post-LN (wav2vec2-base): x = LN(x + attn(x)); x = LN'(x + ff(x)).
    Pre-LN (stable layer norm): x = x + attn(LN(x)); x = x + ff(LN'(x))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.pre_norm = cfg.do_stable_layer_norm
        self.attention = Attention(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.attention(self.layer_norm(x))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    """Positional embedding, then the layers; the LayerNorm comes first (post-LN) or last (pre-LN)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.pre_norm = cfg.do_stable_layer_norm
        self.pos_conv_embed = PositionalConvEmbedding(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x: torch.Tensor, output_hidden_states: bool = False) -> Wav2Vec2Output:
        x = x + self.pos_conv_embed(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        # As transformers 5 records them: the first layer's input and each layer's output, so with
        # pre-LN the last entry is before the final LayerNorm.
        if self.pre_norm:
            x = self.layer_norm(x)
        return Wav2Vec2Output(x, tuple(states) if output_hidden_states else None)


# --------------------------------------------------------------------------- models


class Wav2Vec2(nn.Module):
    """transformers' Wav2Vec2Model for inference: samples (B, S) -> hidden states (B, M, D)."""

    def __init__(self, cfg: EncoderConfig, masked_spec_embed: bool = False) -> None:
        super().__init__()
        self.config = cfg
        self.source = ""  # the folder it was loaded from: save_pretrained copies its config.json
        self.feature_extractor = FeatureEncoder(cfg)
        self.feature_projection = FeatureProjection(cfg)
        if masked_spec_embed:  # SpecAugment's mask vector: training only, kept so state_dict() matches
            self.masked_spec_embed = nn.Parameter(torch.empty(cfg.hidden_size))
        self.encoder = Encoder(cfg)

    def forward(self, samples: torch.Tensor, output_hidden_states: bool = False) -> Wav2Vec2Output:
        features = self.feature_extractor(samples).transpose(1, 2)
        return self.encoder(self.feature_projection(features), output_hidden_states)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json and model.safetensors as transformers would (training copies encoders
        into a bundle this way)."""
        _save(self, folder, "Wav2Vec2Model")


class Wav2Vec2Classifier(nn.Module):
    """transformers' Wav2Vec2ForSequenceClassification, parts only: the caller pools (see
    core/encoders.py). logits = classifier(mean over time of projector(hidden))."""

    def __init__(self, cfg: EncoderConfig, masked_spec_embed: bool = False) -> None:
        super().__init__()
        self.config = cfg
        self.source = ""
        self.wav2vec2 = Wav2Vec2(cfg, masked_spec_embed)
        if cfg.use_weighted_layer_sum:  # softmax-weighted sum of all hidden states instead of the last
            self.layer_weights = nn.Parameter(torch.empty(cfg.num_hidden_layers + 1))
        self.projector = nn.Linear(cfg.hidden_size, cfg.classifier_proj_size)
        self.classifier = nn.Linear(cfg.classifier_proj_size, len(cfg.id2label))

    @property
    def base_model(self) -> Wav2Vec2:
        return self.wav2vec2

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json and model.safetensors as transformers would (see Wav2Vec2)."""
        _save(self, folder, "Wav2Vec2ForSequenceClassification")


# --------------------------------------------------------------------------- loading

# Tensors of other wav2vec2 heads (CTC, pre-training) that transformers drops when it loads the backbone.
IGNORED_PREFIXES = ("lm_head.", "quantizer.", "project_q.", "project_hid.")
# Older checkpoints name the weight-norm parts as torch.nn.utils.weight_norm did.
LEGACY_NAMES = {"pos_conv_embed.conv.weight_g": "pos_conv_embed.conv.parametrizations.weight.original0",
                "pos_conv_embed.conv.weight_v": "pos_conv_embed.conv.parametrizations.weight.original1"}


def load_model(folder: str | Path) -> Wav2Vec2:
    """The backbone of a save_pretrained folder (a Wav2Vec2Model, or the `wav2vec2.` part of a CTC or
    pre-training checkpoint), float32, eval mode, frozen."""
    cfg, weights = _read(folder)
    if any(name.startswith("wav2vec2.") for name in weights):
        weights = {name.removeprefix("wav2vec2."): t for name, t in weights.items()}  # a head left over is unexpected
    return _build(Wav2Vec2, cfg, weights, "", folder)


def load_classifier(folder: str | Path) -> Wav2Vec2Classifier:
    """A Wav2Vec2ForSequenceClassification folder, float32, eval mode, frozen."""
    cfg, weights = _read(folder)
    return _build(Wav2Vec2Classifier, cfg, weights, "wav2vec2.", folder)


def _read(folder: str | Path) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise Unsupported(f"{folder} has no model.safetensors")
    try:
        cfg = EncoderConfig.from_json(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        weights = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError, TypeError, AttributeError, SafetensorError) as exc:
        raise Unsupported(f"cannot read {folder}: {exc}") from None
    for old, new in LEGACY_NAMES.items():
        for name in [n for n in weights if n.endswith(old)]:
            weights[name.removesuffix(old) + new] = weights.pop(name)
    return cfg, {name: t for name, t in weights.items() if not name.startswith(IGNORED_PREFIXES)}


def _build(model_class, cfg: EncoderConfig, weights: dict[str, torch.Tensor], prefix: str, folder) -> nn.Module:
    """Build the model on the meta device (no random init), then adopt the file's tensors as float32."""
    mask = prefix + "masked_spec_embed"
    has_mask = mask in weights and (cfg.mask_time_prob > 0 or cfg.mask_feature_prob > 0)
    weights = {name: t for name, t in weights.items() if name != mask or has_mask}
    with torch.device("meta"):
        model = model_class(cfg, has_mask)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if expected.keys() != weights.keys():
        unexpected, missing = sorted(weights.keys() - expected.keys()), sorted(expected.keys() - weights.keys())
        raise Unsupported(f"{folder}: unexpected tensors {unexpected[:3]}, missing {missing[:3]}")
    wrong = [name for name, shape in expected.items() if tuple(weights[name].shape) != shape]
    if wrong:
        raise Unsupported(f"{folder}: tensor shapes differ from config.json for {wrong[:3]}")
    model.load_state_dict({name: _float32(t) for name, t in weights.items()}, strict=True, assign=True)
    for module in model.modules():
        if isinstance(module, WeightNormConv):
            module.refresh_weight()
    model.eval().requires_grad_(False)
    model.source = str(folder)
    return model


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    """float32 tensors as they are (mapped from the file, as transformers leaves them); float16
    widened through numpy, on one thread: torch's casts of a hundred small tensors each wait for
    its OpenMP workers, 0.3 s per demo encoder on a busy 2-core CPU."""
    if tensor.dtype == torch.float16:
        return torch.from_numpy(tensor.numpy().astype(np.float32))
    return tensor.float()


def _save(model: nn.Module, folder: str | Path, architecture: str) -> None:
    """config.json (the source's, as float32 `architecture`) and the float32 state_dict as model.safetensors."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads((Path(model.source) / "config.json").read_text(encoding="utf-8"))
    data.update(architectures=[architecture], dtype="float32")
    (folder / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    state = {name: t.contiguous() for name, t in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
