"""`talking-head encoders content | emotion | real-voices | decode`: train the demo bundle's wav2vec2 encoders."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands) -> None:
    encoders = commands.add_parser("encoders", help="train small wav2vec2 encoders on a speech set (demo bundle)")
    kinds = encoders.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, text in (("content", "CTC phone recogniser (the content encoder)"), ("emotion", "emotion classifier (the emotion encoder)")):
        p = kinds.add_parser(name, help=text)
        p.add_argument("--speech", required=True, type=Path, help="speech set from `talking-head corpus speech`")
        p.add_argument("--out", required=True, type=Path, help="folder to write (from_pretrained layout)")
        if name == "emotion":
            p.add_argument("--init", required=True, type=Path, help="content encoder whose backbone starts the classifier")
            p.add_argument("--train-feature-encoder", action="store_true", help="train the convolutional front end too (it passes "
                           "pitch better; slower)")
        p.add_argument("--epochs", type=int, default=6)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--minutes", type=float, help="stop and save after this many minutes of training")
        p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
        p.set_defaults(run=_run_train, which=name)
    real = kinds.add_parser("real-voices", help="a bundle's content encoder taught to hear real voices, in the same feature space "
                            "(training/content_distillation.py): FSDD, WORLD-warped voices; Gn needs no retraining")
    real.add_argument("--bundle", required=True, type=Path, help="bundle whose content encoder (and phone_prototypes.safetensors) teach")
    real.add_argument("--speech", required=True, type=Path, help="synthetic speech set from `talking-head corpus speech`")
    real.add_argument("--fsdd", type=Path, help="FSDD folder (its fsdd_alignments.json beside it); omit for synthetic voices only")
    real.add_argument("--work", required=True, type=Path, help="folder for the speech sets made on the way (resumable)")
    real.add_argument("--out", required=True, type=Path, help="encoder folder to write")
    real.add_argument("--warp-copies", type=int, default=1, help="WORLD-warped copies of each synthetic training utterance")
    real.add_argument("--warp-limit", type=int, default=0, help="warp at most this many utterances (0: all)")
    real.add_argument("--workers", type=int, default=2)
    real.add_argument("--epochs", type=int, default=2)
    real.add_argument("--lr", type=float, default=2e-4)
    real.add_argument("--minutes", type=float, help="stop and save after this many minutes of training")
    real.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    real.set_defaults(run=_run_real_voices)
    decode = kinds.add_parser("decode", help="phones a content encoder hears in a sound file")
    decode.add_argument("audio", type=Path)
    decode.add_argument("--encoder", required=True, type=Path)
    decode.set_defaults(run=_run_decode)


def _run_train(args: argparse.Namespace) -> int:
    from ..training.encoder_training import EncoderTrainingConfig, train_content_encoder, train_emotion_encoder

    cfg = EncoderTrainingConfig(epochs=args.epochs, lr=args.lr, minutes=args.minutes, train_feature_encoder=getattr(args, "train_feature_encoder", False))
    if args.which == "content":
        report = train_content_encoder(args.speech, args.out, cfg, resume=args.resume)
        print(f"phone error rate on held-out voices: {report['phone_error_rate_held_out']:.3f}")
    else:
        report = train_emotion_encoder(args.speech, args.out, args.init, cfg, resume=args.resume)
        print(f"emotion accuracy on held-out voices: {report['emotion_accuracy_held_out']:.3f}")
    print(f"wrote {args.out} (report: {args.out / 'training.json'})")
    return 0


def _run_real_voices(args: argparse.Namespace) -> int:
    from ..core.errors import TalkingHeadError
    from ..core.phone_features import FILE
    from ..training.content_distillation import distill_content_encoder
    from ..training.encoder_training import EncoderTrainingConfig
    from ..training.speech_mix import fsdd_speech_set, mix_speech_sets, warped_speech_set

    import json

    prototypes = args.bundle / FILE
    if not prototypes.is_file():
        raise TalkingHeadError(f"{args.bundle} has no {FILE}: build them first with `talking-head bundle phones {args.bundle} --speech SPEECH_SET`")
    teacher = args.bundle / json.loads((args.bundle / "config.json").read_text())["context_encoder"]
    work = args.work
    sets = [args.speech]
    if not (work / "warped" / "labels.jsonl").is_file():
        warped_speech_set(args.speech, work / "warped", copies=args.warp_copies, limit=args.warp_limit, workers=args.workers)
    sets.append(work / "warped")
    if args.fsdd is not None:
        if not (work / "fsdd" / "labels.jsonl").is_file():
            fsdd_speech_set(args.fsdd, args.fsdd.parent / "fsdd_alignments.json", work / "fsdd")
        sets.append(work / "fsdd")
    if not (work / "mixed" / "labels.jsonl").is_file():
        mix_speech_sets(sets, work / "mixed")
    cfg = EncoderTrainingConfig(epochs=args.epochs, lr=args.lr, minutes=args.minutes, warmup_steps=50)
    report = distill_content_encoder(teacher, work / "mixed", prototypes, args.out, cfg, resume=args.resume)
    print(f"wrote {args.out}: {report['utterances']} utterances, {'finished' if report['finished'] else 'stopped by --minutes (--resume continues)'}")
    return 0


def _check_ctc_head(encoder: Path) -> None:
    """Refuse an encoder without its CTC head (`lm_head`): transformers would give it a random
    one, and `decode` would print random phones without a word of warning. The packed demo
    bundle's context encoder is such a one (its head was dropped when it was packed)."""
    from safetensors import SafetensorError, safe_open

    from ..core.errors import TalkingHeadError

    weights = Path(encoder) / "model.safetensors"
    if not weights.is_file():
        raise TalkingHeadError(f"no encoder weights (model.safetensors) in {encoder}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            names = list(f.keys())
    except (SafetensorError, OSError) as exc:
        raise TalkingHeadError(f"cannot read the encoder weights {weights} ({exc})") from None
    if not any(name.startswith("lm_head.") for name in names):
        raise TalkingHeadError(
            f"the encoder in {encoder} has no CTC head (lm_head), so it cannot say which phones it hears; "
            "decode with the encoder folder `talking-head encoders content` wrote (a packed bundle's may lack it)"
        )


def _run_decode(args: argparse.Namespace) -> int:
    from transformers import Wav2Vec2ForCTC

    from ..core.audio import load_audio
    from ..training.encoder_training import decode_phones
    from ..core.encoders import load_pretrained, quiet_transformers

    _check_ctc_head(args.encoder)
    quiet_transformers()
    model = load_pretrained(Wav2Vec2ForCTC, str(args.encoder), "content encoder").eval()
    print(" ".join(decode_phones(model, load_audio(args.audio))))
    return 0
