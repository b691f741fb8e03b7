"""The `rnnkit` command: one thin subcommand per verb over the library.

    rnnkit train [DATA ...] [options]     train (or --resume, or --init-from) a model
    rnnkit sample RUN_DIR [options]       generate text
    rnnkit eval RUN_DIR [FILE]            loss, bits per character and perplexity
    rnnkit prepare DATA ...               encode text into a token file ahead of time

Errors the user can cause print one line and exit with status 1 (2 for bad command-line usage,
130 after an interruption that saved a checkpoint); a traceback means a bug in rnnkit.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .config import DataConfig, ModelConfig, SampleConfig, TrainConfig, add_arguments, overrides_from_args
from .errors import RnnkitError


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line instead of a usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_train(args) -> int:
    from .sample import sample_text
    from .train import train
    options = {}
    for cls in (ModelConfig, DataConfig, TrainConfig):
        options.update(overrides_from_args(args, cls))
    run = train(args.data or None, out=args.out, resume=args.resume, init_from=args.init_from, force=args.force,
                progress=not args.no_progress, **options)
    length = options.get("sample_length", TrainConfig.sample_length)
    if length:
        print(f"--- sample from {run.dir} (best weights, temperature 0.8) ---", file=sys.stderr)
        sample_text(run.model, length=length, temperature=0.8, seed=1, on_text=_write)
        _write("\n")
    return 0


def _cmd_sample(args) -> int:
    from .sample import sample
    options = overrides_from_args(args, SampleConfig)
    if args.prime_file:
        if "prime" in options:
            raise RnnkitError("give either --prime or --prime-file, not both")
        try:
            with open(args.prime_file, encoding="utf-8") as fh:
                options["prime"] = fh.read()
        except OSError as exc:
            raise RnnkitError(f"cannot read --prime-file {args.prime_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RnnkitError(f"--prime-file {args.prime_file} is not valid UTF-8") from None
    sample(args.run_dir, checkpoint=args.checkpoint, on_text=_write, **options)
    _write("\n")
    return 0


def _cmd_eval(args) -> int:
    from .evaluate import evaluate
    result = evaluate(args.run_dir, args.file, checkpoint=args.checkpoint, unknown=args.unknown)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['split']}: {result['nats']:.4f} nats/char, {result['bpc']:.4f} bits/char, "
              f"perplexity {result['perplexity']:.3f} ({result['chars']:,} characters)")
    return 0


def _cmd_prepare(args) -> int:
    from .data.corpus import prepare_text
    corpus = prepare_text(args.data, out=args.out, **overrides_from_args(args, DataConfig))
    a, b = corpus.bounds
    print(f"{len(corpus.tokens):,} tokens ({corpus.tokens.dtype}), vocabulary {len(corpus.vocab)} "
          f"({corpus.vocab.kind}), train/val/test {a:,}/{b - a:,}/{len(corpus.tokens) - b:,} -> {corpus.directory}")
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Train, sample and evaluate character-level RNN/LSTM/GRU "
                     "language models.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    p = sub.add_parser("train", help="train a model on text", description=(
        "Train a character-level language model. With no DATA, trains on the bundled tiny Shakespeare. "
        "Stops at the first of --max-steps, --max-epochs and --budget (10 epochs if none is given), then "
        "prints a sample. Interrupt with Ctrl-C to save a checkpoint; continue with --resume."))
    p.add_argument("data", nargs="*", help="text files or directories (see --glob)")
    p.add_argument("--out", "-o", metavar="RUN_DIR", help="run directory to create (default: runs/<date-time>)")
    p.add_argument("--force", action="store_true", help="replace an existing run directory given as --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    p.add_argument("--init-from", metavar="RUN_DIR",
                   help="start from RUN_DIR's weights and vocabulary (fine-tune on new data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_arguments(p, ModelConfig, "model")
    add_arguments(p, DataConfig, "data")
    add_arguments(p, TrainConfig, "training")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="generate text from a trained model", description=(
        "Generate text from a run directory, one character at a time; characters stream to stdout."))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by rnnkit train")
    p.add_argument("--prime-file", metavar="FILE", help="read the prime text from FILE (UTF-8)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="weights with the best validation loss, or the latest (default: best)")
    add_arguments(p, SampleConfig, "sampling")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("eval", help="loss, bits per character and perplexity", description=(
        "Evaluate a trained model on its run's test split, or on FILE."))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by rnnkit train")
    p.add_argument("file", metavar="FILE", nargs="?", help="text to evaluate on (default: the run's test split)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="weights with the best validation loss, or the latest (default: best)")
    p.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="characters of FILE that the vocabulary lacks: error (default) or skip")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("prepare", help="encode text into a token file ahead of training", description=(
        "Build the vocabulary and token file for DATA (cached, so training reuses it)."))
    p.add_argument("data", nargs="+", help="text files or directories (see --glob)")
    p.add_argument("--out", metavar="DIR", help="write tokens.bin, vocab.json and meta.json here "
                   "(default: the cache, $RNNKIT_CACHE or ~/.cache/rnnkit)")
    add_arguments(p, DataConfig, "data")
    p.set_defaults(func=_cmd_prepare)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RnnkitError as exc:
        from .train import Interrupted
        print(f"rnnkit {args.command}: {'' if isinstance(exc, Interrupted) else 'error: '}{exc}", file=sys.stderr)
        return 130 if isinstance(exc, Interrupted) else 1
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rnnkit sample RUN | head`: the reader left, which is fine
        sys.stdout = None
        return 0
    except OSError as exc:  # the environment failed: disk full, permission denied, read-only file system
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rnnkit {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
