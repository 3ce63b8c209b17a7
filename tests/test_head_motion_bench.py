"""bench/head_motion.py's pure parts: Euler angles of known rotations, std over time and across seeds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

BENCH = Path(__file__).resolve().parents[1] / "bench" / "head_motion.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_head_motion", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and the like look the module up while it runs
    spec.loader.exec_module(module)
    return module


def _about(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_euler_degrees_of_known_rotations(bench):
    for index, axis in enumerate("xyz"):
        angles = bench.euler_degrees(_about(axis, 12.0))
        expected = np.zeros(3)
        expected[index] = 12.0
        np.testing.assert_allclose(angles, expected, atol=1e-9)
    # extrinsic x, then y, then z: R = Rz Ry Rx; batches keep their shape.
    combined = _about("z", -3.0) @ _about("y", 5.0) @ _about("x", 7.0)
    stack = np.broadcast_to(combined, (2, 4, 3, 3))
    np.testing.assert_allclose(bench.euler_degrees(stack), np.broadcast_to([7.0, 5.0, -3.0], (2, 4, 3)), atol=1e-9)
    np.testing.assert_allclose(bench.euler_degrees(np.eye(3)), np.zeros(3), atol=1e-12)
    # about the rotation vector for small angles (training/metrics.py rotation_angles).
    small = Rotation.from_rotvec(np.radians([2.0, -1.0, 1.5])).as_matrix()
    np.testing.assert_allclose(bench.euler_degrees(small), [2.0, -1.0, 1.5], atol=0.05)


def test_std_over_time_and_between_seeds(bench):
    t = np.arange(100)
    base = np.stack([np.sin(t / 5.0), np.zeros(100), 2.0 * np.cos(t / 7.0)], axis=1)  # (N, 3)
    offsets = np.array([-1.0, 0.0, 1.0])  # three seeds: the same motion shifted per seed, on x only
    angles = base[None].repeat(3, axis=0)
    angles[:, :, 0] += offsets[:, None]
    over_time = bench.std_over_time(angles)
    np.testing.assert_allclose(over_time, [base[:, 0].std(), 0.0, base[:, 2].std()])
    # per frame the seeds are -1, 0, 1 apart on x (std sqrt(2/3)), identical on y and z.
    np.testing.assert_allclose(bench.std_between_seeds(angles), [np.sqrt(2 / 3), 0.0, 0.0], atol=1e-12)
    from talking_head.training.head_balance import spread_clips  # what the bench picks its corpus clips with

    assert spread_clips(list(range(10)), 4) == [0, 3, 6, 9] and spread_clips([1, 2], 5) == [1, 2]


def test_jitter_tells_smooth_motion_from_noise(bench):
    t = np.linspace(0, 4 * np.pi, 400)
    smooth = np.stack([np.sin(t), np.cos(t), np.sin(2 * t)], axis=1)[None]
    noise = np.random.default_rng(0).standard_normal((1, 400, 3))
    assert np.all(bench.jitter(smooth) < 0.1) and np.all(np.abs(bench.jitter(noise) - np.sqrt(2)) < 0.15)
