"""Model bundles: round trip, encoder sources, and every way a bundle folder can be wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from talking_head.core.bundle import ModelBundle
from talking_head.core.encoders import ContextEncoder, EmotionEncoder
from talking_head.core.errors import BundleError, SubjectError
from talking_head.training.tiny import make_tiny_bundle, save_random_encoders


def test_round_trip_is_bit_exact(tmp_path, tiny_bundle_dir):
    bundle = ModelBundle.load(tiny_bundle_dir)
    bundle.save(tmp_path / "copy")
    again = ModelBundle.load(tmp_path / "copy")
    first, second = bundle.model.state_dict(), again.model.state_dict()
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert np.array_equal(bundle.template.vertices, again.template.vertices)
    assert np.array_equal(bundle.template.faces, again.template.faces)
    assert again.config == bundle.config


def test_config_records_what_the_issue_asks(tiny_bundle_dir):
    config = json.loads((tiny_bundle_dir / "config.json").read_text())
    for key in ("n_vertices", "subjects", "fps", "pivot", "context_encoder", "emotion_encoder", "trained", "d_model", "n_layers"):
        assert key in config
    assert config["trained"] is False and "UNTRAINED" in config["description"]


def test_half_precision_weights_load_as_float32(tmp_path, tiny_bundle_dir):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "half"
    shutil.copytree(tiny_bundle_dir, out)
    state = load_file(str(out / "model.safetensors"))
    save_file({k: v.half() for k, v in state.items()}, str(out / "model.safetensors"))
    bundle = ModelBundle.load(out)
    weight = bundle.model.neutral.viseme_out.weight
    assert weight.dtype == torch.float32
    assert torch.equal(weight, state["neutral.viseme_out.weight"].half().float())


def test_encoders_saved_with_save_pretrained_load_like_a_hub_id(tmp_path, monkeypatch):
    """A bundle may name a hub id; ids go through from_pretrained, a folder loads in plain torch
    (core/wav2vec2.py), and both give the same features."""
    from transformers import AutoModelForAudioClassification, Wav2Vec2Model

    context_dir, emotion_dir = save_random_encoders(tmp_path / "enc", "tiny")
    hub = {"facebook/wav2vec2-base-960h": context_dir, "someone/wav2vec2-emotion": emotion_dir}
    seen = []
    for cls in (Wav2Vec2Model, AutoModelForAudioClassification):
        original = cls.from_pretrained.__func__

        def fake(klass, source, *args, _original=original, **kwargs):
            seen.append(source)
            return _original(klass, hub.get(source, source), *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(fake))
    by_id = ContextEncoder("facebook/wav2vec2-base-960h")
    by_folder = ContextEncoder(str(context_dir))
    emotion = EmotionEncoder("someone/wav2vec2-emotion")
    assert seen == ["facebook/wav2vec2-base-960h", "someone/wav2vec2-emotion"]
    assert (by_id.backend, by_folder.backend, emotion.backend) == ("transformers", "torch", "transformers")
    audio = np.random.default_rng(0).standard_normal(16_000).astype(np.float32)
    assert torch.equal(by_id.encode(audio), by_folder.encode(audio))
    features = emotion.encode(audio)
    assert features.hidden.shape == (49, 32) and features.logits.shape == (49, 5)
    assert features.labels == ["neutral", "happy", "sad", "angry", "surprised"]


def test_bundle_can_point_at_encoders_outside_itself(tmp_path):
    context_dir, emotion_dir = save_random_encoders(tmp_path / "shared_encoders", "tiny")
    bundle = make_tiny_bundle(tmp_path / "b", n_vertices=50)
    bundle.config.context_encoder, bundle.config.emotion_encoder = str(context_dir), str(emotion_dir)
    bundle.save(tmp_path / "b2")
    loaded = ModelBundle.load(tmp_path / "b2")
    context, emotion = loaded.load_encoders()
    assert context.dim == 32 and emotion.labels[0] == "neutral"


def test_windowed_encoding_matches_whole_clip_inside_windows(tmp_path):
    context_dir, _ = save_random_encoders(tmp_path / "enc", "tiny")
    whole = ContextEncoder(str(context_dir), window_s=100.0)
    windowed = ContextEncoder(str(context_dir), window_s=1.0, context_s=0.5)
    audio = np.random.default_rng(1).standard_normal(16_000 * 4).astype(np.float32)
    a, b = whole.encode(audio), windowed.encode(audio)
    assert a.shape == b.shape == (199, 32)
    assert not torch.allclose(a, b)  # windows see less context ...
    assert (a - b).abs().mean() < a.abs().mean()  # ... but stay close to the whole-clip features


def _broken(tmp_path, tiny_bundle_dir, change):
    out = tmp_path / "broken"
    shutil.copytree(tiny_bundle_dir, out)
    change(out)
    return out


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda b: (b / "model.safetensors").unlink(), "missing model.safetensors"),
        (lambda b: (b / "config.json").unlink(), "missing config.json"),
        (lambda b: (b / "template.ply").unlink(), "missing template.ply"),
        (lambda b: (b / "model.safetensors").write_bytes(b"\x00garbage" * 10), "corrupt"),
        (lambda b: (b / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes()[:5000]), "corrupt"),
        (lambda b: (b / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda b: _edit_config(b, n_vertices=201), "vertices"),
        (lambda b: _edit_config(b, context_encoder="encoders/nowhere-to-be-found"), "cannot load the context encoder"),
    ],
    ids=["no-weights", "no-config", "no-template", "garbage-weights", "truncated-weights", "bad-json", "vertex-count", "no-encoder"],
)
def test_bad_bundles_get_one_line_errors(tmp_path, tiny_bundle_dir, change, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = _broken(tmp_path, tiny_bundle_dir, change)
    with pytest.raises(BundleError) as info:
        ModelBundle.load(path).load_encoders()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_template_with_wrong_vertex_count(tmp_path, tiny_bundle_dir):
    from talking_head.core.mesh_io import write_mesh
    from talking_head.training.tiny import sphere_mesh

    mesh = sphere_mesh(150)
    path = _broken(tmp_path, tiny_bundle_dir, lambda b: write_mesh(b / "template.ply", mesh.vertices, mesh.faces))
    with pytest.raises(BundleError, match="150 vertices but config.json says 200"):
        ModelBundle.load(path)


def test_unknown_subject(tiny_bundle_dir):
    bundle = ModelBundle.load(tiny_bundle_dir)
    with pytest.raises(SubjectError, match="choose one of: F2, F3"):
        bundle.config.subject_index("Q9")


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_loading_without_random_init_gives_the_same_model(tiny_bundle_dir):
    """ModelBundle.load makes the layers without drawing random weights, then loads the saved
    ones; the result (sinusoidal positions included, which the file does not hold) is the model
    built the ordinary way and loaded, output for output, and the initialisers work again after."""
    from talking_head.core.model import TalkingHeadModel

    bundle = ModelBundle.load(tiny_bundle_dir)
    ordinary = TalkingHeadModel(bundle.config)
    ordinary.load_state_dict(bundle.model.state_dict())
    ordinary.eval()
    for (name, a), b in zip(bundle.model.named_buffers(), ordinary.buffers()):
        assert torch.equal(a, b), name
    assert torch.nn.init.normal_(torch.zeros(1000)).std() > 0.5  # initialisers restored
    cfg = bundle.config
    context, emotion = torch.randn(1, 2 * 30, cfg.context_dim), torch.randn(1, 2 * 30, cfg.emotion_dim)
    noise = torch.randn(1, 2 * 30, cfg.d_model)
    first = bundle.model.generate(context, emotion, torch.tensor([0]), noise=noise)
    second = ordinary.generate(context, emotion, torch.tensor([0]), noise=noise)
    for a, b in zip((first.neutral, first.emotional, first.rotation), (second.neutral, second.emotional, second.rotation)):
        assert torch.equal(a, b)


def test_packing_keeps_the_content_encoders_ctc_head(tmp_path, tiny_bundle_dir):
    """`bundle pack` writes a CTC content encoder with its head (`lm_head`), in float16, so
    `encoders decode` still works on the packed bundle's encoder."""
    from safetensors import safe_open

    from talking_head.core.bundle import pack_bundle

    packed = pack_bundle(tiny_bundle_dir, tmp_path / "packed")
    with safe_open(str(packed.path / "encoders" / "context" / "model.safetensors"), framework="pt") as f:
        heads = [name for name in f.keys() if name.startswith("lm_head.")]
        assert heads and all(f.get_tensor(name).dtype == torch.float16 for name in heads)
