"""FaceFormer's reference `predict`, timed on the same audio as our own figures (nothing downloaded).

FaceFormer (EvelynFan/FaceFormer) is not part of this repository: the bench takes the folder that
holds its `faceformer.py` and `wav2vec.py`, and imports them from there (by file, under private
module names, so that this file, itself importable as `faceformer`, is never confused with them).
The model is built as FaceFormer's demo.py/main.py build it for BIWI: dataset "BIWI",
vertice_dim 23370*3, feature_dim 128, period 25, the 6 BIWI training subjects
("F2 F3 F4 M3 M4 M5", so the one-hot has 6 entries), random weights (no biwi.pth: timing only).
Its `from_pretrained("facebook/wav2vec2-base-960h")` loads from a local wav2vec2-base-sized
folder written by transformers' save_pretrained instead (for instance the context encoder of our
paper-size bundle, `<bundle>/encoders/context`). The audio is read as demo.py reads it: librosa
at 16 kHz, then the wav2vec2 feature extractor's normalisation (a Wav2Vec2FeatureExtractor with
do_normalize, built here with wav2vec2-base-960h's settings, not downloaded). What is timed is the
whole `model.predict(audio_feature, template, one_hot)` call under torch.no_grad, as demo.py calls
it; importing FaceFormer's files and building the model (including loading the wav2vec2 weights)
is timed separately as build_s.

Compatibility shims, applied here at import time; FaceFormer's files are not edited:
  1. The hub id: the `from_pretrained` of FaceFormer's own Wav2Vec2Model subclass (and only that
     class) is wrapped so that "facebook/wav2vec2-base-960h" resolves to the local folder.
  2. Eager attention: FaceFormer's wav2vec.py `forward` sets `self.config.output_attentions = True`
     on every call. transformers 5.x loads wav2vec2 with SDPA attention by default, and its config
     then refuses that assignment (ValueError: output_attentions is not supported with sdpa). The
     encoder is therefore loaded with attn_implementation="eager", which is the attention the
     transformers 4.x of FaceFormer's time ran.
  3. The feature projection: wav2vec.py does `hidden_states = self.feature_projection(hidden_states)`
     as in the early transformers 4.x code it copied; later releases (5.x included) make
     Wav2Vec2FeatureProjection return a pair (projected, layer-normed unprojected), so the encoder
     then gets a tuple (AttributeError: 'tuple' object has no attribute 'shape'). The loaded
     encoder's feature_projection is wrapped to return the first element, the projected states,
     which is what the old code returned. Same computation; nothing else in wav2vec.py is changed.
Under transformers 5.x the encoder's attentions are no longer returned through
`encoder(..., output_attentions=True)` (the flag is passed on and ignored), so FaceFormer's
`.attentions` output is None; `predict` only reads `last_hidden_state`, which is unaffected.

Usage: python bench/faceformer.py --source DIR --audio WAV --wav2vec2 DIR [--device cpu] [--repeat 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

HUB_ID = "facebook/wav2vec2-base-960h"
# FaceFormer's demo.py defaults for BIWI.
BIWI_ARGS = {
    "dataset": "BIWI",
    "vertice_dim": 23370 * 3,
    "feature_dim": 128,
    "period": 25,
    "train_subjects": "F2 F3 F4 M3 M4 M5",
    "condition": "M3",
}


def _load_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_faceformer(source: Path, wav2vec2: Path) -> ModuleType:
    """FaceFormer's faceformer.py (with its wav2vec.py as the `wav2vec` it imports), shims applied."""
    source = Path(source)
    for name in ("faceformer.py", "wav2vec.py"):
        if not (source / name).is_file():
            raise FileNotFoundError(f"FaceFormer's {name} is not in {source}")
    if not (Path(wav2vec2) / "config.json").is_file():
        raise FileNotFoundError(f"no wav2vec2 model (config.json) in {wav2vec2}")

    # faceformer.py does `from wav2vec import Wav2Vec2Model`: give it FaceFormer's wav2vec.py under
    # that name while it is imported, then put back whatever was there.
    saved = sys.modules.get("wav2vec")
    try:
        wav2vec = _load_file("wav2vec", source / "wav2vec.py")
        encoder_cls = wav2vec.Wav2Vec2Model
        original = encoder_cls.from_pretrained  # bound to FaceFormer's subclass

        def from_pretrained(cls, name, *args, **kwargs):
            # Shim 1: the hub id -> the local folder. Shim 2: eager attention. Shim 3: the
            # feature projection's single output (see the module docstring).
            if str(name) == HUB_ID:
                name = str(wav2vec2)
            kwargs.setdefault("attn_implementation", "eager")
            model = original(name, *args, **kwargs)
            project = model.feature_projection.forward
            model.feature_projection.forward = lambda hidden_states: project(hidden_states)[0]
            return model

        encoder_cls.from_pretrained = classmethod(from_pretrained)
        module = _load_file("_faceformer_reference", source / "faceformer.py")
    finally:
        if saved is None:
            sys.modules.pop("wav2vec", None)
        else:
            sys.modules["wav2vec"] = saved
    return module


def _audio_feature(audio: Path):
    """demo.py's input: librosa at 16 kHz, then the wav2vec2 processor's zero-mean unit-variance normalisation."""
    import librosa
    import numpy as np
    from transformers import Wav2Vec2FeatureExtractor

    speech_array, _ = librosa.load(str(audio), sr=16000)
    # wav2vec2-base-960h's preprocessor_config.json, built here instead of downloaded.
    processor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False)
    audio_feature = np.squeeze(processor(speech_array, sampling_rate=16000).input_values)
    return np.reshape(audio_feature, (-1, audio_feature.shape[0])), len(speech_array) / 16000


def time_faceformer_predict(source: Path, audio: Path, wav2vec2: Path, device: str = "cpu", repeat: int = 1) -> dict:
    """Median seconds of FaceFormer's whole `predict` (BIWI settings, random weights) on `audio`.

    Returns {"predict_s", "build_s", "frames"} and, for the record, "predict_runs" (every run),
    "predict_cpu_s" (median process CPU time of a run, all threads: less sensitive to a shared CPU),
    "prep_s" (reading and normalising the audio), "audio_s" and "transformers_preloaded"
    (whether transformers was already imported, which build_s then does not include).
    """
    transformers_preloaded = "transformers" in sys.modules
    import numpy as np
    import torch

    t0 = time.perf_counter()
    module = _import_faceformer(source, wav2vec2)
    args = SimpleNamespace(**BIWI_ARGS, device=device)
    model = module.Faceformer(args)
    model = model.to(torch.device(device))
    model.eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    build_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    feature, audio_s = _audio_feature(audio)
    audio_feature = torch.FloatTensor(feature).to(device=device)
    prep_s = time.perf_counter() - t0

    subjects = args.train_subjects.split(" ")
    one_hot = np.eye(len(subjects))[subjects.index(args.condition)].reshape(1, -1)
    one_hot = torch.FloatTensor(one_hot).to(device=device)
    # A subject template (random here: it is only added to the output) of BIWI's size.
    rng = np.random.default_rng(0)
    template = torch.FloatTensor(0.1 * rng.standard_normal((1, args.vertice_dim))).to(device=device)

    runs, cpu, frames = [], [], 0
    with torch.no_grad():
        for _ in range(max(1, repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            prediction = model.predict(audio_feature, template, one_hot)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            frames = int(prediction.shape[1])
    return {
        "predict_s": statistics.median(runs),
        "build_s": build_s,
        "frames": frames,
        "predict_runs": runs,
        "predict_cpu_s": statistics.median(cpu),
        "prep_s": prep_s,
        "audio_s": audio_s,
        "transformers_preloaded": transformers_preloaded,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with FaceFormer's faceformer.py and wav2vec.py")
    parser.add_argument("--audio", type=Path, required=True, help="speech .wav (read at 16 kHz)")
    parser.add_argument("--wav2vec2", type=Path, required=True, help="local wav2vec2-base-sized model folder (save_pretrained), e.g. <paper bundle>/encoders/context")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import torch

    found = time_faceformer_predict(args.source, args.audio, args.wav2vec2, args.device, args.repeat)
    runs = ", ".join(f"{t:.2f}" for t in found["predict_runs"])
    print(f"FaceFormer (BIWI settings, random weights), device {args.device}, {torch.get_num_threads()} torch threads")
    print(f"  audio {found['audio_s']:.2f} s -> {found['frames']} frames")
    print(f"  import + build: {found['build_s']:.2f} s (transformers already imported: {found['transformers_preloaded']})")
    print(f"  audio read + normalised: {found['prep_s']:.2f} s")
    print(f"  predict: {found['predict_s']:.2f} s median (runs {runs}); {found['frames'] / found['predict_s']:.1f} frames/s; "
          f"process CPU time {found['predict_cpu_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
