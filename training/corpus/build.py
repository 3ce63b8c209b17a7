"""Build the demo corpus in the BIWI preprocessed layout (METHOD.md section 10), with ground truth
for everything the method learns: neutral faces, emotional faces and their exact neutral
counterparts, head poses, emotion labels and phone alignments.

    OUT/vertices_npy/{S}_e{NN}.npy   emotional take, (frames, 3V) float32, no head pose
    OUT/vertices_npy/{S}_{NN}.npy    neutral take of the same sentence
    OUT/neutral/{S}_e{NN}.npy        the emotional take's exact neutral counterpart (same timing)
    OUT/wav/{clip}.wav               16 kHz mono
    OUT/poses/{clip}.npz             rotation (N, 3, 3), translation (N, 3)
    OUT/emotions/{clip}.npz          label (N,) int8 index into EMOTIONS, intensity (N,) float32
    OUT/phones/{clip}.json           text and [phone, start, end] in seconds
    OUT/templates.npz, templates.pkl subject -> (V, 3) float32
    OUT/template.ply                 topology (faces) of the sequences
    OUT/corpus.json                  subjects, splits, clips, generator version
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.audio import FACE_FPS, SAMPLE_RATE, frame_count
from ...core.errors import TalkingHeadError
from .emotions import EMOTION_PROFILES, EMOTIONS, expression_vector, intensity_track, loudness
from .head_motion import head_motion
from ...core.face_rig import BIWI_LANDMARKS, CONTROLS, FaceRig
from .sentences import SENTENCES
from .speech import Speech, synthesize
from .subjects import ALL_SUBJECTS, SEEN, VOICES, clip_split, split_of, style_dict, subject_style
from .visemes import viseme_controls

GENERATOR_VERSION = "1.0.0"
# Small corpora still get both a seen and an unseen subject.
BUILD_ORDER = ("F2", "M3", "F1", "M1", "F3", "M4", "F5", "M2", "F4", "M5", "F6", "M6", "F7", "F8")
EXPRESSIVE_EMOTIONS = EMOTIONS[1:]


class CorpusError(TalkingHeadError):
    """Bad corpus options (template without landmarks, counts out of range, ...)."""


@dataclass
class Template:
    name: str
    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray
    landmarks: dict[str, int]
    pivot: np.ndarray
    rigid: np.ndarray  # (V,) bool: moved by the jaw only (eyeballs, teeth, mouth cavity)
    lip_vertices: np.ndarray
    upper_face_vertices: np.ndarray
    extra: dict  # stored into corpus.json (regions for rendering)


def load_template(spec: str) -> Template:
    """'ours' (the stored head) or a path to the BIWI template (BIWI.ply, 23,370 vertices)."""
    if spec == "ours":
        from .head_mesh import REGION_NAMES, _run_length, load_head

        head = load_head()
        rigid = np.isin(head.vertex_region, [REGION_NAMES.index(r) for r in ("eyes", "iris", "teeth", "mouth")])
        return Template("ours", head.vertices, head.faces, head.landmarks, head.pivot, rigid, head.lip_vertices,
                        head.upper_face_vertices, {"regions": list(REGION_NAMES), "vertex_region_runs": _run_length(head.vertex_region)})
    from ...core.mesh_io import read_mesh

    mesh = read_mesh(spec)
    if mesh.n_vertices != 23370:
        raise CorpusError(f"--template must be 'ours' or the BIWI template (23,370 vertices); {spec} has {mesh.n_vertices}")
    v = mesh.vertices
    rig = FaceRig(v, mesh.faces, BIWI_LANDMARKS)
    q = rig.frame.local(v)
    lips = np.where((np.abs(q[:, 0]) < 0.9) & (q[:, 1] > -0.8) & (q[:, 1] < 0.6) & (q[:, 2] > -1.0))[0]
    upper = np.where(q[:, 1] > rig.frame.local(v[[BIWI_LANDMARKS["nose_tip"]]])[0, 1])[0]
    return Template("BIWI", v, mesh.faces, dict(BIWI_LANDMARKS), v.mean(0), np.zeros(len(v), bool), lips, upper, {})


# --- one sentence of one subject (runs in a worker) ----------------------------------------------

_worker: dict = {}


def _init_worker(template_spec: str) -> None:
    _worker.clear()
    _worker["template"] = load_template(template_spec)
    _worker["rigs"] = {}


def _subject_rig(subject: str) -> FaceRig:
    if subject not in _worker["rigs"]:
        t: Template = _worker["template"]
        base = FaceRig(t.vertices, t.faces, t.landmarks, t.rigid)
        shaped = t.vertices + base.identity_offset(subject_style(subject).identity)
        _worker["rigs"][subject] = FaceRig(shaped, t.faces, t.landmarks, t.rigid)
    return _worker["rigs"][subject]


def subject_template(template: Template, subject: str) -> np.ndarray:
    base = FaceRig(template.vertices, template.faces, template.landmarks, template.rigid)
    return (template.vertices + base.identity_offset(subject_style(subject).identity)).astype(np.float32)


def face_controls(speech: Speech, subject: str, emotion: str, level_scale: float, rng: np.random.Generator):
    """-> (viseme controls (N, C), expression controls (N, C), intensity (N,), loudness (N,))."""
    style = subject_style(subject)
    n = frame_count(len(speech.samples))
    times = (np.arange(n) + 0.5) / FACE_FPS
    gains = style.control_gains()
    mouth = viseme_controls(speech.phones, times, len(CONTROLS)) * gains
    level = loudness(speech.samples, n)
    if emotion == "neutral":
        return mouth, np.zeros_like(mouth), np.zeros(n), level
    intensity = intensity_track(speech.phones, level, level_scale, times, rng)
    expression = intensity[:, None] * expression_vector(emotion, len(CONTROLS))[None, :] * gains * style.expression_gain
    return mouth, expression, intensity, level


def _write_take(out: Path, clip: str, speech: Speech, wav: np.ndarray, text: str, faces: np.ndarray,
                emotion: str, intensity: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> None:
    import soundfile

    np.save(out / "vertices_npy" / f"{clip}.npy", faces.reshape(len(faces), -1).astype(np.float32))
    soundfile.write(str(out / "wav" / f"{clip}.wav"), wav, SAMPLE_RATE, subtype="PCM_16")
    np.savez(out / "poses" / f"{clip}.npz", rotation=rotation, translation=translation)
    label = np.where(intensity > 0.15, EMOTIONS.index(emotion), 0).astype(np.int8)
    np.savez(out / "emotions" / f"{clip}.npz", label=label, intensity=intensity.astype(np.float32))
    phones = [[p, round(s, 5), round(e, 5)] for p, s, e in speech.phones]
    (out / "phones" / f"{clip}.json").write_text(json.dumps({"text": text, "phones": phones}) + "\n")


def build_sentence(task: tuple) -> list[dict]:
    """Synthesize, animate and write the emotional take, its neutral counterpart and the neutral take."""
    from .augment import augment

    out, subject, sentence, seed = task
    out = Path(out)
    subject_index = ALL_SUBJECTS.index(subject)
    rng = np.random.default_rng([seed, subject_index, sentence])
    text = SENTENCES[(sentence - 1) % len(SENTENCES)]
    voice = VOICES[subject]
    style = subject_style(subject)
    rig = _subject_rig(subject)
    emotion = EXPRESSIVE_EMOTIONS[(sentence - 1 + subject_index) % len(EXPRESSIVE_EMOTIONS)]
    level_scale = float(rng.uniform(0.6, 1.0))
    records = []
    for take, take_emotion in (("emotional", emotion), ("neutral", "neutral")):
        speech = synthesize(text, voice, EMOTION_PROFILES[take_emotion].prosody)
        clip = f"{subject}_e{sentence:02d}" if take == "emotional" else f"{subject}_{sentence:02d}"
        mouth, expression, intensity, level = face_controls(speech, subject, take_emotion, level_scale, rng)
        faces = rig.pose(mouth + expression)
        if take == "emotional":  # exact neutral counterpart: same phones and timing, emotion off
            np.save(out / "neutral" / f"{clip}.npy", rig.pose(mouth).reshape(len(mouth), -1))
        times = (np.arange(len(mouth)) + 0.5) / FACE_FPS
        rotation, translation, _ = head_motion(speech.phones, level, times, EMOTION_PROFILES[take_emotion].arousal, take_emotion, style, rng)
        wav, augmentation = augment(speech.samples, rng)
        _write_take(out, clip, speech, wav, text, faces, take_emotion, intensity, rotation, translation)
        records.append({
            "clip": clip, "subject": subject, "sentence": sentence, "take": take, "text": text,
            "emotion": take_emotion, "level": round(level_scale, 3) if take == "emotional" else 0.0,
            "frames": len(faces), "seconds": round(speech.seconds, 4), "augmentation": augmentation,
            "split": clip_split(subject, sentence, take == "emotional"),
        })
    return records


# --- the whole corpus ----------------------------------------------------------------------------

def build_corpus(out: Path, n_subjects: int = 14, n_sentences: int = 40, seed: int = 0, template: str = "ours",
                 workers: int | None = None, progress: bool = True) -> dict:
    if not 1 <= n_subjects <= len(ALL_SUBJECTS):
        raise CorpusError(f"--subjects must be between 1 and {len(ALL_SUBJECTS)}, not {n_subjects}")
    if not 1 <= n_sentences <= len(SENTENCES):
        raise CorpusError(f"--sentences must be between 1 and {len(SENTENCES)}, not {n_sentences}")
    start = time.time()
    out = Path(out)
    for folder in ("vertices_npy", "wav", "neutral", "poses", "emotions", "phones"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    tmpl = load_template(template)
    subjects = [s for s in BUILD_ORDER[:n_subjects]]
    subjects.sort(key=ALL_SUBJECTS.index)
    tasks = [(str(out), s, k, seed) for s in subjects for k in range(1, n_sentences + 1)]
    workers = workers or min(len(tasks), multiprocessing.cpu_count())
    records: list[dict] = []
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="corpus", unit="sentence", disable=not progress)
    if workers <= 1:
        _init_worker(template)
        for task in tasks:
            records += build_sentence(task)
            bar.update()
    else:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(template,)) as pool:
            for result in pool.imap_unordered(build_sentence, tasks):
                records += result
                bar.update()
    bar.close()
    records.sort(key=lambda r: r["clip"])

    templates = {s: subject_template(tmpl, s) for s in subjects}
    np.savez(out / "templates.npz", **templates)
    with open(out / "templates.pkl", "wb") as f:
        pickle.dump(templates, f, protocol=4)
    from ...core.mesh_io import write_mesh

    write_mesh(out / "template.ply", tmpl.vertices, tmpl.faces)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": [], "tuning": [], "unseen_test": []}
    for r in records:
        key = r["split"] if r["subject"] in SEEN else {"tuning": "tuning", "test": "unseen_test"}.get(r["split"])
        if key:
            splits[key].append(r["clip"])
    info = {
        "generator": "talking-head demo corpus",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "fps": FACE_FPS,
        "sample_rate": SAMPLE_RATE,
        "template": tmpl.name,
        "template_mesh": "template.ply",
        "n_vertices": int(len(tmpl.vertices)),
        "pivot": [float(x) for x in tmpl.pivot],
        "landmarks": tmpl.landmarks,
        "lip_vertices": [int(i) for i in tmpl.lip_vertices],
        "upper_face_vertices": [int(i) for i in tmpl.upper_face_vertices],
        "controls": list(CONTROLS),
        "emotions": list(EMOTIONS),
        "subjects": [{"name": s, "voice": VOICES[s].describe(), "style": style_dict(subject_style(s)), "split": split_of(s)} for s in subjects],
        "splits": splits,
        "clips": {r.pop("clip"): r for r in records},
        "neutral_counterparts": "neutral/{S}_e{NN}.npy shares phones/{S}_e{NN}.json (same timing, emotion off)",
        **tmpl.extra,
    }
    info["build_seconds"] = round(time.time() - start, 1)
    (out / "corpus.json").write_text(json.dumps(info, indent=1) + "\n")
    return info
