"""Live Link Face CSV: the app's column layout and timecodes, written and read back."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.core.arkit import ARKIT_INDEX, ARKIT_NAMES
from talking_head.core.live_link import (
    BLENDSHAPE_COUNT, LIVE_LINK_HEADER, LiveLinkError, eye_angles, head_angles, read_live_link_csv,
    rotation_from_head_angles, timecode, write_live_link_csv,
)

# The first line of a take exported by the Live Link Face app.
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,"
    "MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,"
    "MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,MouthShrugUpper,"
    "MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,MouthUpperUpRight,"
    "BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,CheekSquintLeft,"
    "CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,"
    "LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    angles = np.stack([rng.uniform(-1.2, 1.2, n), rng.uniform(-1.2, 1.2, n), rng.uniform(-1.2, 1.2, n)], -1)
    return rotation_from_head_angles(angles)


def test_header_is_live_link_faces():
    assert ",".join(LIVE_LINK_HEADER) == APP_HEADER
    assert BLENDSHAPE_COUNT == 61


def test_timecodes():
    assert timecode(0, 25) == "00:00:00:00.000"
    assert timecode(24, 25) == "00:00:00:24.000"
    assert timecode(25, 25) == "00:00:01:00.000"
    assert timecode(25 * 3661 + 7, 25) == "01:01:01:07.000"


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 60  # 2.4 s at 25 fps
    weights = rng.uniform(0, 1, (n, 52)).astype(np.float32)
    rotations = random_rotations(n, rng)
    eyes = rng.uniform(-0.4, 0.4, (n, 6))
    path = write_live_link_csv(tmp_path / "take.csv", weights, 25, rotations, eyes)
    lines = path.read_text().splitlines()
    assert lines[0] == APP_HEADER and len(lines) == n + 1
    assert lines[1].startswith("00:00:00:00.000,61,") and lines[26].startswith("00:00:01:00.000,61,")
    take = read_live_link_csv(path)
    np.testing.assert_allclose(take.weights, weights, atol=1e-7)  # printed with 10 decimals
    np.testing.assert_allclose(rotation_from_head_angles(take.head), rotations, atol=1e-8)
    np.testing.assert_allclose(take.eyes, eyes, atol=1e-9)
    assert take.fps == 25
    np.testing.assert_allclose(take.seconds, np.arange(n) / 25)
    assert take.timecodes[:2] == ["00:00:00:00.000", "00:00:00:01.000"]
    # Live Link's order differs from Apple's: the columns must land in the right channels.
    jaw_left = lines[0].split(",").index("JawLeft")
    assert float(lines[1].split(",")[jaw_left]) == pytest.approx(weights[0, ARKIT_INDEX["jawLeft"]], abs=1e-9)


def test_defaults_and_atomic_replace(tmp_path):
    weights = np.zeros((3, 52), np.float32)
    weights[:, ARKIT_INDEX["eyeLookDownLeft"]] = 1.0
    weights[:, ARKIT_INDEX["eyeLookOutRight"]] = 1.0
    path = tmp_path / "out" / "take.csv"
    path.parent.mkdir()
    path.write_text("old")
    write_live_link_csv(path, weights, 30)
    assert [p.name for p in path.parent.iterdir()] == ["take.csv"]  # no temporary file left behind
    take = read_live_link_csv(path, timecode_fps=30)
    assert not take.head.any()
    assert take.eyes[0, 1] > 0 and take.eyes[0, 3] > 0  # left eye looks down; right eye toward the face's right
    np.testing.assert_allclose(take.eyes, eye_angles(weights), atol=1e-9)


def test_reads_the_apps_takes(tmp_path):
    """App takes: the timecode counts at 60 fps while rows come at 30 (FF steps by 2), with a sub-frame."""
    rows = [APP_HEADER]
    values = ["0.1000000000"] * 61
    for i, code in enumerate(["12:27:47:55.168", "12:27:47:57.168", "12:27:47:59.167", "12:27:48:01.167"]):
        rows.append(f"{code},61," + ",".join(values[:-1] + [f"{i / 10:.10f}"]))
    path = tmp_path / "app.csv"
    path.write_text("\n".join(rows) + "\n")
    take = read_live_link_csv(path)
    assert take.fps == pytest.approx(30, abs=0.1)
    np.testing.assert_allclose(take.seconds, [0, 2 / 60, 3.999 / 60, 5.999 / 60], atol=1e-6)
    assert take.weights.shape == (4, 52) and take.weights[0, ARKIT_INDEX["tongueOut"]] == pytest.approx(0.1)
    np.testing.assert_allclose(take.eyes[:, 5], [0, 0.1, 0.2, 0.3])


def test_head_angles_conventions():
    # Pitch > 0 looks down: the forward axis (z) tips toward -y.
    assert (rotation_from_head_angles(np.array([[0.0, 0.3, 0.0]]))[0] @ [0, 0, 1])[1] < 0
    # Yaw > 0 turns toward the face's right (-x).
    assert (rotation_from_head_angles(np.array([[0.3, 0.0, 0.0]]))[0] @ [0, 0, 1])[0] < 0
    rng = np.random.default_rng(1)
    angles = np.stack([rng.uniform(-3, 3, 50), rng.uniform(-1.5, 1.5, 50), rng.uniform(-3, 3, 50)], -1)
    np.testing.assert_allclose(head_angles(rotation_from_head_angles(angles)), angles, atol=1e-9)


def test_errors(tmp_path):
    with pytest.raises(LiveLinkError):
        write_live_link_csv(tmp_path / "a.csv", np.zeros((3, 51)), 25)
    with pytest.raises(LiveLinkError):
        write_live_link_csv(tmp_path / "a.csv", np.zeros((3, 52)), 29.97)
    (tmp_path / "b.csv").write_text("Frame,JawOpen\n0,0.5\n")
    with pytest.raises(LiveLinkError, match="Timecode"):
        read_live_link_csv(tmp_path / "b.csv")
    with pytest.raises(LiveLinkError):
        read_live_link_csv(tmp_path / "missing.csv")
    assert len(ARKIT_NAMES) == 52
