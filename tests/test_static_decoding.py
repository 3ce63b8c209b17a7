"""The fixed-shape decoding step a CUDA graph captures, checked on the CPU.

The static step (`Decoder.step_static`) must give what the exact growing-cache step gives, over
clips that cross window restarts, for Gn, Ge and Gh. The graph plumbing (query copied in, output
read out, one capture reused across window restarts, falling back when the self-check fails) is
driven here by a stand-in graph that runs the step it was given; a real torch.cuda.CUDAGraph
has not been run by these tests (no GPU).
"""

from __future__ import annotations

import logging

import pytest
import torch

from talking_head.core.config import ModelConfig
from talking_head.core.model import Stepping, TalkingHeadModel
from talking_head.core.transformer import window_start

from test_model import random_inputs, rough

FIELDS = ("neutral", "emotional", "rotation", "translation")


def model_for(variant: str, max_frames: int = 16, overlap: int = 6) -> TalkingHeadModel:
    torch.manual_seed(1)
    cfg = ModelConfig.for_variant(variant, n_vertices=20, subjects=["A", "B"], context_dim=12, emotion_dim=10,
                                  max_frames=max_frames, window_overlap=overlap)
    return rough(TalkingHeadModel(cfg)).eval()


def assert_same(a, b, tolerance: float = 1e-5) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert torch.allclose(x, y, atol=tolerance, rtol=0), (name, (x - y).abs().max())


class StandInGraph:
    """Plays a CUDA graph on the CPU: `replay` runs the captured step into the same output."""

    captures: list["StandInGraph"] = []

    def __init__(self, step, output: torch.Tensor, wrong: float = 0.0) -> None:
        self.step, self.output, self.wrong, self.replays = step, output, wrong, 0

    def replay(self) -> None:
        self.output.copy_(self.step() + self.wrong)
        self.replays += 1


def capture_stand_in(wrong: float = 0.0):
    def capture(step):
        output = step()  # a real capture runs nothing; the caller rewinds either way
        graph = StandInGraph(step, torch.empty_like(output), wrong)
        StandInGraph.captures.append(graph)
        return graph, graph.output
    return capture


def steps_after_priming(frames: int, cfg: ModelConfig) -> int:
    """Frames decoded by `step` (not by opening a window)."""
    starts = {window_start(t, cfg.max_frames, cfg.window_overlap) for t in range(frames)}
    return frames - len(starts)


@pytest.mark.parametrize("frames", [1, 7, 16, 45])
@pytest.mark.parametrize("variant", ["full", "no-head", "baseline"])
def test_static_step_equals_the_exact_step(frames, variant):
    model = model_for(variant)
    context, emotion, noise = random_inputs(frames, model.cfg)
    subject = torch.tensor([1])
    exact = model.generate(context, emotion, subject, noise)
    static = model.generate(context, emotion, subject, noise, static=True)
    assert_same(static, exact)
    if frames > 1:
        assert exact.emotional.std(dim=1).mean() > 1e-3


@pytest.mark.parametrize("max_frames, overlap", [(5, 2), (8, 1), (9, 8)])
def test_static_step_across_many_window_restarts(max_frames, overlap):
    model = model_for("full", max_frames, overlap)
    context, emotion, noise = random_inputs(40, model.cfg, seed=3)
    subject = torch.tensor([0])
    exact = model.generate(context, emotion, subject, noise)
    assert_same(model.generate(context, emotion, subject, noise, static=True), exact)


def test_static_step_over_a_batch():
    model = model_for("full", 8, 3)
    cfg = model.cfg
    g = torch.Generator().manual_seed(5)
    context = torch.randn(3, cfg.k * 20, cfg.context_dim, generator=g)
    emotion = torch.randn(3, cfg.k * 20, cfg.emotion_dim, generator=g)
    noise = torch.randn(3, cfg.k * 20, cfg.d_model, generator=g)
    subject = torch.tensor([0, 1, 0])
    assert_same(model.generate(context, emotion, subject, noise, static=True), model.generate(context, emotion, subject, noise))


@pytest.mark.parametrize("variant", ["full", "baseline"])
def test_graph_plumbing_captures_once_and_replays_every_step(variant):
    model = model_for(variant)
    cfg = model.cfg
    frames = 45  # three windows
    context, emotion, noise = random_inputs(frames, cfg)
    subject = torch.tensor([1])
    exact = model.generate(context, emotion, subject, noise)
    StandInGraph.captures = []
    graphed = model._generate(context, emotion, subject, noise, None, True, None, Stepping(static=True, capture=capture_stand_in()))
    assert_same(graphed, exact)
    generators = 1 + (model.emotion is not None) + (model.head is not None)
    assert len(StandInGraph.captures) == generators  # window restarts re-prime the same buffers
    # the frame that captures is decoded by the self-check's replay, the others by replays
    assert [g.replays for g in StandInGraph.captures] == [steps_after_priming(frames, cfg)] * generators


def test_a_graph_that_disagrees_falls_back_to_the_eager_step(caplog):
    model = model_for("full")
    context, emotion, noise = random_inputs(30, model.cfg)
    subject = torch.tensor([0])
    exact = model.generate(context, emotion, subject, noise)
    StandInGraph.captures = []
    with caplog.at_level(logging.DEBUG, logger="talking_head.core.model"):
        graphed = model._generate(context, emotion, subject, noise, None, True, None, Stepping(static=True, capture=capture_stand_in(wrong=1e-3)))
    assert_same(graphed, exact)
    assert all(g.replays == 1 for g in StandInGraph.captures)  # the self-check's, then eager
    assert "differs from the eager one" in caplog.text


def test_a_capture_that_fails_falls_back_to_the_eager_step(caplog):
    model = model_for("full")
    context, emotion, noise = random_inputs(30, model.cfg)
    subject = torch.tensor([0])

    def broken(step):
        step()
        raise RuntimeError("no CUDA here")

    with caplog.at_level(logging.DEBUG, logger="talking_head.core.model"):
        graphed = model._generate(context, emotion, subject, noise, None, True, None, Stepping(static=True, capture=broken))
    assert_same(graphed, model.generate(context, emotion, subject, noise))
    assert "no CUDA here" in caplog.text


def test_the_cuda_graph_is_opted_into_on_cuda_only():
    cpu = torch.device("cpu")
    assert Stepping.choose(cpu, None, None) == Stepping()  # the CPU keeps the exact step
    assert Stepping.choose(cpu, True, None) == Stepping(static=True)
    # Off by default on CUDA too, until the captured path has been measured on a GPU.
    assert Stepping.choose(torch.device("cuda"), None, None) == Stepping()
    on_cuda = Stepping.choose(torch.device("cuda"), None, True)
    assert on_cuda.static and on_cuda.capture is not None
    assert Stepping.choose(torch.device("cuda"), None, False) == Stepping()
    with pytest.raises(ValueError, match="CUDA device"):
        Stepping.choose(cpu, None, True)
    with pytest.raises(ValueError, match="static"):
        Stepping.choose(torch.device("cuda"), False, True)
