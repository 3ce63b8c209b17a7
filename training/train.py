"""`talking-head train`: teacher-forced training on a BIWI-layout corpus, resumable.

Adam (betas 0.9, 0.99), lr 1e-4, x0.1 after 100 epochs (METHOD.md section 7). One clip per
step, as FaceFormer. Validation each epoch; the best epoch is written as a bundle. Runs on the
CPU or a GPU, and on several GPUs or nodes through `accelerate launch` with no code change.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core.bundle import ModelBundle
from ..core.config import ModelConfig
from .dataset import Corpus
from ..core.encoders import ContextEncoder, EmotionEncoder
from ..core.errors import TalkingHeadError
from .features import FeatureCache
from ..core.losses import contrastive_loss, diversity_loss, total_loss
from ..core.mesh_io import Mesh, read_mesh
from ..core.model import FaceMotion, TalkingHeadModel, draw_noise
from .training_data import Example, build_examples, crop

DEFAULT_CONTEXT_ENCODER = "facebook/wav2vec2-base-960h"
DEFAULT_EMOTION_ENCODER = "superb/wav2vec2-base-superb-er"


@dataclass
class TrainingConfig:
    """Optimisation settings; `model` holds ModelConfig overrides (d_model, max_frames, ...)."""

    epochs: int = 100
    lr: float = 1e-4
    lr_decay_epoch: int = 100
    lr_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    seed: int = 0
    variant: str = "full"
    split: str = "paper"
    model: dict = field(default_factory=dict)
    # Fine-tuning: start from this bundle's weights and settings (`model` still overrides them) ...
    init: str = ""
    # ... and train only the parameters whose names start with one of these (e.g. ["head."]: Gh alone).
    train_only: list = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None, **overrides) -> "TrainingConfig":
        data = json.loads(Path(path).read_text()) if path else {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise TalkingHeadError(f"{path}: unknown training settings {sorted(unknown)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)


def train(
    data: str | Path,
    out: str | Path,
    settings: TrainingConfig,
    context_encoder: str = DEFAULT_CONTEXT_ENCODER,
    emotion_encoder: str = DEFAULT_EMOTION_ENCODER,
    cache: str | Path | None = None,
    resume: bool = False,
    template: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Train a bundle; returns a summary (best epoch, losses, seconds per epoch)."""
    from accelerate import Accelerator

    out = Path(out)
    accelerator = Accelerator(cpu=device == "cpu")
    corpus = Corpus(data, settings.split)
    cache = Path(cache) if cache else Path(data) / ".cache"
    context = ContextEncoder(context_encoder, device=str(accelerator.device))
    emotion = EmotionEncoder(emotion_encoder, device=str(accelerator.device))
    features = FeatureCache(cache / "features", context, emotion)
    mesh = _bundle_template(corpus, template)
    subjects = list(corpus.seen)
    cfg = ModelConfig.for_variant(
        settings.variant,
        **{
            "n_vertices": corpus.n_vertices,
            "subjects": subjects,
            "context_dim": context.dim,
            "emotion_dim": emotion.dim,
            "emotion_labels": emotion.labels,
            "pivot": corpus.info.get("pivot"),
            "context_encoder": context_encoder,
            "emotion_encoder": emotion_encoder,
            **settings.model,
        },
    )
    if settings.init:  # the starting bundle's shape and switches; `model` overrides (the losses' weights, say) on top
        start = ModelConfig.load(Path(settings.init) / "config.json")
        keep = {name: getattr(cfg, name) for name in ("context_encoder", "emotion_encoder")}
        cfg = ModelConfig.from_dict({**start.to_dict(), **settings.model, **keep})
    cfg.head_trained = cfg.use_head and corpus.has_poses
    cfg.trained = True
    cfg.description = f"trained with `talking-head train` on {Path(data).name} ({settings.variant}, split {settings.split})"
    train_set = build_examples(corpus, corpus.subset("train"), features, subjects, cfg.k, cache, progress)
    val_set = build_examples(corpus, corpus.subset("val"), features, subjects, cfg.k, cache, progress)
    if not train_set:
        raise TalkingHeadError(f"{data}: the training split is empty (seen subjects, sentences 1-32)")
    if "max_frames" not in settings.model:
        fit_window(cfg, [len(e.target.neutral) for e in train_set])
    if not val_set and settings.epochs > 0:
        raise TalkingHeadError(f"{data}: the validation split is empty (seen subjects, sentences 33-36): the best epoch cannot be chosen")

    torch.manual_seed(settings.seed)
    model = TalkingHeadModel(cfg)
    if settings.init:
        _start_from(model, cfg, settings.init)
    optimizer = torch.optim.Adam(_trainable(model, settings.train_only), lr=settings.lr, betas=settings.betas)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.lr_decay_epoch, gamma=settings.lr_decay)
    state = _TrainingState()
    checkpoint = out / "checkpoint"
    if resume and (checkpoint / "state.json").is_file():
        state = _load_checkpoint(checkpoint, model, optimizer, schedule)
    loader = torch.utils.data.DataLoader(range(len(train_set)), batch_size=1, shuffle=True, generator=torch.Generator().manual_seed(settings.seed + state.epoch))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    rng = np.random.default_rng(settings.seed + state.epoch)
    log_path = out / "train_log.csv"
    out.mkdir(parents=True, exist_ok=True)

    for epoch in range(state.epoch + 1, settings.epochs + 1):
        started = time.perf_counter()
        model.train()
        sums: dict[str, float] = {}
        for batch in tqdm(loader, desc=f"epoch {epoch}/{settings.epochs}", unit="clip", disable=not progress, leave=False):
            example = crop(train_set[int(batch[0])], cfg.max_frames, cfg.k, rng)
            terms = _step(accelerator.unwrap_model(model), example, cfg, accelerator.device)
            optimizer.zero_grad()
            accelerator.backward(terms["loss"])
            optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item()
        schedule.step()
        row = {name: value / len(loader) for name, value in sums.items()}
        row["val"] = _validate(accelerator.unwrap_model(model), val_set, cfg, accelerator.device)
        row.update(epoch=epoch, lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - started)
        state.epoch = epoch
        if accelerator.is_main_process:
            state.history.append(row)
            if row["val"] <= state.best_val:
                state.best_val, state.best_epoch = row["val"], epoch
                _save_bundle(out, cfg, accelerator.unwrap_model(model), mesh, context, emotion, context_encoder, emotion_encoder)
            _save_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, schedule, state)
            _write_log(log_path, state.history)
        accelerator.wait_for_everyone()
    if accelerator.is_main_process and state.history:
        _plot_curves(state.history, out / "loss_curves.png")
    seconds = [r["seconds"] for r in state.history]
    return {"best_epoch": state.best_epoch, "best_val": state.best_val, "epochs": state.epoch, "history": state.history, "median_epoch_seconds": float(np.median(seconds)) if seconds else None}


def _start_from(model: TalkingHeadModel, cfg: ModelConfig, bundle: str | Path) -> None:
    """Load a trained bundle's generator weights into `model` (same shape, else one clear line)."""
    start = ModelBundle.load(bundle)
    if (start.config.n_vertices, start.config.d_model, start.config.subjects) != (cfg.n_vertices, cfg.d_model, cfg.subjects):
        raise TalkingHeadError(f"--init bundle {bundle} does not match this corpus and settings (vertices, width or subjects differ)")
    model.load_state_dict(start.model.state_dict(), strict=True)


def _trainable(model: TalkingHeadModel, prefixes: list[str]) -> list[torch.nn.Parameter]:
    """All parameters, or with `prefixes` only those whose names start with one (the rest frozen)."""
    if not prefixes:
        return list(model.parameters())
    chosen = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(name.startswith(prefix) for prefix in prefixes))
        if parameter.requires_grad:
            chosen.append(parameter)
    if not chosen:
        raise TalkingHeadError(f"train_only {prefixes} names no parameter of this model (its parts: {sorted({n.split('.')[0] for n, _ in model.named_parameters()})})")
    return chosen


def fit_window(cfg: ModelConfig, lengths: list[int]) -> None:
    """Decode in windows no longer than the clips training saw.

    Measured with the demo bundle (training clips of 2.4-4.7 s): decoding a 10 s clip in one
    600-frame window, the autoregressive decoder drifted past the trained lengths and the mouth
    stayed open through pauses (lip opening vs loudness correlation -0.03); in windows of the
    95th-percentile training length with a 40% prompt it followed the speech again (0.55).
    """
    if not lengths:
        return
    frames = int(np.ceil(np.percentile(lengths, 95) / 10.0) * 10)
    if frames < cfg.max_frames:
        cfg.max_frames, cfg.window_overlap = frames, max(1, round(0.4 * frames))


def _step(model: TalkingHeadModel, example: Example, cfg: ModelConfig, device) -> dict[str, torch.Tensor]:
    """Teacher-forced losses of one clip (batch of one)."""
    context = example.context.unsqueeze(0).to(device)
    emotion = example.emotion.unsqueeze(0).to(device)
    t = example.target
    target = FaceMotion(*(x.unsqueeze(0).to(device) for x in (t.neutral, t.emotional, t.rotation, t.translation)))
    subject = torch.tensor([example.subject], device=device)
    with_head = model.head is not None and example.has_pose
    noise = draw_noise(1, emotion.shape[1], cfg.d_model, cfg.head_noise_sigma, device)
    prediction = model(context, emotion, subject, target, noise)
    contrastive = diversity = None
    if model.contrastive is not None:
        contrastive = contrastive_loss(model.contrastive, context, emotion, prediction.emotional - prediction.neutral)
    if with_head:
        noise_2 = draw_noise(1, emotion.shape[1], cfg.d_model, cfg.head_noise_sigma, device)
        rotation_2, translation_2 = model.head_motion(emotion, prediction.emotional, target, noise_2)
        diversity = diversity_loss(prediction.rotation, prediction.translation, rotation_2, translation_2, noise, noise_2)
    return total_loss(cfg, prediction, target, contrastive, diversity, with_head=with_head)


@torch.no_grad()
def _validate(model: TalkingHeadModel, examples: list[Example], cfg: ModelConfig, device) -> float:
    """Mean teacher-forced face loss (Le, plus Ln where trained) over the validation clips."""
    if not examples:
        return float("nan")
    model.eval()
    total = 0.0
    for example in examples:
        terms = _step(model, crop(example, cfg.max_frames, cfg.k, np.random.default_rng(0)), cfg, device)
        total += float(terms["Le"] + terms.get("Ln", 0.0))
    return total / len(examples)


def _bundle_template(corpus: Corpus, template: str | Path | None) -> Mesh:
    path = Path(template) if template else corpus.root / "template.ply"
    if not path.is_file():
        raise TalkingHeadError(f"no template mesh: {corpus.root} has no template.ply; pass --template MESH.ply")
    mesh = read_mesh(path)
    if mesh.n_vertices != corpus.n_vertices:
        raise TalkingHeadError(f"template {path} has {mesh.n_vertices} vertices, the corpus {corpus.n_vertices}")
    return mesh


def _save_bundle(out: Path, cfg: ModelConfig, model, mesh: Mesh, context, emotion, context_source: str, emotion_source: str) -> None:
    """Best weights as a bundle; local encoders are copied in with save_pretrained, hub ids kept."""
    for which, encoder, source in (("context", context, context_source), ("emotion", emotion, emotion_source)):
        if Path(source).is_dir():
            target = out / "encoders" / which
            if not target.is_dir():
                encoder.model.save_pretrained(target)
            setattr(cfg, f"{which}_encoder", f"encoders/{which}")
    ModelBundle(path=out, config=cfg, model=model, template=mesh).save(out)


@dataclass
class _TrainingState:
    epoch: int = 0
    best_val: float = float("inf")
    best_epoch: int = 0
    history: list = field(default_factory=list)


def _save_checkpoint(folder: Path, model, optimizer, schedule, state: _TrainingState) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, folder / "optimizer.pt")
    (folder / "state.json").write_text(json.dumps(asdict(state), default=float))


def _load_checkpoint(folder: Path, model, optimizer, schedule) -> _TrainingState:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    saved = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    return _TrainingState(**json.loads((folder / "state.json").read_text()))


def _write_log(path: Path, history: list[dict]) -> None:
    names = ["epoch", "loss", "Lrec", "Ln", "Le", "Lr", "Lt", "Lcon", "Ldiv", "val", "lr", "seconds"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def _plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("Lrec", "Ln", "Le", "Lcon", "val"):
        if name in history[-1]:
            ax.plot(epochs, [r.get(name, np.nan) for r in history], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title("training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
