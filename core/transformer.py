"""The transformer decoder shared by the three generators, with masks and a key/value cache.

Every generator is a stack of `Nd` post-norm decoder blocks (self-attention, cross-attention,
feed-forward), as FaceFormer's. The same weights run two ways: `forward` over a whole window
with masks (training, and the naive reference), and `step` one frame at a time reusing cached
keys and values (inference), which must agree with `forward` to float precision.

`step_static` is `step` with fixed shapes for a CUDA graph: key/value buffers for the whole
positional window written in place, the position and frame as device tensors, a mask instead
of a growing cache. `capture_cuda_graph` captures it; that captured path has not been run on a
GPU yet (made without one): it checks itself against the eager step at run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def alignment_bias(frames: int, k: int = 2, device: torch.device | None = None) -> torch.Tensor:
    """B_A (METHOD.md section 2): face frame i sees only its own k audio frames.

    1-indexed: B_A(i, j) = 0 if k(i-1) < j <= k*i, else -inf. Shape (frames, k * frames).
    """
    i = torch.arange(frames, device=device).unsqueeze(1)  # 0-based i' = i - 1
    j = torch.arange(k * frames, device=device).unsqueeze(0)  # 0-based j' = j - 1
    allowed = (j >= k * i) & (j < k * (i + 1))
    bias = torch.full((frames, k * frames), float("-inf"), device=device)
    return bias.masked_fill(allowed, 0.0)


def causal_bias(frames: int, device: torch.device | None = None) -> torch.Tensor:
    """Frame t attends to frames <= t: 0 on and below the diagonal, -inf above. (frames, frames)."""
    return torch.triu(torch.full((frames, frames), float("-inf"), device=device), diagonal=1)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Absolute sinusoidal positional encoding (Vaswani et al.), shape (length, dim)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


def _dropout(x: torch.Tensor, p: float, train: bool) -> torch.Tensor:
    """F.dropout, without its call at all in evaluation (a step makes seven of them)."""
    return F.dropout(x, p, True) if train else x


class Attention(nn.Module):
    """Multi-head attention whose keys and values can be computed once and reused."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, dim) -> (B, heads, T, dim / heads)."""
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.key(x)), self.split(self.value(x))

    def attend(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q = self.split(self.query(x))
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, dropout_p=drop)
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class DecoderBlock(nn.Module):
    """Post-norm block: self-attention, cross-attention to the audio, feed-forward."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_attn = Attention(dim, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        self_kv: tuple[torch.Tensor, torch.Tensor],
        self_bias: torch.Tensor | None,
        cross_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.self_attn.attend(x, *self_kv, self_bias)))
        x = self.norm2(x + self.drop(self.cross_attn.attend(x, *memory_kv, cross_bias)))
        return self.norm3(x + self.drop(self.ff(x)))


@dataclass
class DecoderCache:
    """Per-layer state of incremental decoding within one positional window."""

    memory_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, keys/values of all audio frames
    self_k: list[torch.Tensor] = field(default_factory=list)  # per layer (B, heads, t, dh)
    self_v: list[torch.Tensor] = field(default_factory=list)
    window_start: int = 0  # global frame index of position 0
    length: int = 0  # frames held in the window so far
    static: StaticWindow | None = None  # set by `prime_static`, for `step_static`
    weights: list[StepWeights] | None = None  # per layer, gathered by the first `step`


@dataclass
class StepWeights:
    """One decoder block's weights as `Decoder.step` uses them, gathered once per cache (the
    cache lives for one clip or stream, whose weights do not change meanwhile)."""

    heads: int
    dropout: float  # attention dropout
    drop: float  # the block's residual dropout
    ff_drop: float
    qkv_weight: torch.Tensor  # self-attention's query, key and value as one (3d, d) product
    qkv_bias: torch.Tensor
    self_out_weight: torch.Tensor
    self_out_bias: torch.Tensor
    cross_query_weight: torch.Tensor
    cross_query_bias: torch.Tensor
    cross_out_weight: torch.Tensor
    cross_out_bias: torch.Tensor
    ff1_weight: torch.Tensor
    ff1_bias: torch.Tensor
    ff2_weight: torch.Tensor
    ff2_bias: torch.Tensor
    norm1_weight: torch.Tensor
    norm1_bias: torch.Tensor
    eps1: float
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    eps2: float
    norm3_weight: torch.Tensor
    norm3_bias: torch.Tensor
    eps3: float

    @classmethod
    def of(cls, block: "DecoderBlock") -> "StepWeights":
        sa, ca, ff = block.self_attn, block.cross_attn, block.ff
        return cls(
            heads=sa.heads, dropout=sa.dropout, drop=block.drop.p, ff_drop=ff[2].p,
            qkv_weight=torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]),
            qkv_bias=torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]),
            self_out_weight=sa.out.weight, self_out_bias=sa.out.bias,
            cross_query_weight=ca.query.weight, cross_query_bias=ca.query.bias,
            cross_out_weight=ca.out.weight, cross_out_bias=ca.out.bias,
            ff1_weight=ff[0].weight, ff1_bias=ff[0].bias, ff2_weight=ff[3].weight, ff2_bias=ff[3].bias,
            norm1_weight=block.norm1.weight, norm1_bias=block.norm1.bias, eps1=block.norm1.eps,
            norm2_weight=block.norm2.weight, norm2_bias=block.norm2.bias, eps2=block.norm2.eps,
            norm3_weight=block.norm3.weight, norm3_bias=block.norm3.bias, eps3=block.norm3.eps,
        )


@dataclass
class StaticWindow:
    """The fixed-shape window state of `Decoder.step_static`: allocated once, written in place,
    so a CUDA graph captured over it stays valid across frames and window restarts."""

    self_k: list[torch.Tensor]  # per layer (B, heads, max_frames, dh): the whole positional window
    self_v: list[torch.Tensor]
    query: torch.Tensor  # (B, 1, d): the next frame's query, copied in before each step
    position: torch.Tensor  # 0-d long: window position of the next frame
    frame: torch.Tensor  # 0-d long: its frame in the cache's audio memory
    slots: torch.Tensor  # (max_frames,) long: 0 .. max_frames - 1
    audio_slots: torch.Tensor  # (k,) long: 0 .. k - 1
    open_bias: torch.Tensor  # (1, max_frames) zeros in the memory's dtype


class Decoder(nn.Module):
    """Positional encoding plus `Nd` decoder blocks over a window of frames."""

    def __init__(self, dim: int, heads: int, ff_dim: int, layers: int, dropout: float, max_frames: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.max_frames = max_frames
        self.blocks = nn.ModuleList(DecoderBlock(dim, heads, ff_dim, dropout) for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        self.register_buffer("positions", sinusoidal_positions(max_frames, dim), persistent=False)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Decode window frames [start, start + T) in parallel (teacher forcing / reference).

        queries: (B, T, d) for positions 0..T-1 of the window; memory: (B, k * total_frames, d),
        the whole clip's audio features; the window's audio is sliced from it.
        """
        t = queries.shape[1]
        if t > self.max_frames:
            raise ValueError(f"window of {t} frames exceeds the positional range {self.max_frames}")
        x = self.drop(queries + self.positions[:t])
        audio = memory[:, self.k * start : self.k * (start + t)]
        self_bias = causal_bias(t, x.device)
        cross_bias = alignment_bias(t, self.k, x.device)
        for block in self.blocks:
            x = block(x, block.cross_attn.keys_values(audio), block.self_attn.keys_values(x), self_bias, cross_bias)
        return x

    def start_cache(self, memory: torch.Tensor) -> DecoderCache:
        """Keys and values of the clip's audio, computed once for every step."""
        return DecoderCache(memory_kv=[block.cross_attn.keys_values(memory) for block in self.blocks])

    def prime(self, cache: DecoderCache, queries: torch.Tensor, start: int) -> torch.Tensor:
        """Open a new window at global frame `start` holding `queries` (B, T, d) as its prompt."""
        t = queries.shape[1]
        x = self.drop(queries + self.positions[:t])
        self_bias = causal_bias(t, x.device)
        cross_bias = alignment_bias(t, self.k, x.device)
        cache.self_k, cache.self_v = [], []
        for block, (mk, mv) in zip(self.blocks, cache.memory_kv):
            k, v = block.self_attn.keys_values(x)
            cache.self_k.append(k)
            cache.self_v.append(v)
            audio_kv = (mk[:, :, self.k * start : self.k * (start + t)], mv[:, :, self.k * start : self.k * (start + t)])
            x = block(x, audio_kv, (k, v), self_bias, cross_bias)
        cache.window_start, cache.length = start, t
        return x

    def step(self, cache: DecoderCache, query: torch.Tensor) -> torch.Tensor:
        """Decode the next frame (B, 1, d) of the window, appending to the cache.

        The block's arithmetic written out with `functional` calls and one fused query/key/value
        product (`StepWeights`): a frame is a few dozen tiny operations, so the modules' call
        overhead, not arithmetic, set its pace (0.45 -> 0.24 ms a step for a 2-layer, 128-wide
        decoder on the 2-core CPU). Equal to `forward` to float precision (tests)."""
        if cache.weights is None:
            cache.weights = [StepWeights.of(block) for block in self.blocks]
        pos = cache.length
        frame = cache.window_start + pos
        train = self.training
        x = _dropout(query + self.positions[pos : pos + 1], self.drop.p, train)
        b, _, d = x.shape
        a = self.k * frame
        for i, w in enumerate(cache.weights):
            heads = w.heads
            qkv = F.linear(x, w.qkv_weight, w.qkv_bias).view(b, 3, heads, d // heads).unsqueeze(3)  # (B, 3, heads, 1, dh)
            cache.self_k[i] = torch.cat([cache.self_k[i], qkv[:, 1]], dim=2)
            cache.self_v[i] = torch.cat([cache.self_v[i], qkv[:, 2]], dim=2)
            y = F.scaled_dot_product_attention(qkv[:, 0], cache.self_k[i], cache.self_v[i], dropout_p=w.dropout if train else 0.0)
            y = F.linear(y.reshape(b, 1, d), w.self_out_weight, w.self_out_bias)
            x = F.layer_norm(x + _dropout(y, w.drop, train), (d,), w.norm1_weight, w.norm1_bias, w.eps1)
            # B_A lets frame t see audio frames k*t .. k*t + k - 1 only: attend to exactly those.
            mk, mv = cache.memory_kv[i]
            q = F.linear(x, w.cross_query_weight, w.cross_query_bias).view(b, 1, heads, d // heads).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, mk[:, :, a : a + self.k], mv[:, :, a : a + self.k], dropout_p=w.dropout if train else 0.0)
            y = F.linear(y.reshape(b, 1, d), w.cross_out_weight, w.cross_out_bias)
            x = F.layer_norm(x + _dropout(y, w.drop, train), (d,), w.norm2_weight, w.norm2_bias, w.eps2)
            y = _dropout(F.gelu(F.linear(x, w.ff1_weight, w.ff1_bias)), w.ff_drop, train)
            y = F.linear(y, w.ff2_weight, w.ff2_bias)
            x = F.layer_norm(x + _dropout(y, w.drop, train), (d,), w.norm3_weight, w.norm3_bias, w.eps3)
        cache.length += 1
        return x

    def prime_static(self, cache: DecoderCache, queries: torch.Tensor, start: int) -> torch.Tensor:
        """`prime`, then its keys/values copied into the static window (allocated on first use)."""
        x = self.prime(cache, queries, start)
        b, t, d = queries.shape
        window = cache.static
        if window is None or window.query.shape[0] != b:
            kv_shape = (b, cache.self_k[0].shape[1], self.max_frames, cache.self_k[0].shape[3])
            device, dtype = x.device, x.dtype
            window = cache.static = StaticWindow(
                self_k=[torch.zeros(kv_shape, device=device, dtype=dtype) for _ in self.blocks],
                self_v=[torch.zeros(kv_shape, device=device, dtype=dtype) for _ in self.blocks],
                query=torch.zeros(b, 1, d, device=device, dtype=dtype),
                position=torch.zeros((), dtype=torch.long, device=device),
                frame=torch.zeros((), dtype=torch.long, device=device),
                slots=torch.arange(self.max_frames, device=device),
                audio_slots=torch.arange(self.k, device=device),
                open_bias=torch.zeros(1, self.max_frames, device=device, dtype=dtype),
            )
        for i in range(len(self.blocks)):
            window.self_k[i][:, :, :t].copy_(cache.self_k[i])
            window.self_v[i][:, :, :t].copy_(cache.self_v[i])
        cache.self_k, cache.self_v = [], []  # the static window holds them now
        window.position.fill_(t)
        window.frame.fill_(start + t)
        return x

    def step_static(self, cache: DecoderCache) -> torch.Tensor:
        """`step` for the query in `cache.static.query`, with the same shapes at every frame and
        no decision on the host: what a CUDA graph captures. Returns (B, 1, d)."""
        window = cache.static
        position = window.position.view(1)
        x = self.drop(window.query + self.positions.index_select(0, position))
        # causal: the window's positions after this one are hidden (they hold stale frames)
        self_bias = window.open_bias.masked_fill(window.slots > window.position, float("-inf"))
        # B_A: frame t sees audio frames k*t .. k*t + k - 1 only
        audio = window.frame * self.k + window.audio_slots
        for i, block in enumerate(self.blocks):
            k, v = block.self_attn.keys_values(x)
            window.self_k[i].index_copy_(2, position, k)
            window.self_v[i].index_copy_(2, position, v)
            mk, mv = cache.memory_kv[i]
            audio_kv = (mk.index_select(2, audio), mv.index_select(2, audio))
            x = block(x, audio_kv, (window.self_k[i], window.self_v[i]), self_bias, None)
        window.position.add_(1)
        window.frame.add_(1)
        return x


def capture_cuda_graph(step: Callable[[], torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """Capture `step` (a `Decoder.step_static` call) in a torch.cuda.CUDAGraph: (graph, output).

    Warmed up on a side stream first, as PyTorch's documentation asks: once, since each run
    writes keys/values one position further and the last position of a window has no room for
    a second. The warm-up's side effects (position and frame advanced) are the caller's to undo;
    the capture itself runs nothing. Written without a GPU: not run on one yet.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = step()
    return graph, output


def window_start(frame: int, max_frames: int, overlap: int) -> int:
    """First frame of the positional window that decodes `frame`.

    Windows start at 0, s, 2s, ... with s = max_frames - overlap; a frame belongs to the latest
    window that started at or before it and still has room, so each new window carries the
    `overlap` most recent frames as its prompt.
    """
    if frame < max_frames:
        return 0
    stride = max_frames - overlap
    return ((frame - max_frames) // stride + 1) * stride
