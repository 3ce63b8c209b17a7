"""The Face's emotion sliders (`Mesh.talking_head.emotions`, `emotion_voice`): one weight per
emotion class of the bundle and "From Voice", animatable. Animate samples them (their F-curves
when keyed, else their values) at each scene frame of the take and sends that as the task's
emotion track (core/emotion_direction.py)."""

from __future__ import annotations

import bpy
import numpy as np

from ..core.emotion_direction import HEARD, VOICE, EmotionDirection, EmotionKey

VOICE_PATH = "talking_head.emotion_voice"


def slider_labels(info) -> list[str]:
    """The bundle's emotion classes, and "heard" (what the voice is heard as, as class weights)
    when it has an emotion hearing. `info`: a BundleInfo (core/bundle_info.py)."""
    from ..core.emotion_hearing import FILE as HEARING

    return list(info.config.emotion_labels) + ([HEARD] if (info.path / HEARING).is_file() else [])


def sync_sliders(mesh: bpy.types.Mesh, labels: list[str]) -> None:
    """One slider per label of the bundle, in its order; sliders already there keep their values
    (and their keys, whose data paths name the slider's index: existing ones never move)."""
    sliders = mesh.talking_head.emotions
    have = [slider.label for slider in sliders]
    for label in labels:
        if label not in have:
            sliders.add().label = label


def sliders_match(mesh: bpy.types.Mesh, labels: list[str]) -> bool:
    return {slider.label for slider in mesh.talking_head.emotions} >= set(labels)


def _fcurves(owner: bpy.types.ID) -> dict[str, bpy.types.FCurve]:
    """data path -> F-curve of `owner`'s active action (its slot's channelbag on Blender 4.4+)."""
    anim = owner.animation_data
    action = anim.action if anim is not None else None
    if action is None:
        return {}
    if not hasattr(action, "layers"):
        return {curve.data_path: curve for curve in action.fcurves}
    slot = getattr(anim, "action_slot", None)
    curves = {}
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot) if slot is not None else None
            for curve in bag.fcurves if bag is not None else ():
                curves[curve.data_path] = curve
    return curves


def emotion_track(obj: bpy.types.Object, labels: list[str], start: float, frames: tuple[float, float], fps: float) -> EmotionDirection | None:
    """The sliders of `obj`'s mesh as an emotion track: time 0 is scene frame `start` (the sound's
    start), one key per scene frame of `frames` ([first, last]) where a slider is keyed, held keys
    dropped. None when the face has no sliders or they keep the voice alone (the voice-only take)."""
    mesh = obj.data if obj is not None and obj.type == "MESH" else None
    if mesh is None or not len(mesh.talking_head.emotions):
        return None
    props = mesh.talking_head
    curves = _fcurves(mesh)
    channels = [(VOICE_PATH, props.emotion_voice)] + [
        (f"talking_head.emotions[{i}].weight", slider.weight) for i, slider in enumerate(props.emotions) if slider.label in labels
    ]
    names = [VOICE] + [slider.label for slider in props.emotions if slider.label in labels]
    if any(path in curves for path, _ in channels):
        scene_frames = np.arange(int(np.floor(frames[0])), int(np.ceil(frames[1])) + 1, dtype=np.float64)
    else:
        scene_frames = np.array([float(start)])
    values = np.array([[curves[path].evaluate(f) if path in curves else value for path, value in channels] for f in scene_frames])
    values = np.clip(values, 0.0, 1.0)
    keep = np.ones(len(values), bool)  # a frame equal to both neighbours adds nothing to a linear track
    keep[1:-1] = ~(np.all(values[1:-1] == values[:-2], axis=1) & np.all(values[1:-1] == values[2:], axis=1))
    keys = [
        EmotionKey(float((f - start) / fps), {n: float(v) for n, v in zip(names[1:], row[1:]) if v}, float(row[0]))
        for f, row in zip(scene_frames[keep], values[keep])
    ]
    direction = EmotionDirection(keys)
    return None if direction.is_voice_only() else direction
