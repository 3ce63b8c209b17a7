"""`talking-head encoders content | emotion | decode`: train the demo bundle's wav2vec2 encoders."""

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
        p.add_argument("--epochs", type=int, default=6)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--minutes", type=float, help="stop and save after this many minutes of training")
        p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
        p.set_defaults(run=_run_train, which=name)
    decode = kinds.add_parser("decode", help="phones a content encoder hears in a sound file")
    decode.add_argument("audio", type=Path)
    decode.add_argument("--encoder", required=True, type=Path)
    decode.set_defaults(run=_run_decode)


def _run_train(args: argparse.Namespace) -> int:
    from ..training.encoder_training import EncoderTrainingConfig, train_content_encoder, train_emotion_encoder

    cfg = EncoderTrainingConfig(epochs=args.epochs, lr=args.lr, minutes=args.minutes)
    if args.which == "content":
        report = train_content_encoder(args.speech, args.out, cfg, resume=args.resume)
        print(f"phone error rate on held-out voices: {report['phone_error_rate_held_out']:.3f}")
    else:
        report = train_emotion_encoder(args.speech, args.out, args.init, cfg, resume=args.resume)
        print(f"emotion accuracy on held-out voices: {report['emotion_accuracy_held_out']:.3f}")
    print(f"wrote {args.out} (report: {args.out / 'training.json'})")
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
