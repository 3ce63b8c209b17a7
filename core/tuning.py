"""Personalized emotional tuning (METHOD.md section 9): a person's style from a few clips.

The generators and the pivots p_1..p_S (the trained person embeddings) stay frozen; only the
mixing weights alpha are learnt, p* = sum_i alpha_i p_i, with alpha >= 0 (projection after
each step) and a penalty on sum(alpha) - 1, so p* stays in the convex hull of the pivots.
"direct" mode learns p freely instead, for comparison. One clip is held out to stop early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .bundle import ModelBundle
from .losses import vertex_loss
from .model import interpolate_frames
from .pipeline import Animator
from .style import MAX_DURATION_MISMATCH_S, MIN_CLIPS, MODES, Style, TuningError

__all__ = ["MAX_DURATION_MISMATCH_S", "MODES", "Style", "Tuner", "TuningClip", "TuningError", "project_to_simplex", "read_mesh_sequence", "tune_style"]


@dataclass
class TuningClip:
    """One clip: its audio and the person's faces (N, V, 3) in the template's topology."""

    audio: str
    mesh: str
    vertices: np.ndarray


def read_mesh_sequence(path: str | Path, n_vertices: int, read_alembic: Callable[[Path, int], np.ndarray] | None = None) -> np.ndarray:
    """(frames, V, 3) from .npy ((frames, V, 3) or (frames, 3V)), a folder of .ply/.obj frames,
    or an Alembic .abc file through `read_alembic(path, n_vertices)`: reading Alembic needs
    Blender, which core never imports, so the caller (app/clips.py) hands the reader in."""
    from .mesh_io import read_mesh

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".ply", ".obj"))
        if not files:
            raise TuningError(f"{path} holds no .ply or .obj frames")
        frames = np.stack([read_mesh(f).vertices for f in files])
    elif path.suffix.lower() == ".npy" and path.is_file():
        frames = np.load(path, allow_pickle=False)
        if frames.ndim == 2 and frames.shape[1] % 3 == 0:
            frames = frames.reshape(frames.shape[0], -1, 3)
    elif path.suffix.lower() == ".abc" and path.is_file():
        if read_alembic is None:
            raise TuningError(f"{path.name}: Alembic clips are read by `talking-head tune` or in Blender; convert it to .npy here")
        frames = read_alembic(path, n_vertices)
    elif not path.exists():
        raise TuningError(f"mesh sequence not found: {path}")
    else:
        raise TuningError(
            f"unsupported mesh sequence {path.name}: use .npy (frames, V, 3), a folder of .ply/.obj frames or an Alembic .abc file"
        )
    if frames.ndim != 3 or frames.shape[2] != 3:
        raise TuningError(f"{path}: expected (frames, V, 3) vertices, got shape {frames.shape}")
    if frames.shape[1] != n_vertices:
        raise TuningError(f"{path}: {frames.shape[1]} vertices per frame, the bundle's template has {n_vertices}")
    frames = frames.astype(np.float32)
    check_finite(frames, str(path))
    return frames


def check_finite(frames: np.ndarray, where: str) -> None:
    """Refuse a clip with NaN or infinite vertex positions (or values beyond float32's range):
    one bad number would make the fit, the early stop and the saved style NaN."""
    finite = np.isfinite(frames).reshape(len(frames), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise TuningError(
            f"{where}: {len(bad)} of {len(frames)} frames have vertex positions that are not finite numbers "
            f"(NaN or inf), the first is frame {bad[0]}"
        )


class Tuner:
    """Fits a style for one person with a bundle's frozen generators."""

    def __init__(self, animator: Animator, subject: str | None = None) -> None:
        self.animator = animator
        self.bundle: ModelBundle = animator.bundle
        self.model = self.bundle.model.eval()
        if self.model.emotion is None:
            raise TuningError("this bundle has no emotion stage (baseline): there are no pivots to tune")
        self.use_subject(subject or self.bundle.config.subjects[0])
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def prepare(self, clip: TuningClip) -> dict:
        """Features at the mesh's frame count and targets (displacements); Gn's faces come later."""
        from .audio import SAMPLE_RATE, load_audio

        cfg = self.bundle.config
        check_finite(np.asarray(clip.vertices), clip.mesh)
        samples = load_audio(clip.audio)
        n = len(clip.vertices)
        if abs(len(samples) / SAMPLE_RATE - n / cfg.fps) > MAX_DURATION_MISMATCH_S:
            raise TuningError(
                f"{Path(clip.audio).name} lasts {len(samples) / SAMPLE_RATE:.2f} s but its mesh sequence "
                f"{n / cfg.fps:.2f} s ({n} frames at {cfg.fps} fps): they must match within {MAX_DURATION_MISMATCH_S} s"
            )
        context, emotion, _ = self.animator.features(samples)
        context = interpolate_frames(context, cfg.k * n)
        emotion = interpolate_frames(emotion, cfg.k * n)
        target = torch.from_numpy((clip.vertices - self.bundle.template.vertices).reshape(1, n, -1))
        return {"context": context, "emotion": emotion, "target": target, "neutral": {}}

    def use_subject(self, subject: str) -> None:
        """Gn speaks like this bundle subject from now on (its one-hot; METHOD.md section 3)."""
        self.subject = subject
        self.subject_index = self.bundle.config.subject_index(subject)

    @torch.no_grad()
    def neutral(self, item: dict) -> torch.Tensor:
        """Gn's faces for the clip in the current speaking style (computed once per subject)."""
        if self.subject not in item["neutral"]:
            subject = torch.tensor([self.subject_index])
            item["neutral"][self.subject] = self.model.generate(item["context"], item["emotion"], subject, with_head=False).neutral
        return item["neutral"][self.subject]

    def teacher_forced(self, item: dict, person: torch.Tensor) -> torch.Tensor:
        """Ge's faces with the person's previous frames given: differentiable in `person`.

        At most the bundle's decoding window (max_frames) from the clip's start: the decoder's
        positions end there, and a few seconds are plenty to fit one embedding."""
        e, n, neutral = self.model.emotion, self.frames(item), self.neutral(item)
        q = e.queries(neutral[:, :n], item["target"][:, : n - 1], person)
        return neutral[:, :n] + e.expression_out(e.decoder(q, e.audio_in(item["emotion"][:, : self.bundle.config.k * n])))

    def frames(self, item: dict) -> int:
        return min(item["target"].shape[1], self.bundle.config.max_frames)

    def fit_loss(self, item: dict, person: torch.Tensor) -> torch.Tensor:
        return vertex_loss(self.teacher_forced(item, person), item["target"][:, : self.frames(item)])

    @torch.no_grad()
    def error(self, items: list[dict], person: torch.Tensor | None, subject: str | None = None) -> float:
        """Mean per-vertex squared error of autoregressive inference (no head) over clips, as
        the person will be animated: Gn in `subject`'s style (default: the current one)."""
        index = torch.tensor([self.bundle.config.subject_index(subject or self.subject)])
        errors = []
        for item in items:
            motion = self.model.generate(item["context"], item["emotion"], index, person=person, with_head=False)
            errors.append(float(vertex_loss(motion.emotional, item["target"])))
        return float(np.mean(errors))

    def pick_subject(self, items: list[dict]) -> str:
        """The training subject whose speaking style (Gn one-hot and own pivot) animates these
        clips best: METHOD.md leaves the choice for an unseen person to the caller, and the
        person's own clips are the best judge. Measured autoregressively, as at inference."""
        errors = {s: self.error(items, None, s) for s in self.bundle.config.subjects}
        best = min(errors, key=errors.get)
        self.use_subject(best)
        return best

    def fit(
        self,
        train: list[dict],
        holdout: list[dict],
        mode: str = "convex",
        steps: int = 150,
        lr: float = 0.05,
        lambda_sum: float = 1.0,
        patience: int = 4,
        check_every: int = 5,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(alpha (S,), p (d,)) minimising Ltun on `train`, early-stopped on `holdout`.

        The gradient comes from teacher forcing (cheap, differentiable), but the early stop
        and the choice of the result use autoregressive error on the held-out clip, which is
        what an animator sees: a teacher-forced fit can improve while the animation worsens.
        The starting candidates are uniform alpha (METHOD.md) and the current subject's own
        pivot, so tuning never returns a style that did worse on the held-out clip than both.
        """
        if mode not in MODES:
            raise TuningError(f"unknown tuning mode {mode!r}; use convex or direct")
        pivots = self.model.person_embeddings().detach()  # (S, d)
        s = pivots.shape[0]
        alpha = torch.full((s,), 1.0 / s, requires_grad=mode == "convex")
        p_free = (alpha.detach() @ pivots).clone().requires_grad_(mode == "direct")
        optimizer = torch.optim.Adam([alpha if mode == "convex" else p_free], lr=lr if mode == "convex" else lr * 0.1)

        def current() -> torch.Tensor:
            return (alpha @ pivots) if mode == "convex" else p_free

        own = F.one_hot(torch.tensor(self.subject_index), s).float()
        candidates = [(self.error(holdout, p.unsqueeze(0)), a, p) for a, p in ((own, pivots[self.subject_index]), (alpha.detach().clone(), current().detach().clone()))]
        best = min(candidates, key=lambda c: c[0])
        waited = 0
        for step in range(steps):
            person = current().unsqueeze(0)
            loss = sum(self.fit_loss(item, person) for item in train) / len(train)
            if mode == "convex":
                loss = loss + lambda_sum * (alpha.sum() - 1) ** 2
            optimizer.zero_grad()
            loss.backward()
            if mode == "convex":
                # Only the part of the gradient along the simplex can move alpha: the rest is
                # undone by the projection, and it would dominate Adam's per-weight step sizes.
                alpha.grad -= alpha.grad.mean()
            optimizer.step()
            if mode == "convex":
                with torch.no_grad():
                    alpha.copy_(project_to_simplex(alpha))  # p* stays in the pivots' convex hull
            if progress:
                progress(step + 1, steps)
            if (step + 1) % check_every:
                continue
            held = self.error(holdout, current().detach().unsqueeze(0))
            if held < best[0] - 1e-12:
                best, waited = (held, alpha.detach().clone(), current().detach().clone()), 0
            else:
                waited += 1
            if waited >= patience:
                break
        if progress:
            progress(steps, steps)
        return best[1].numpy(), best[2].numpy()


def project_to_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto {alpha >= 0, sum alpha = 1} (sort-based, Duchi et al. 2008):
    both of METHOD.md's constraints at once, where clamping alone lets the sum drift."""
    u, _ = torch.sort(v, descending=True)
    cumulative = u.cumsum(0) - 1
    index = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    rho = int(torch.nonzero(u - cumulative / index > 0).max())
    return torch.clamp(v - cumulative[rho] / (rho + 1), min=0.0)


def tune_style(
    animator: Animator,
    clips: list[TuningClip],
    evaluation: list[TuningClip],
    name: str,
    mode: str = "convex",
    subject: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Style:
    """Tune on all but the last clip, stop early on the last; report error on `evaluation`.

    Without `subject`, the speaking style (Gn's subject) is the one that animates the clips
    best. `error_before` is the untuned animation (the bundle's first subject, or `subject`);
    `error_after` the tuned one."""
    if len(clips) < MIN_CLIPS:
        raise TuningError(f"tuning needs at least {MIN_CLIPS} clips (one is held out to stop early), got {len(clips)}")
    tuner = Tuner(animator, subject)
    untuned = tuner.subject
    items = [tuner.prepare(c) for c in clips]
    evaluation_items = [tuner.prepare(c) for c in evaluation]
    if subject is None:
        tuner.pick_subject(items)
    alpha, p = tuner.fit(items[:-1], items[-1:], mode=mode, progress=progress)
    before = after = None
    if evaluation_items:
        before = tuner.error(evaluation_items, None, untuned)
        after = tuner.error(evaluation_items, torch.from_numpy(p).unsqueeze(0))
    identity = animator.bundle.identity
    style = Style(
        name=name,
        bundle=str(animator.bundle.path),
        alpha=[float(x) for x in alpha],
        p=[float(x) for x in p],
        subject=tuner.subject,
        mode=mode,
        clips=[[c.audio, c.mesh] for c in clips],
        error_before=before,
        error_after=after,
        bundle_fingerprint=identity.fingerprint,
    )
    try:  # the checks every reader of the file makes, so tune never writes a style they refuse
        style.validate()
        style.check(identity)
    except TuningError as exc:
        raise TuningError(f"tuning gave an unusable style, nothing written: {exc}") from None
    return style
