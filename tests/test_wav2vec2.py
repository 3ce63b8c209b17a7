"""The plain-torch wav2vec2 (core/wav2vec2.py) against transformers, the reference.

Small random encoders are written with transformers' save_pretrained, then encoded both ways: the
fast path must give transformers' numbers, fall back to transformers for what it does not
implement, and load without importing transformers at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talking_head.core import encoders, wav2vec2
from talking_head.core.encoders import ContextEncoder, EmotionEncoder

ROOT = Path(__file__).resolve().parents[1]
DEMO_ENCODERS = ROOT / "weights" / "demo" / "encoders"
LABELS = ["neutral", "happy", "sad", "angry", "surprised"]
# Both paths run the same torch kernels in the same order (bit-exact here); the bound leaves room
# for other builds to order a reduction differently.
TOLERANCE = 1e-4


def tiny_config(**changes):
    """A few-thousand-parameter wav2vec2 (hidden 32, 2 layers) with the usual 400/320 conv front end."""
    from transformers import Wav2Vec2Config

    settings = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=8,
                    id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    settings.update(changes)
    return Wav2Vec2Config(**settings)


def save(folder: Path, model_class: str, half: bool = False, seed: int = 0, **changes) -> Path:
    import transformers

    from talking_head.core.encoders import quiet_transformers

    quiet_transformers()
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(tiny_config(**changes))
    if "layer_weights" in dict(model.named_parameters()):  # not the uniform start, so the weights matter
        model.layer_weights.data = torch.randn_like(model.layer_weights)
    (model.half() if half else model).save_pretrained(folder)
    return folder


def with_transformers(monkeypatch, encoder_class, folder: Path, **kwargs):
    """The same encoder loaded the old way, through transformers' from_pretrained."""
    with monkeypatch.context() as patch:
        patch.setattr(encoders, "load_plain", lambda loader, source: None)
        encoder = encoder_class(str(folder), **kwargs)
    assert encoder.backend == "transformers"
    return encoder


def audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)


def assert_close(fast: torch.Tensor, reference: torch.Tensor, tolerance: float = TOLERANCE) -> None:
    assert fast.shape == reference.shape
    assert (fast - reference).abs().max().item() <= tolerance


VARIANTS = {
    # wav2vec2-base: GroupNorm on the first conv, post-LN layers, no conv bias
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    # large-lv60: LayerNorm after every conv, pre-LN layers, conv bias; odd positional kernel
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=15),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("model_class", ["Wav2Vec2Model", "Wav2Vec2ForCTC"])
def test_backbone_matches_transformers_layer_by_layer(tmp_path, variant, model_class):
    """Every hidden state transformers records, with a three-conv front end and gelu_new / relu."""
    from transformers import Wav2Vec2Model

    act = "gelu_new" if variant == "base" else "relu"
    folder = save(tmp_path / "enc", model_class, hidden_act=act, conv_dim=(16,) * 3, conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2))
    fast = wav2vec2.load_model(folder)
    reference = Wav2Vec2Model.from_pretrained(folder).eval()
    samples = torch.from_numpy(audio(0.5))[None]
    with torch.no_grad():
        a, b = fast(samples, output_hidden_states=True), reference(samples, output_hidden_states=True)
    assert_close(a.last_hidden_state, b.last_hidden_state)
    assert len(a.hidden_states) == len(b.hidden_states) == 3
    for mine, theirs in zip(a.hidden_states, b.hidden_states):
        assert_close(mine, theirs)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("weighted", [False, True], ids=["last-layer", "weighted-layer-sum"])
def test_encoders_match_transformers(tmp_path, monkeypatch, variant, weighted):
    """ContextEncoder and EmotionEncoder, float16 weights on disk, an odd length and a clip long
    enough for three windows."""
    context_dir = save(tmp_path / "context", "Wav2Vec2ForCTC", half=True, **VARIANTS[variant])
    emotion_dir = save(tmp_path / "emotion", "Wav2Vec2ForSequenceClassification", half=True, seed=1,
                       use_weighted_layer_sum=weighted, **VARIANTS[variant])
    windows = dict(window_s=1.0, context_s=0.5)
    for samples in (audio(0.75)[:12_001], audio(2.6, seed=1)):
        fast = ContextEncoder(str(context_dir), **windows)
        assert fast.backend == "torch"
        assert_close(fast.encode(samples), with_transformers(monkeypatch, ContextEncoder, context_dir, **windows).encode(samples))

        fast = EmotionEncoder(str(emotion_dir), **windows)
        reference = with_transformers(monkeypatch, EmotionEncoder, emotion_dir, **windows)
        assert fast.backend == "torch" and fast.labels == reference.labels == LABELS and fast.dim == reference.dim == 32
        mine, theirs = fast.encode(samples), reference.encode(samples)
        assert_close(mine.hidden, theirs.hidden)
        assert_close(mine.logits, theirs.logits)


def test_bf16_autocast_matches_transformers(tmp_path, monkeypatch):
    """precision="bf16" runs the same ops under the same autocast, so the numbers agree too."""
    folder = save(tmp_path / "emotion", "Wav2Vec2ForSequenceClassification", use_weighted_layer_sum=True)
    samples = audio(1.3)
    mine = EmotionEncoder(str(folder), precision="bf16").encode(samples)
    theirs = with_transformers(monkeypatch, EmotionEncoder, folder, precision="bf16").encode(samples)
    fp32 = EmotionEncoder(str(folder)).encode(samples)
    assert not torch.equal(mine.hidden, fp32.hidden)  # autocast did run in bf16
    assert_close(mine.hidden, theirs.hidden)
    assert_close(mine.logits, theirs.logits)


def test_state_dict_and_save_pretrained_match_transformers(tmp_path, monkeypatch):
    """Same tensor names and values, so the training feature cache keeps its key; a re-save loads in
    transformers. Older checkpoints' weight_g / weight_v names are read too."""
    from safetensors.torch import load_file, save_file
    from transformers import Wav2Vec2Model

    from talking_head.training.features import encoder_key

    context_dir = save(tmp_path / "context", "Wav2Vec2ForCTC", half=True)
    emotion_dir = save(tmp_path / "emotion", "Wav2Vec2ForSequenceClassification", use_weighted_layer_sum=True)
    fast = ContextEncoder(str(context_dir)), EmotionEncoder(str(emotion_dir))
    reference = with_transformers(monkeypatch, ContextEncoder, context_dir), with_transformers(monkeypatch, EmotionEncoder, emotion_dir)
    assert encoder_key(*fast) == encoder_key(*reference)
    for mine, theirs in zip(fast, reference):
        assert sum(p.numel() for p in mine.model.parameters()) == sum(p.numel() for p in theirs.model.parameters())

    fast[0].model.save_pretrained(tmp_path / "copy")
    again = Wav2Vec2Model.from_pretrained(tmp_path / "copy")
    expected = reference[0].model.state_dict()
    assert again.state_dict().keys() == expected.keys()
    assert all(torch.equal(again.state_dict()[name], expected[name]) for name in expected)

    weights = load_file(str(context_dir / "model.safetensors"))
    prefix = "wav2vec2.encoder.pos_conv_embed.conv."
    weights[prefix + "weight_g"] = weights.pop(prefix + "parametrizations.weight.original0")
    weights[prefix + "weight_v"] = weights.pop(prefix + "parametrizations.weight.original1")
    save_file(weights, str(context_dir / "model.safetensors"), metadata={"format": "pt"})
    legacy = ContextEncoder(str(context_dir))
    assert legacy.backend == "torch"
    assert torch.equal(legacy.encode(audio(1.0)), fast[0].encode(audio(1.0)))


def _add_tensor(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    weights["adapter.extra"] = torch.zeros(3)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _drop_weights(folder: Path) -> None:
    # What transformers writes without safetensors: torch's pickle format, which only it reads here.
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


@pytest.mark.parametrize(
    "changes,edit",
    [
        (dict(add_adapter=True, num_adapter_layers=1, output_hidden_size=32), None),
        (dict(hidden_act="silu"), None),
        ({}, _add_tensor),
        ({}, _drop_weights),
    ],
    ids=["adapter", "activation", "unknown-tensor", "pytorch-bin"],
)
def test_what_it_does_not_implement_falls_back_to_transformers(tmp_path, changes, edit):
    from transformers import Wav2Vec2Model

    folder = save(tmp_path / "context", "Wav2Vec2Model", **changes)
    if edit:
        edit(folder)
    with pytest.raises(wav2vec2.Unsupported):
        wav2vec2.load_model(folder)
    encoder = ContextEncoder(str(folder))
    assert encoder.backend == "transformers" and isinstance(encoder.model, Wav2Vec2Model)
    features = encoder.encode(audio(1.0))
    assert features.ndim == 2 and features.shape[1] == 32 and torch.isfinite(features).all()


def test_other_model_types_are_refused(tmp_path):
    """A HuBERT folder has nearly the same tensor names but another model: left to transformers."""
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(**{k: v for k, v in tiny_config().to_dict().items() if k in HubertConfig().to_dict() and k != "model_type"})
    HubertModel(config).save_pretrained(tmp_path / "hubert")
    with pytest.raises(wav2vec2.Unsupported, match="model_type"):
        wav2vec2.load_model(tmp_path / "hubert")


def test_loading_and_encoding_never_import_transformers(tmp_path):
    """The point of core/wav2vec2.py: a local folder loads and encodes without transformers, nor the
    torch._dynamo and sympy it would pull in (nor would meta-device ops that fall back to Python)."""
    context_dir = save(tmp_path / "context", "Wav2Vec2ForCTC", half=True)
    emotion_dir = save(tmp_path / "emotion", "Wav2Vec2ForSequenceClassification", use_weighted_layer_sum=True)
    script = f"""
import sys
import numpy as np
from talking_head.core.encoders import ContextEncoder, EmotionEncoder
samples = np.zeros(20_000, np.float32)
context, emotion = ContextEncoder({str(context_dir)!r}), EmotionEncoder({str(emotion_dir)!r})
assert context.backend == emotion.backend == "torch", (context.backend, emotion.backend)
assert context.encode(samples).shape == (62, 32) and emotion.encode(samples).logits.shape == (62, 5)
for heavy in ("transformers", "torch._dynamo", "sympy"):
    assert heavy not in sys.modules, heavy + " was imported"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(not (DEMO_ENCODERS / "context" / "config.json").is_file(), reason="demo bundle not present")
def test_demo_bundle_encoders_match_transformers(monkeypatch):
    """The shipped encoders (float16, pre-LN, LayerNorm convs) on four seconds of the demo clip."""
    from talking_head.core.audio import load_audio

    samples = load_audio(ROOT / "samples" / "demo_speech.wav")[: 4 * 16_000]
    context, emotion = ContextEncoder(str(DEMO_ENCODERS / "context")), EmotionEncoder(str(DEMO_ENCODERS / "emotion"))
    assert context.backend == emotion.backend == "torch"
    assert_close(context.encode(samples), with_transformers(monkeypatch, ContextEncoder, DEMO_ENCODERS / "context").encode(samples))
    mine = emotion.encode(samples)
    theirs = with_transformers(monkeypatch, EmotionEncoder, DEMO_ENCODERS / "emotion").encode(samples)
    assert_close(mine.hidden, theirs.hidden)
    assert_close(mine.logits, theirs.logits)
    assert json.loads((DEMO_ENCODERS / "context" / "config.json").read_text())["dtype"] == "float16"
