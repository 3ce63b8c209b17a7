"""core/geometry.py without Blender: the axes turn, model frames on the scene's time line,
quaternions against scipy, and the compact take's PCA basis."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from talking_head.core.geometry import (
    COMPACT_ENERGY,
    Y_UP_TO_Z_UP,
    compact_basis,
    covered_scene_frames,
    matrices_to_quaternions,
    model_frame_positions,
    quaternions_to_matrices,
    resample_head_motion,
    scale_rotation,
    slerp,
)


def test_y_up_turns_into_z_up_as_a_proper_rotation():
    assert np.allclose(Y_UP_TO_Z_UP @ Y_UP_TO_Z_UP.T, np.eye(3)) and np.isclose(np.linalg.det(Y_UP_TO_Z_UP), 1)
    assert np.allclose(Y_UP_TO_Z_UP @ [0, 1, 0], [0, 0, 1])  # the template's up is Blender's up
    assert np.allclose(Y_UP_TO_Z_UP @ [0, 0, 1], [0, -1, 0])  # the face looks towards Blender's front view


def test_model_frames_land_on_the_scene_time_line():
    assert np.allclose(model_frame_positions(4, 25, 50, 10.0), [10, 12, 14, 16])
    assert np.allclose(model_frame_positions(3, 25, 24, 1.0), [1, 1.96, 2.92])
    assert covered_scene_frames(4, 25, 50, 10.0).tolist() == list(range(10, 17))
    assert covered_scene_frames(3, 25, 24, 1.5).tolist() == [2, 3]  # model frames at 1.5, 2.46, 3.42


def test_quaternions_round_trip_and_match_scipy():
    rotations = Rotation.random(50, random_state=3)
    quats = matrices_to_quaternions(rotations.as_matrix())
    np.testing.assert_allclose(quaternions_to_matrices(quats), rotations.as_matrix(), atol=1e-9)
    assert np.all(np.sum(quats[1:] * quats[:-1], axis=1) >= 0)  # neighbours on the same side
    a, b = quats[:-1], quats[1:]
    t = np.linspace(0, 1, len(a))
    ours = quaternions_to_matrices(slerp(a, b, t))
    theirs = np.stack([Slerp([0, 1], Rotation.from_matrix(quaternions_to_matrices(np.stack([x, y]))))(w).as_matrix()
                       for x, y, w in zip(a, b, t)])
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_scaling_a_rotation_scales_its_angle():
    rotvec = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, 0.0]])
    quats = matrices_to_quaternions(Rotation.from_rotvec(rotvec).as_matrix())
    for amplitude in (0.0, 0.5, 1.0, 1.7):
        scaled = quaternions_to_matrices(scale_rotation(quats, amplitude))
        np.testing.assert_allclose(Rotation.from_matrix(scaled).as_rotvec(), amplitude * rotvec, atol=1e-9)


def test_head_motion_resampled_to_another_frame_rate_keeps_the_model_frames():
    rotation = Rotation.from_rotvec(np.outer(np.linspace(0, 0.4, 5), [1, 0, 0])).as_matrix()
    translation = np.outer(np.arange(5.0), [0, 0, 1])
    frames, rotations, translations = resample_head_motion(rotation, translation, 25, 50, 1.0)
    assert frames.tolist() == list(range(1, 10))
    np.testing.assert_allclose(rotations[::2], rotation, atol=1e-9)  # every other scene frame is a model frame
    np.testing.assert_allclose(translations[1], [0, 0, 0.5])  # halfway, linear
    np.testing.assert_allclose(Rotation.from_matrix(rotations[1]).as_rotvec(), [0.05, 0, 0], atol=1e-9)  # halfway, slerp


def test_compact_basis_keeps_the_motion_energy_with_few_shapes():
    rng = np.random.default_rng(0)
    shapes = rng.standard_normal((3, 40, 3))
    weights = rng.standard_normal((60, 3))
    displacement = np.einsum("nk,kvc->nvc", weights, shapes) + 1e-4 * rng.standard_normal((60, 40, 3))
    basis, coefficients = compact_basis(displacement)
    assert len(basis) == 3 and np.abs(coefficients).max() <= 1 + 1e-9
    rebuilt = np.einsum("nk,kvc->nvc", coefficients, basis)
    kept = 1 - np.sum((rebuilt - displacement) ** 2) / np.sum(displacement**2)
    assert kept >= COMPACT_ENERGY
    empty, none = compact_basis(np.zeros((4, 10, 3)))
    assert empty.shape == (1, 10, 3) and not none.any()
