"""The whole model of METHOD.md sections 1-7: Gn, Ge, Gh and their composition.

Faces are handled as displacements from the template T, flattened to 3V numbers per frame.
Each generator runs three ways on the same weights:

* `forward` (teacher forcing): all frames in parallel from ground-truth previous frames;
* `generate`: autoregressive and incremental. Because nothing non-linear sits between a
  decoder's output layer (d -> 3V) and the next query's input layer (3V -> d), their product
  is a d x d matrix: the loop runs in the 128-d latent space with cached keys/values, and the
  3V-sized faces are decoded once at the end in one matrix product. On CUDA the per-frame step
  is a fixed-shape one (`Stepping`) captured in a CUDA graph: unmeasured, made without a GPU;
* the naive reference, `generate_reference` in tests/reference_decoder.py: autoregressive,
  recomputing every window in vertex space (slow, the plain reading of the paper, kept only
  for the tests to compare `generate` against).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .rotation import rotation_from_6d
from .transformer import Decoder, capture_cuda_graph, window_start

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)
GRAPH_TOLERANCE = 1e-4  # the captured step's first output against the eager one's


@dataclass(frozen=True)
class Stepping:
    """How the generators decode a frame after a window's first: `static` with fixed shapes
    (`Decoder.step_static`), and then, with `capture`, captured once per generator and replayed
    (`capture_cuda_graph` on CUDA). The default is the exact growing cache (`Decoder.step`)."""

    static: bool = False
    capture: Callable[[Callable[[], torch.Tensor]], tuple[object, torch.Tensor]] | None = None

    @classmethod
    def choose(cls, device: torch.device, static: bool | None, cuda_graph: bool | None) -> "Stepping":
        """`cuda_graph` None: off (the captured path has not been run on a GPU yet; it is opted into
        with True, on CUDA only); `static` None: as the graph (which needs it)."""
        cuda = device.type == "cuda"
        if cuda_graph is None:
            cuda_graph = False
        if cuda_graph and not cuda:
            raise ValueError(f"cuda_graph needs a CUDA device, not {device.type}")
        if static is None:
            static = cuda_graph
        if cuda_graph and not static:
            raise ValueError("cuda_graph captures the static step: static=False cannot have it")
        return cls(static=static, capture=capture_cuda_graph if cuda_graph else None)


def interpolate_frames(features: torch.Tensor, length: int) -> torch.Tensor:
    """Linear interpolation along time (B, M, C) -> (B, length, C): METHOD.md's Interp."""
    if features.shape[1] == length:
        return features
    x = F.interpolate(features.transpose(1, 2), size=length, mode="linear", align_corners=True)
    return x.transpose(1, 2)


def _iid_noise(seed: int, first: int, end: int, dim: int, block: int) -> np.ndarray:
    """Frames first .. end - 1 (first >= 0) of the seed's i.i.d. N(0, 1) noise, (end - first, dim)."""
    skip = first // block
    blocks = [np.random.default_rng([seed, b]).standard_normal((block, dim)) for b in range(skip, -(-end // block))]
    return np.concatenate(blocks)[first - skip * block : end - skip * block] if blocks else np.zeros((0, dim))


def noise_kernel(sigma: float) -> np.ndarray:
    """Gaussian taps over +-ceil(3 sigma) steps, scaled so that smoothed unit noise keeps unit variance."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / np.sqrt((taps**2).sum())


def head_noise(seed: int, audio_frames: int, dim: int, block: int = 256, first: int = 0, sigma: float = 0.0) -> torch.Tensor:
    """z ~ N(0, I) per audio-rate frame (METHOD.md section 6), shape (1, audio_frames - first, dim):
    frames first .. audio_frames - 1 (a stream asks for each new chunk's frames).

    Drawn in fixed blocks, each from its own (seed, block) stream, so the noise of a frame
    does not depend on the clip's length or on the device. With `sigma` > 0 the noise is
    smoothed over time (`noise_kernel`) from the same endless sequence, mirrored before frame 0
    and read past the clip's end, so a stream's chunks and the offline take agree exactly.
    """
    if sigma <= 0:
        z = _iid_noise(seed, first, audio_frames, dim, block)
        return torch.from_numpy(z.astype(np.float32)).unsqueeze(0)
    kernel = noise_kernel(sigma)
    radius = len(kernel) // 2
    lo, hi = first - radius, audio_frames + radius
    raw = _iid_noise(seed, 0, max(hi, 1 - lo), dim, block)
    frames = np.concatenate([raw[1 : 1 - lo][::-1], raw[max(lo, 0) : hi]]) if lo < 0 else raw[lo:hi]
    n = audio_frames - first
    z = sum(weight * frames[i : i + n] for i, weight in enumerate(kernel))
    return torch.from_numpy(np.asarray(z, np.float32)).unsqueeze(0)


def draw_noise(batch: int, frames: int, dim: int, sigma: float, device) -> torch.Tensor:
    """Fresh (unseeded) noise for training, smoothed as `head_noise` smooths it, (batch, frames, dim)."""
    if sigma <= 0:
        return torch.randn(batch, frames, dim, device=device)
    kernel = torch.from_numpy(noise_kernel(sigma).astype(np.float32)).to(device)
    raw = torch.randn(batch * dim, 1, frames + len(kernel) - 1, device=device)
    z = torch.nn.functional.conv1d(raw, kernel.view(1, 1, -1))  # (batch * dim, 1, frames)
    return z.view(batch, dim, frames).transpose(1, 2).contiguous()


def _decoder(cfg: ModelConfig) -> Decoder:
    return Decoder(cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.n_layers, cfg.dropout, cfg.max_frames, cfg.k)


def _through(linear_in: nn.Linear, decoder: nn.Linear) -> torch.Tensor:
    """W of h -> linear_in(decoder(h)) without the biases, for latent h: one small (d, d) matrix.
    Each is a (d, 3V) x (3V, d) product (1.2 GMAC at 23,370 vertices): asked for once each."""
    return linear_in.weight @ decoder.weight


def _through_bias(linear_in: nn.Linear, *decoders: nn.Linear) -> torch.Tensor:
    """b of h -> linear_in(sum of decoders(h)) for latent h (the affine map's constant)."""
    return linear_in.weight @ sum(d.bias for d in decoders) + linear_in.bias


class NeutralFaceGenerator(nn.Module):
    """Gn (METHOD.md section 3): what is said, as a neutral face."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, v3 = cfg.d_model, 3 * cfg.n_vertices
        self.audio_in = nn.Linear(cfg.context_dim, d)  # c -> d
        self.subject_in = nn.Linear(len(cfg.subjects), d, bias=False)  # W_id
        self.face_in = nn.Linear(v3, d)  # W_v
        self.decoder = _decoder(cfg)
        self.viseme_out = nn.Linear(d, v3)  # D_n

    def queries(self, previous: torch.Tensor | None, subject: torch.Tensor, frames: int) -> torch.Tensor:
        """q_1 = W_id s; q_t = W_v(yn_{t-1} - T) + W_id s. previous: (B, frames - 1, 3V)."""
        q = self.subject_in(subject).unsqueeze(1).expand(-1, frames, -1)
        if previous is None or frames == 1:
            return q
        return q + F.pad(self.face_in(previous), (0, 0, 1, 0))


class EmotionSynthesizer(nn.Module):
    """Ge (METHOD.md section 5): how it feels, as a residual expression over the neutral face."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, v3 = cfg.d_model, 3 * cfg.n_vertices
        self.audio_in = nn.Linear(cfg.emotion_dim, d)  # e -> d
        self.neutral_in = nn.Linear(v3, d)  # W_n
        self.face_in = nn.Linear(v3, d)  # W_e
        self.person_in = nn.Linear(len(cfg.subjects), d, bias=False)  # W_p: rows are the pivots p_i
        self.decoder = _decoder(cfg)
        self.expression_out = nn.Linear(d, v3)  # D_e

    def queries(self, neutral: torch.Tensor, previous: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
        """q_t = W_n(yn_t - T) + W_e(ye_{t-1} - T) + p with ye_0 = T.

        neutral: (B, T, 3V) this frame's neutral face; previous: (B, T - 1, 3V); person: (B, d).
        """
        shifted = F.pad(previous, (0, 0, 1, 0))
        return self.neutral_in(neutral) + self.face_in(shifted) + person.unsqueeze(1)


class HeadMotionSynthesizer(nn.Module):
    """Gh (METHOD.md section 6): head rotation and translation from the emotional features."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, v3 = cfg.d_model, 3 * cfg.n_vertices
        self.mean = nn.Linear(cfg.emotion_dim, d)  # W_mu
        self.log_variance = nn.Linear(cfg.emotion_dim, d)  # W_sigma
        self.face_in = nn.Linear(v3, d)  # W_f
        self.rotation_in = nn.Linear(9, d)  # W_r
        self.translation_in = nn.Linear(3, d)  # W_tau
        self.decoder = _decoder(cfg)
        self.motion_out = nn.Linear(d, 9)  # 6-D rotation + translation

    def memory(self, emotion: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """ee_j = mu_j + sigma_j * z_j, per audio-rate frame (the reparameterization trick)."""
        sigma = torch.exp(0.5 * self.log_variance(emotion))
        return self.mean(emotion) + sigma * noise

    def queries(self, face: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """q_t = W_f(ye_t - T) + W_r(r_{t-1}) + W_tau(tau_{t-1}), r_0 = I, tau_0 = 0.

        face: (B, T, 3V); rotation: (B, T - 1, 3, 3) and translation (B, T - 1, 3) of the
        frames before.
        """
        b = face.shape[0]
        eye = torch.eye(3, device=face.device, dtype=face.dtype).reshape(1, 1, 9).expand(b, 1, 9)
        r = torch.cat([eye, rotation.reshape(b, -1, 9)], dim=1)
        tau = F.pad(translation, (0, 0, 1, 0))
        return self.face_in(face) + self.rotation_in(r) + self.translation_in(tau)


class ContrastiveHead(nn.Module):
    """The two linear maps and temperature of Lcon (METHOD.md section 7)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.speech = nn.Linear(cfg.context_dim + cfg.emotion_dim, cfg.contrastive_dim)
        self.face = nn.Linear(3 * cfg.n_vertices, cfg.contrastive_dim)
        self.log_inv_temperature = nn.Parameter(torch.tensor(float(np.log(1.0 / cfg.contrastive_temperature))))


@dataclass
class FaceMotion:
    """Model output for a batch of clips, as displacements from the template.

    neutral, emotional: (B, N, 3V); rotation: (B, N, 3, 3); translation: (B, N, 3).
    """

    neutral: torch.Tensor
    emotional: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor


class TalkingHeadModel(nn.Module):
    """Gn -> Ge -> Gh and the composition v_t = R_t (ye_t - P) + P + tau_t."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.neutral = NeutralFaceGenerator(cfg)
        self.emotion = EmotionSynthesizer(cfg) if cfg.use_emotion_stage else None
        self.head = HeadMotionSynthesizer(cfg) if cfg.use_head else None
        self.contrastive = ContrastiveHead(cfg) if cfg.use_contrastive and cfg.use_emotion_stage else None
        self._init_output_layers()

    @classmethod
    def uninitialised(cls, cfg: ModelConfig) -> "TalkingHeadModel":
        """The model's layers without random initial weights, for saved weights to be loaded
        into (`load_state_dict`, strict): drawing them costs 0.3 s for a paper-size bundle.
        torch.nn.init's functions are no-ops while the layers are made (as transformers'
        `no_init_weights`); the meta device would also skip them, but its first use imports
        torch._dynamo and sympy, seconds at start-up. Buffers (sinusoidal positions) are made."""
        with _no_weight_init():
            return cls(cfg)

    def _init_output_layers(self) -> None:
        """Start near the template and a still head (FaceFormer zero-initialises its output map).

        Small random output layers keep an untrained model's faces gentle wobbles around the
        template instead of spikes, and give training a calm start.
        """
        layers = [(self.neutral.viseme_out, 1e-4)]
        if self.emotion is not None:
            layers.append((self.emotion.expression_out, 1e-4))
        if self.head is not None:
            layers.append((self.head.motion_out, 3e-3))
        for layer, std in layers:
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ inputs
    def person_embeddings(self) -> torch.Tensor:
        """The pivots p_1..p_S (S, d): the trained person-specific embeddings."""
        if self.emotion is None:
            raise ValueError("this model has no emotion stage, hence no person embeddings")
        return self.emotion.person_in.weight.t()

    def _subject_onehot(self, subject: torch.Tensor) -> torch.Tensor:
        return F.one_hot(subject, len(self.cfg.subjects)).to(self.neutral.subject_in.weight.dtype)

    def _person(self, subject: torch.Tensor, person: torch.Tensor | None) -> torch.Tensor:
        if person is not None:
            return person
        return self.emotion.person_in(self._subject_onehot(subject))

    # ------------------------------------------------------------------ training
    def forward(
        self,
        context: torch.Tensor,
        emotion: torch.Tensor,
        subject: torch.Tensor,
        target: FaceMotion,
        noise: torch.Tensor | None = None,
        person: torch.Tensor | None = None,
    ) -> FaceMotion:
        """Teacher forcing: every frame at once, previous frames from `target`.

        context (B, kN, Dc), emotion (B, kN, De): encoder features already at kN frames.
        Ge is queried with Gn's *predicted* neutral face, so Le reaches Gn too (the
        single-stage ablation relies on that). Gh sees the predicted emotional face, detached:
        the head losses (Ldiv above all, a 1/D term) train Gh, not the faces.
        """
        frames = target.emotional.shape[1]
        onehot = self._subject_onehot(subject)
        n, e, h = self.neutral, self.emotion, self.head
        if self.cfg.single_stage:
            # No neutral targets to force with: Gn runs on its own outputs, as at inference.
            run = self._run_neutral(context, subject, frames)
            neutral = n.viseme_out(torch.cat(run.neutral_latent, dim=1))
        else:
            previous = target.neutral if e is not None else target.emotional
            q = n.queries(previous[:, :-1], onehot, frames)
            neutral = n.viseme_out(n.decoder(q, n.audio_in(context)))
        if e is None:
            emotional = neutral
        else:
            q = e.queries(neutral, target.emotional[:, :-1], self._person(subject, person))
            emotional = neutral + e.expression_out(e.decoder(q, e.audio_in(emotion)))
        rotation, translation = self._identity_motion(emotional)
        if h is not None:
            if noise is None:
                noise = draw_noise(emotion.shape[0], emotion.shape[1], self.cfg.d_model, self.cfg.head_noise_sigma, emotion.device)
            rotation, translation = self.head_motion(emotion, emotional, target, noise)
        return FaceMotion(neutral, emotional, rotation, translation)

    def head_motion(self, emotion: torch.Tensor, emotional: torch.Tensor, target: FaceMotion, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gh under teacher forcing (also used for the diversity loss's second noise draw)."""
        h = self.head
        q = h.queries(emotional.detach(), target.rotation[:, :-1], target.translation[:, :-1])
        return _decode_motion(h.motion_out(h.decoder(q, h.memory(emotion, noise))))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(
        self,
        context: torch.Tensor,
        emotion: torch.Tensor,
        subject: torch.Tensor,
        noise: torch.Tensor | None = None,
        person: torch.Tensor | None = None,
        with_head: bool = True,
        progress: Progress | None = None,
        static: bool | None = None,
        cuda_graph: bool | None = None,
    ) -> FaceMotion:
        """Autoregressive inference with cached keys/values (cost per frame bounded).

        cuda_graph: capture each generator's per-frame step in a CUDA graph and replay it (True,
        on a CUDA device only; None or False: off until it is measured on a GPU). It checks itself: the
        first replay must match the eager step to 1e-4, else (or on any error) that generator
        decodes eagerly (logged at debug level). Not yet run on a GPU: made without one.
        static: the fixed-shape step the graph captures, also eagerly (None: with the graph).
        """
        stepping = Stepping.choose(context.device, static, cuda_graph)
        return self._generate(context, emotion, subject, noise, person, with_head, progress, stepping)

    def _generate(self, context, emotion, subject, noise, person, with_head, progress, stepping=None) -> FaceMotion:
        return self._start_run(context, emotion, subject, noise, person, with_head, progress, stepping).motion(self)

    def _start_run(self, context, emotion, subject, noise, person, with_head, progress, stepping=None) -> "_Run":
        """Gn, Ge, Gh over every frame of the features; the run keeps their decoding state."""
        frames = context.shape[1] // self.cfg.k
        stages = 1 + (self.emotion is not None) + (self.head is not None and with_head)
        tick = _ProgressCounter(progress, stages * frames)
        run = self._run_neutral(context, subject, frames, tick, stepping)
        if self.emotion is not None:
            run = self._run_emotion(run, emotion, self._person(subject, person), tick, stepping)
        if self.head is not None and with_head:
            if noise is None:
                noise = draw_noise(emotion.shape[0], emotion.shape[1], self.cfg.d_model, self.cfg.head_noise_sigma, emotion.device)
            run = self._run_head(run, emotion, noise, tick, stepping)
        return run

    def _run_neutral(self, context, subject, frames, tick=None, stepping=None) -> "_Run":
        n = self.neutral
        memory = n.audio_in(context)
        base = n.subject_in(self._subject_onehot(subject)).unsqueeze(1)  # (B, 1, d)
        run = _Run(frames=frames, dtype=memory.dtype)
        w, b = _through(n.face_in, n.viseme_out), _through_bias(n.face_in, n.viseme_out)
        latents = run.neutral_latent

        def query(t: int) -> torch.Tensor:
            return base if t == 0 else base + F.linear(latents[t - 1], w, b)

        run.decodings["neutral"] = _decode_incremental(n.decoder, memory, frames, query, latents.append, self.cfg, tick, stepping)
        return run

    def _run_emotion(self, run: "_Run", emotion, person, tick=None, stepping=None) -> "_Run":
        e, n = self.emotion, self.neutral
        memory = e.audio_in(emotion)
        p = person.unsqueeze(1)
        hn, he = run.neutral_latent, run.emotion_latent
        wn, bn = _through(e.neutral_in, n.viseme_out), _through_bias(e.neutral_in, n.viseme_out)
        we_n = _through(e.face_in, n.viseme_out)
        we_e = _through(e.face_in, e.expression_out)
        be = _through_bias(e.face_in, n.viseme_out, e.expression_out)

        def query(t: int) -> torch.Tensor:
            q = F.linear(hn[t], wn, bn) + p
            if t == 0:
                return q + e.face_in.bias  # ye_0 = T: W_e applied to a zero displacement
            return q + F.linear(hn[t - 1], we_n) + F.linear(he[t - 1], we_e) + be

        run.decodings["emotion"] = _decode_incremental(e.decoder, memory, run.frames, query, he.append, self.cfg, tick, stepping)
        return run

    def _run_head(self, run: "_Run", emotion, noise, tick=None, stepping=None) -> "_Run":
        h, n, e = self.head, self.neutral, self.emotion
        memory = h.memory(emotion, noise)
        b = emotion.shape[0]
        eye = torch.eye(3, dtype=memory.dtype, device=memory.device).reshape(1, 1, 9).expand(b, 1, 9)
        zero = torch.zeros(b, 1, 3, dtype=memory.dtype, device=memory.device)
        motions = run.motion_raw

        def pose_query(t: int) -> torch.Tensor:
            if t == 0:
                return h.rotation_in(eye) + h.translation_in(zero)
            rotation, translation = _decode_motion(motions[t - 1])
            return h.rotation_in(rotation.reshape(b, 1, 9)) + h.translation_in(translation)

        hn, he = run.neutral_latent, run.emotion_latent
        decoders = (n.viseme_out, e.expression_out) if e is not None else (n.viseme_out,)
        wf_n = _through(h.face_in, n.viseme_out)
        bf = _through_bias(h.face_in, *decoders)
        wf_e = _through(h.face_in, e.expression_out) if e is not None else None

        def query(t: int) -> torch.Tensor:
            q = F.linear(hn[t], wf_n, bf) + pose_query(t)
            return q if wf_e is None else q + F.linear(he[t], wf_e)

        run.decodings["head"] = _decode_incremental(h.decoder, memory, run.frames, query, lambda x: motions.append(h.motion_out(x)), self.cfg, tick, stepping)
        return run

    def _identity_motion(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = faces.shape[:2]
        rotation = torch.eye(3, dtype=faces.dtype, device=faces.device).expand(b, t, 3, 3)
        return rotation, faces.new_zeros(b, t, 3)


@contextmanager
def _no_weight_init() -> Iterator[None]:
    """torch.nn.init's initialisers leave tensors as they are (uninitialised memory) meanwhile."""
    names = [name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
    saved = {name: getattr(nn.init, name) for name in names}
    try:
        for name in names:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def _decode_motion(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder output (..., 9) -> rotation (..., 3, 3) and translation (..., 3)."""
    return rotation_from_6d(raw[..., :6]), raw[..., 6:9]


class _ProgressCounter:
    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def __call__(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


@dataclass
class _Run:
    """What the generators produced so far, one list entry (B, 1, ...) per frame (None once a
    stream has dropped it), and each generator's decoding state."""

    frames: int
    dtype: torch.dtype

    def __post_init__(self) -> None:
        self.neutral_latent: list[torch.Tensor | None] = []
        self.emotion_latent: list[torch.Tensor | None] = []
        self.motion_raw: list[torch.Tensor | None] = []
        self.decodings: dict[str, _Decoding] = {}  # "neutral", "emotion", "head"

    def motion(self, model: TalkingHeadModel, first: int = 0) -> FaceMotion:
        # every face (from frame `first` on) decoded at once from the latents
        neutral = model.neutral.viseme_out(torch.cat(self.neutral_latent[first:], dim=1))
        emotional = neutral
        if self.emotion_latent:
            # in place on the expression: no third array of every vertex of every frame
            emotional = model.emotion.expression_out(torch.cat(self.emotion_latent[first:], dim=1)).add_(neutral)
        if self.motion_raw:
            rotation, translation = _decode_motion(torch.cat(self.motion_raw[first:], dim=1))
        else:
            rotation, translation = model._identity_motion(emotional)
        return FaceMotion(neutral, emotional, rotation, translation)


def _decode_incremental(decoder: Decoder, memory, frames, query, keep, cfg: ModelConfig, tick=None, stepping=None) -> "_Decoding":
    """Frame by frame with a key/value cache; a full window restarts from its recent frames."""
    decoding = _Decoding(decoder, memory, query, keep, cfg, stepping)
    decoding.advance(frames, tick)
    return decoding


class _Decoding:
    """One generator's incremental decoding: its key/value cache and open window, ready to go on.

    Frames are numbered from the clip's start; `offset` frames of audio memory have been dropped
    from the cache's front (a stream's, once no window can reach them)."""

    def __init__(self, decoder: Decoder, memory: torch.Tensor, query, keep, cfg: ModelConfig, stepping: Stepping | None = None) -> None:
        self.decoder, self.query, self.keep, self.cfg = decoder, query, keep, cfg
        self.stepping = stepping or Stepping()
        self.cache = decoder.start_cache(memory)
        self.frames = 0  # frames decoded so far
        self.window = -1  # first frame of the open window (none yet)
        self.offset = 0
        self.graph, self.graph_output = None, None  # the captured static step and its output
        self.graph_failed = False  # the capture or its self-check failed: eager from then on

    def advance(self, frames: int, tick=None) -> None:
        """Decode frames self.frames .. frames - 1 (their audio memory must be in the cache)."""
        for t in range(self.frames, frames):
            start = window_start(t, self.cfg.max_frames, self.cfg.window_overlap)
            if start != self.window:
                # Open a window: its prompt (the most recent frames) and frame t in parallel.
                prompt = torch.cat([self.query(s) for s in range(start, t + 1)], dim=1)
                prime = self.decoder.prime_static if self.stepping.static else self.decoder.prime
                h = prime(self.cache, prompt, start - self.offset)[:, -1:]
                self.window = start
            elif self.stepping.static:
                h = self._step_static(self.query(t))
            else:
                h = self.decoder.step(self.cache, self.query(t))
            self.keep(h)
            if tick:
                tick()
        self.frames = max(self.frames, frames)

    def _step_static(self, query: torch.Tensor) -> torch.Tensor:
        """The next frame through the static step: replayed from its graph when there is one."""
        window = self.cache.static
        window.query.copy_(query)
        if self.stepping.capture is None or self.graph_failed:
            return self.decoder.step_static(self.cache)
        if self.graph is None:
            return self._capture()
        self.graph.replay()
        return self.graph_output.clone()  # the graph writes the next frame's over it

    def _capture(self) -> torch.Tensor:
        """Capture the static step, replay it for this frame, and keep it only if its output
        equals the eager step's on the same input to GRAPH_TOLERANCE."""
        window = self.cache.static
        saved = window.position.clone(), window.frame.clone()

        def rewind() -> None:  # a step writes keys/values at the position, then advances it
            window.position.copy_(saved[0])
            window.frame.copy_(saved[1])

        try:
            eager = self.decoder.step_static(self.cache)
            rewind()
            graph, output = self.stepping.capture(lambda: self.decoder.step_static(self.cache))
            rewind()  # the warm-up stepped
            graph.replay()
            error = (output - eager).abs().max().item()
            if not error <= GRAPH_TOLERANCE:
                raise RuntimeError(f"captured step differs from the eager one by {error:.3g}")
        except Exception as reason:  # noqa: BLE001 - any failure means: decode eagerly
            log.debug("CUDA graph not used for this decoder, eager static step instead: %s", reason)
            self.graph_failed = True
            rewind()
            return self.decoder.step_static(self.cache)
        self.graph, self.graph_output = graph, output
        return output.clone()

    def extend(self, memory: torch.Tensor) -> None:
        """Append the audio memory (B, k n, d) of n more frames."""
        self.graph = None  # it read the old memory: captured again at the next step
        more = self.decoder.start_cache(memory).memory_kv
        self.cache.memory_kv = [(torch.cat([k, k2], dim=2), torch.cat([v, v2], dim=2)) for (k, v), (k2, v2) in zip(self.cache.memory_kv, more)]

    def forget(self, frame: int) -> None:
        """Drop the audio memory of the frames before `frame` (never the open window's)."""
        drop = min(frame, self.window) - self.offset
        if drop > 0:
            cut = self.cfg.k * drop
            self.cache.memory_kv = [(k[:, :, cut:], v[:, :, cut:]) for k, v in self.cache.memory_kv]
            self.cache.window_start -= drop
            self.graph = None
            if self.cache.static is not None:
                self.cache.static.frame.sub_(drop)
            self.offset += drop


class GenerationStream:
    """`generate`, a block of frames at a time, for audio that is still arriving (core/streaming.py).

    Each `push` hands over the features of the next frames; Gn, Ge and Gh decode them from the
    state the frames before left (key/value caches, open windows), as `generate` decodes a whole
    clip, so frames pushed in any blocks equal `generate`'s on the same features (to float
    rounding). What no later window can reach (audio memory, latents) is dropped, so a stream of
    any length runs in bounded memory."""

    def __init__(self, model: TalkingHeadModel, subject: torch.Tensor, person: torch.Tensor | None = None, with_head: bool = True) -> None:
        self.model, self.subject, self.person = model, subject, person
        self.with_head = with_head and model.head is not None
        self.frames = 0  # frames decoded so far
        self.run: _Run | None = None
        self._dropped = 0  # latents before this frame are gone

    @torch.no_grad()
    def push(self, context: torch.Tensor, emotion: torch.Tensor, noise: torch.Tensor | None = None) -> FaceMotion:
        """context (B, k n, Dc), emotion (B, k n, De), noise (B, k n, d): n more frames' features
        (as `generate` takes a clip's) -> those n frames as a FaceMotion (B, n, ...)."""
        model, first = self.model, self.frames
        total = first + context.shape[1] // model.cfg.k
        if self.with_head and noise is None:
            noise = draw_noise(emotion.shape[0], emotion.shape[1], model.cfg.d_model, model.cfg.head_noise_sigma, emotion.device)
        if self.run is None:
            self.run = model._start_run(context, emotion, self.subject, noise, self.person, self.with_head, None)
        else:
            steps = {"neutral": lambda: model.neutral.audio_in(context), "emotion": lambda: model.emotion.audio_in(emotion),
                     "head": lambda: model.head.memory(emotion, noise)}
            for name, decoding in self.run.decodings.items():  # Gn, then Ge, then Gh: each reads the one before
                decoding.extend(steps[name]())
                decoding.advance(total)
            self.run.frames = total
        self.frames = total
        motion = self.run.motion(model, first)
        self._forget()
        return motion

    def _forget(self) -> None:
        run = self.run
        window = min(d.window for d in run.decodings.values())
        for decoding in run.decodings.values():
            decoding.forget(window)
        keep = max(window - 1, 0)  # a window's prompt reads the latents of the frame before it
        for frames in (run.neutral_latent, run.emotion_latent, run.motion_raw):
            for t in range(self._dropped, min(keep, len(frames))):
                frames[t] = None
        self._dropped = max(self._dropped, keep)
