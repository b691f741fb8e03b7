"""The `rnnkit` command: one thin subcommand per verb over the library.

    rnnkit train [DATA ...] [options]     train (or --resume, or --init-from) a model; --task lm|classify|generate|series|seq2seq|caption|vqa|glimpse|video
    rnnkit sample RUN_DIR [options]       generate text (language models; generators, --class C)
    rnnkit eval RUN_DIR [FILE]            the task's metrics: loss and bits per character, accuracy, MSE ...
    rnnkit predict RUN_DIR TEXT           the most likely classes (classifiers)
    rnnkit translate RUN_DIR TEXT         the outputs of an encoder-decoder (seq2seq), greedy or beam search
    rnnkit caption RUN_DIR IMAGE ...      the captions of a caption run for images, and where it looks
    rnnkit answer RUN_DIR IMAGE QUESTION  a visual question answerer's answers
    rnnkit data clips|scenes|digits --out DIR   synthetic data sets: video clips, captioned and questioned scenes,
                                          cluttered digits
    rnnkit serve RUN_DIR [RUN_DIR ...]    an HTTP server (streaming generation, prediction, scoring) with a web page
    rnnkit prepare DATA ...               encode text into a token file ahead of time
    rnnkit inspect RUN_DIR --text FILE    HTML report of the cells over a text
    rnnkit cells RUN_DIR --text FILE      find interpretable cells
    rnnkit gates RUN_DIR --text FILE      gate saturation statistics
    rnnkit ngram TRAIN --test FILE        n-gram baselines
    rnnkit compare RUN_DIR --train F --test F   RNN against the best n-gram

Errors the user can cause print one line and exit with status 1 (2 for bad command-line usage and
for asking a run for what it cannot do, 130 after an interruption that saved a checkpoint); a traceback means a bug in rnnkit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .config import (DEFAULT_UNITS, MIN_STRETCHES, MIN_SUPPORT, TASK_CONFIGS, DataConfig, SampleConfig, ServeConfig,
                     TrainConfig, add_arguments, build, overrides_from_args)
from .errors import Interrupted, RnnkitError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line instead of a usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_train(args) -> int:
    # A bad value is reported before PyTorch is imported (over a second). The task is not known yet, and
    # a flag several tasks share may take values only some of them accept (--tokens bpe: lm, not classify),
    # so a value is bad here if no config that has the field accepts it; the task's own config checks the rest.
    options, accepted, refused = {}, set(), {}
    for cls in (*_task_config_classes(), TrainConfig):
        given = overrides_from_args(args, cls)
        options.update(given)
        fits = {name: value for name, value in given.items() if _accepts(cls, name, value)}
        refused.update({name: cls for name in given if name not in fits and name not in refused})
        accepted |= set(fits)
        build(cls, fits)  # the values this config accepts, together (e.g. --byte-level with --tokens bpe)
    for name, cls in refused.items():
        if name not in accepted:
            build(cls, {name: options[name]})  # raises its one-line error
    from .distributed import is_main_process
    from .sample import sample_text
    from .train import train
    run = train(args.data or None, out=args.out, task=args.task, resume=args.resume, init_from=args.init_from,
                extend_vocab=args.extend_vocab, force=args.force, progress=not args.no_progress, **options)
    length = options.get("sample_length", TrainConfig.sample_length)
    if not (length and is_main_process()):  # under torchrun, process 0 alone prints the sample
        return 0
    if hasattr(run.model, "class_index"):  # a generator: a few examples (of each class)
        from .tasks.generate import show_samples
        print(f"--- samples from {run.dir} (best weights, temperature 0.8) ---", file=sys.stderr)
        _write(show_samples(run.model, seed=1, temperature=0.8) + "\n")
    elif hasattr(run.model, "sample"):  # a language model: show what it learned
        print(f"--- sample from {run.dir} (best weights, temperature 0.8) ---", file=sys.stderr)
        sample_text(run.model, length=length, temperature=0.8, seed=1, on_text=_write)
        _write("\n")
    return 0


def _accepts(cls, name: str, value) -> bool:
    try:
        build(cls, {name: value})
        return True
    except RnnkitError:
        return False


def _task_config_classes() -> list:
    """Every task's model and data config classes, each once."""
    return list(dict.fromkeys(cls for pair in TASK_CONFIGS.values() for cls in pair))


def _cmd_sample(args) -> int:
    options = overrides_from_args(args, SampleConfig)
    if args.prime_file:
        if "prime" in options:
            raise RnnkitError("give either --prime or --prime-file, not both")
        try:  # as bytes: the run's own rule decides what happens to its line endings
            with open(args.prime_file, "rb") as fh:
                options["prime"] = fh.read().decode("utf-8")
        except OSError as exc:
            raise RnnkitError(f"cannot read --prime-file {args.prime_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RnnkitError(f"--prime-file {args.prime_file} is not valid UTF-8") from None
    opts = build(SampleConfig, options)  # bad values are reported before anything slow is imported
    from .api import sample, samples
    from .checkpoint import task_of
    if task_of(args.run_dir) == "generate":  # short texts (words, names): one per line
        texts = samples(args.run_dir, checkpoint=args.checkpoint, fast=not args.plain, label=args.label, **options)
        for i, text in enumerate(texts, 1):
            _write((json.dumps({"sample": i, "class": args.label, "text": text}, ensure_ascii=False)
                    if args.jsonl else text) + "\n")
        return 0
    if args.label is not None:
        from .errors import UsageError
        raise UsageError("--class is for generators (--task generate); this run is a language model")
    if opts.num_samples == 1 and not args.jsonl:  # one sample streams as it is generated
        sample(args.run_dir, checkpoint=args.checkpoint, on_text=_write, fast=not args.plain, **options)
        _write("\n")
        return 0
    texts = samples(args.run_dir, checkpoint=args.checkpoint, fast=not args.plain, **options)
    for i, text in enumerate(texts, 1):
        if args.jsonl:
            _write(json.dumps({"sample": i, "text": text}, ensure_ascii=False) + "\n")
        else:  # a header line before each, so samples that end in blank lines stay apart
            _write(f"--- sample {i} of {len(texts)} ---\n{text}\n")
    return 0


def _cmd_eval(args) -> int:
    from .api import evaluate
    result = evaluate(args.run_dir, args.file, checkpoint=args.checkpoint, unknown=args.unknown, horizon=args.horizon,
                      judge=args.judge, num_samples=args.samples, beam=args.beam, ignore_stress=args.ignore_stress,
                      glimpses_png=args.glimpses)
    if args.plot:
        if "horizon" not in result:
            raise RnnkitError("--plot is for forecasters (series runs)")
        from .tasks.series import plot_forecast
        plot_forecast(result, args.plot)
    if args.confusion:
        if "confusion" not in result:
            raise RnnkitError("--confusion is for classifiers; this run is a language model")
        from .tasks.classify import plot_confusion
        plot_confusion(result, args.confusion)
    if args.json:
        print(json.dumps(result))
    elif "horizon" in result:  # a forecaster
        print(f"{result['split']}: {result['horizon']} step(s) ahead, MSE {result['mse']:.4g}, MAE {result['mae']:.4g}; "
              f"persistence MSE {result['persistence_mse']:.4g}, MAE {result['persistence_mae']:.4g} "
              f"({result['steps']:,} steps)")
    elif "per_type" in result:  # visual question answering
        print(f"{result['split']} (inputs: {result['inputs']}): accuracy {result['accuracy']:.4f}; the majority "
              f"answer of each question type {result['majority_accuracy']:.4f} ({result['questions']:,} questions)")
        for kind, r in result["per_type"].items():
            print(f"  {kind:<12} {r['accuracy']:.4f}   majority {r['majority']:.4f}   ({r['questions']:,} questions)")
    elif "splits" in result:  # a captioner
        how = f"beam {result['beam']}" if result["beam"] else "greedy"
        for name, r in result["splits"].items():
            print(f"{name} ({how}): BLEU-1 {r['bleu1']:.2f}, BLEU-2 {r['bleu2']:.2f}, BLEU-3 {r['bleu3']:.2f}, BLEU-4 "
                  f"{r['bleu4']:.2f}, CIDEr-D {r['cider']:.3f}, exact match {r['exact_match']:.4f}, loss "
                  f"{r['nats']:.4f} nats/token ({r['images']:,} images)")
            for e in r["examples"][:3]:
                print(f"  {'=' if e['output'] in e['references'] else 'x'} {e['image']}: {e['output']}   "
                      f"(reference: {e['references'][0]})")
    elif "token_error_rate" in result:  # an encoder-decoder
        how = f"beam {result['beam']}" if result["beam"] else "greedy"
        print(f"{result['split']} ({how}{', stress ignored' if result['ignore_stress'] else ''}): exact match "
              f"{result['exact_match']:.4f} (sequence error rate {result['sequence_error_rate']:.4f}), token error "
              f"rate {result['token_error_rate']:.4f}, BLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f}, loss "
              f"{result['nats']:.4f} nats/token ({result['sources']:,} sources, {result['pairs']:,} pairs)")
        for e in result["examples"][:5]:
            mark = "=" if e["output"] in e["references"] else "x"
            print(f"  {mark} {e['source']} -> {e['output']}   (reference: {' | '.join(e['references'])})")
    elif "samples" in result:  # a generator
        print(_generator_table(result))
    elif "accuracy" in result:  # a classifier
        from .tasks.classify import confusion_table
        print(f"{result['split']}: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}, "
              f"loss {result['loss']:.4f} nats/example, calibration error {result['ece']:.4f} "
              f"({result['examples']:,} examples)")
        print(f"\n{'class':<16} {'precision':>9} {'recall':>9} {'F1':>9} {'support':>8}")
        for name, c in result["per_class"].items():
            print(f"{name:<16} {c['precision']:>9.3f} {c['recall']:>9.3f} {c['f1']:>9.3f} {c['support']:>8,}")
        print("\nconfusion matrix (rows: true class, columns: predicted)\n" + confusion_table(result))
        if "on_object" in result:
            print("\nglimpses on the object (within half the finest patch): " +
                  ", ".join(f"{t + 1}: {v:.3f}" for t, v in enumerate(result["on_object"])))
    elif "nats_per_token" in result:  # a language model of word or bpe tokens
        print(f"{result['split']}: {result['nats']:.4f} nats/char, {result['bpc']:.4f} bits/char; "
              f"{result['nats_per_token']:.4f} nats/token, perplexity {result['perplexity_per_token']:.3f} per token "
              f"({result['tokens']:,} tokens, {result['chars']:,} characters)")
    else:
        print(f"{result['split']}: {result['nats']:.4f} nats/char, {result['bpc']:.4f} bits/char, "
              f"perplexity {result['perplexity']:.3f} ({result['chars']:,} characters)")
    return 0


def _generator_table(result: dict) -> str:
    """A generator's eval: the test loss, then per class the loss and what its samples are."""
    lines = [f"{result['split']}: {result['nats']:.4f} nats/char, {result['bpc']:.4f} bits/char "
             f"({result['examples']:,} examples, {result['chars']:,} characters incl. each end"
             + (f"; {result['nats_per_token']:.4f} nats/token over {result['tokens']:,} tokens"
                if "nats_per_token" in result else "") + ")"]
    per_class, judge = result.get("per_class", {}), result.get("judge")
    head = f"\n{'class':<16} {'nats/char':>9} {'examples':>8}  samples: {'seen':>5} {'held-out':>8} {'novel':>6}"
    lines.append(head + (f" {'judged':>6}" if judge else "") + "  e.g.")
    for name, s in result["samples"].items():
        c = per_class.get(name)
        loss = f"{c['nats']:>9.4f} {c['examples']:>8,}" if c else f"{'':>9} {'':>8}"
        row = f"{name:<16} {loss}  {'':8} {s['in_train']:>5.1%} {s['held_out']:>8.1%} {s['novel']:>6.1%}"
        lines.append(row + (f" {judge[name]:>6.1%}" if judge else "") + "  " + " ".join(s["texts"][:4]))
    if judge:
        lines.append(f"\njudged: the share of samples that {result['judge_run']} classifies as the class asked "
                     f"for (mean {judge['mean']:.1%})")
    return "\n".join(lines)


def _cmd_predict(args) -> int:
    if (args.text is None) == (args.input is None):
        raise RnnkitError("give a TEXT to classify or --input FILE (one text per line), not both")
    _check_positive(top_k=args.top_k)
    from .data.corpus import normalize_newlines, read_text
    from .tasks import load
    model = load(args.run_dir, args.checkpoint)
    if not hasattr(model, "predict"):
        from .checkpoint import task_of
        from .errors import UsageError
        raise UsageError(f"{args.run_dir} was trained for the {task_of(args.run_dir)} task; predict needs a "
                         "classifier (try rnnkit sample)")
    if model.config.num_features:
        raise RnnkitError(f"{args.run_dir} classifies sequences of vectors, not text; use model.predict(arrays) in "
                          "Python, or rnnkit eval RUN FILE.npz")
    texts = [args.text] if args.text is not None else \
        [line for line in normalize_newlines(read_text(args.input)).split("\n") if line.strip()]
    rows = [t + "\t" + "\t".join(f"{c}\t{p:.4f}" for c, p in top) for t, top in
            zip(texts, model.predict(texts, top_k=args.top_k))]
    if args.output:
        from .io import atomic_write_bytes
        atomic_write_bytes(args.output, "".join(r + "\n" for r in rows).encode("utf-8"))
        print(f"wrote {len(rows):,} predictions to {args.output}")
    else:
        print("\n".join(rows))
    return 0


def _check_decoding(args) -> None:
    """translate and caption: --beam, --nbest and --temperature that make sense together."""
    _check_positive(nbest=args.nbest)
    if args.beam < 0 or args.temperature < 0:
        raise RnnkitError("--beam and --temperature must be >= 0")
    if args.beam and args.temperature:
        raise RnnkitError("--temperature samples; --beam searches: give one of them")
    if args.nbest > max(args.beam, 1):
        raise RnnkitError(f"--nbest {args.nbest} needs --beam {args.nbest} or wider")


def _cmd_translate(args) -> int:
    if (args.text is None) == (args.input is None):
        raise RnnkitError("give a TEXT to translate or --input FILE (one source per line), not both")
    _check_decoding(args)
    if args.attention and args.text is None:
        raise RnnkitError("--attention draws the map of one TEXT; give the text instead of --input")
    from .checkpoint import task_of
    from .errors import UsageError
    task = task_of(args.run_dir)
    if task != "seq2seq":
        raise UsageError(f"{args.run_dir} was trained for the {task} task; translate needs a seq2seq run")
    from .data.corpus import normalize_newlines, read_text
    from .tasks import load
    model = load(args.run_dir, args.checkpoint)
    if args.attention and model.config.attention == "none":
        raise UsageError(f"{args.run_dir} has no attention (--attention none): there is no map to draw")
    sources = [args.text] if args.text is not None else \
        [line.strip() for line in normalize_newlines(read_text(args.input)).split("\n") if line.strip()]
    if args.unknown == "error":
        from .tasks.seq2seq import check_known
        check_known(model.source_vocab, sources)
    outputs = model.translate(sources, beam=args.beam, nbest=args.nbest, temperature=args.temperature,
                              max_length=args.max_length or None, seed=args.seed)
    rows = [s + "".join(f"\t{o}\t{score:.4f}" for o, score in outs) for s, outs in zip(sources, outputs)]
    if args.output:
        from .io import atomic_write_bytes
        atomic_write_bytes(args.output, "".join(r + "\n" for r in rows).encode("utf-8"))
        print(f"wrote {len(rows):,} translations to {args.output}")
    else:
        print("\n".join(rows))
    if args.attention:
        from .inspect.attention import attention_map_of, write_map
        page = Path(args.attention).with_suffix(".html")
        best = outputs[0][0][0]  # the map of the output printed (the best of the beam, or the sample)
        write_map([attention_map_of(model, args.text, best)], args.attention, page, f"{args.text} -> {best}")
        print(f"wrote {args.attention}, {page}", file=sys.stderr)
    return 0


def _cmd_prepare(args) -> int:
    from .data.corpus import prepare_text
    corpus = prepare_text(args.data, out=args.out, **overrides_from_args(args, DataConfig))
    a, b = corpus.bounds
    print(f"{len(corpus.tokens):,} tokens ({corpus.tokens.dtype}), vocabulary {len(corpus.vocab)} "
          f"({corpus.vocab.kind}), train/val/test {a:,}/{b - a:,}/{len(corpus.tokens) - b:,} -> {corpus.directory}")
    return 0


def _cmd_data(args) -> int:
    from .data.clips import write_clips
    _check_positive(num=args.num)
    out = Path(args.out)
    if args.kind == "scenes":
        return _data_scenes(args, out)
    if args.kind == "digits":
        return _data_digits(args, out)
    size = args.size or 32
    if args.frames < 3 or size < 12:
        raise RnnkitError(f"clips need --frames >= 3 and --size >= 12, got {args.frames} and {size}")
    _refuse_overwrite(out, ("train.npz", "val.npz", "test.npz", "meta.json"), args.force)
    meta = write_clips(out, args.num, args.seed, args.frames, size)
    sizes = meta["sizes"]
    print(f"{args.num:,} clips of {args.frames} frames, {size} x {size} pixels, {len(meta['classes'])} "
          f"motions: train/val/test {sizes['train']:,}/{sizes['val']:,}/{sizes['test']:,} -> {out}")
    return 0


def _refuse_overwrite(out: Path, names: tuple, force: bool) -> None:
    """A data set's files already in `out` are kept unless --force."""
    present = [n for n in names if (out / n).exists()]
    if present and not force:
        raise RnnkitError(f"{out} already holds {', '.join(present)}; pass --force to overwrite it")


def _data_digits(args, out: Path) -> int:
    from .data.digits import write_digits
    size, clutter = args.size or 24, 4 if args.clutter is None else args.clutter
    if not 8 <= size <= 512 or clutter < 0 or args.num < 10:
        raise RnnkitError(f"digits need --size from 8 to 512, --clutter >= 0 and --num >= 10, got {size}, {clutter} "
                          f"and {args.num}")
    _refuse_overwrite(out, ("train.npz", "val.npz", "test.npz", "meta.json"), args.force)
    meta = write_digits(out, args.num, args.seed, size, clutter)
    n = meta["sizes"]
    print(f"{args.num:,} canvases of {size} x {size} pixels, one digit and {clutter} pieces of clutter each: "
          f"train/val/test {n['train']:,}/{n['val']:,}/{n['test']:,} (from {meta['digit_images']['train']:,}/"
          f"{meta['digit_images']['val']:,}/{meta['digit_images']['test']:,} digit images) -> {out}")
    return 0


def _data_scenes(args, out: Path) -> int:
    from .data.scenes import write_scenes
    size = args.size or 48
    args.clutter = args.clutter or 0
    if size < 24 or args.clutter < 0 or not 0 <= args.noise < 1:
        raise RnnkitError(f"scenes need --size >= 24, --clutter >= 0 and --noise in [0, 1), got {size}, "
                          f"{args.clutter} and {args.noise}")
    _refuse_overwrite(out, ("captions.json", "meta.json", "images", "vqa"), args.force)
    meta = write_scenes(out, args.num, args.seed, size, args.clutter, args.noise)
    n, q = meta["images_per_split"], meta["questions_per_split"]
    print(f"{args.num:,} scenes of {size} x {size} pixels: train/val/test/unseen {n['train']:,}/{n['val']:,}/"
          f"{n['test']:,}/{n['unseen']:,} images, {sum(q.values()):,} questions -> {out}")
    return 0


def _cmd_caption(args) -> int:
    from .checkpoint import task_of
    from .data.captions import load_image
    from .errors import UsageError
    from .tasks import load
    _check_decoding(args)
    task = task_of(args.run_dir)
    if task != "caption":
        raise UsageError(f"{args.run_dir} was trained for the {task} task; caption needs a caption run")
    model = load(args.run_dir, args.checkpoint)
    if args.attention and model.config.attention == "none":
        raise UsageError(f"{args.run_dir} has no attention (--attention none): there is no map to draw")
    if args.attention and len(args.images) != 1:
        raise RnnkitError("--attention draws the attention of one image; give one IMAGE")
    from .tasks.caption import read_run
    size = read_run(args.run_dir).data.image_size
    images = [load_image(Path(p), size) for p in args.images]
    shape = tuple(model.config.image_shape)
    for path, im in zip(args.images, images):
        if im.shape != shape:
            raise RnnkitError(f"{path} is {im.shape[1]} x {im.shape[0]} pixels; this model reads {shape[1]} x "
                              f"{shape[0]} (its run resized nothing: resize the image first)")
    import numpy as np
    outputs = model.caption(np.stack(images), beam=args.beam, nbest=args.nbest, temperature=args.temperature,
                            max_length=args.max_length or None, seed=args.seed)
    for path, outs in zip(args.images, outputs):
        print(path + "".join(f"\t{o}\t{score:.4f}" for o, score in outs))
    if args.attention:
        from .inspect.attention import draw_image_attention
        drawn = draw_image_attention(model, images[0], args.attention, beam=args.beam)
        print(f"wrote {args.attention}, {drawn['page']}", file=sys.stderr)
    return 0


def _cmd_answer(args) -> int:
    from .checkpoint import task_of
    from .data.captions import load_image
    from .errors import UsageError
    from .tasks import load
    _check_positive(top_k=args.top_k)
    task = task_of(args.run_dir)
    if task != "vqa":
        raise UsageError(f"{args.run_dir} was trained for the {task} task; answer needs a vqa run")
    from .tasks.vqa import read_run
    image = load_image(Path(args.image), read_run(args.run_dir).data.image_size)
    model = load(args.run_dir, args.checkpoint)
    if list(image.shape) != list(model.config.image_shape):
        shape = model.config.image_shape
        raise RnnkitError(f"{args.image} is {image.shape[1]} x {image.shape[0]} pixels; this model reads {shape[1]} x "
                          f"{shape[0]} (resize the image first)")
    if args.attention and model.config.attention == "none":
        raise RnnkitError(f"{args.run_dir} has no attention over the image (trained with --attention none)")
    weights = [] if args.attention else None
    answers = model.answer(image[None], [args.question], top_k=args.top_k, attention=weights)[0]
    for answer, p in answers:
        print(f"{answer}\t{p:.4f}")
    if args.attention:
        from .tasks.vqa import plot_attention
        plot_attention([(image, None, args.question), (image, weights[0], f"answer: {answers[0][0]} (attention, "
                                                           f"max {weights[0].max():.2f})")], args.attention)
    return 0


def _cmd_export(args) -> int:
    from .export import export_run
    meta = export_run(args.run_dir, args.out, args.format, args.checkpoint, args.force)
    graphs = [f for f in meta["files"] if f.endswith(".onnx")]
    if "encoder" in meta:
        parts = list(zip(graphs, (meta["encoder"], meta["decoder"])))
    else:  # sequence.onnx and step.onnx share their inputs and outputs; start.onnx maps classes to h0 [c0]
        parts = [(" and ".join(g for g in graphs if g != "start.onnx"), meta)]
    print(f"{meta['model']}: " + "; ".join(f"{graph} (inputs {', '.join(part['inputs'])}; outputs "
                                            f"{', '.join(part['outputs'])})" for graph, part in parts))
    print(f"{', '.join(meta['files'] + ['config.json', 'export.json'])} -> {args.out}")
    return 0


def _cmd_serve(args) -> int:
    config = build(ServeConfig, overrides_from_args(args, ServeConfig))  # bad values before anything loads
    from .serve import serve
    serve(args.run_dirs, config, checkpoint=args.checkpoint, log=lambda m: print(m, flush=True))
    return 0


def _cmd_inspect(args) -> int:
    from .tasks import load
    from .inspect.run import feature_set, inspect
    _check_positive(max_chars=args.max_chars, search_chars=args.search_chars)
    _check_support(args)
    units = 0 if args.units.strip().lower() == "all" else _int_option("units", args.units)
    if units < 0:
        raise RnnkitError(f"--units must be a number >= 0 or 'all', got {args.units}")
    if args.beam < 0:
        raise RnnkitError(f"--beam must be >= 0, got {args.beam}")
    from .checkpoint import task_of
    if task_of(args.run_dir) == "caption":
        raise UsageError(f"{args.run_dir} is a caption run: rnnkit caption RUN IMAGE --attention map.png draws where it "
                         "looks")
    model = load(args.run_dir, args.checkpoint)
    if args.beam and not hasattr(model, "translate"):
        raise UsageError(f"--beam is for seq2seq runs; {args.run_dir} is not one")
    if hasattr(model, "predict"):  # a classifier: its prediction as it reads each line
        from .inspect.reading import inspect_classifier
        result = inspect_classifier(model, args.text, args.out, max_chars=args.max_chars)
        for text, label, p in result["texts"][:20]:
            print(f"{text}\t{label}\t{p:.4f}")
        print("wrote " + ", ".join(str(p) for p in result["written"]))
        return 0
    if hasattr(model, "translate"):  # an encoder-decoder: where its attention looks for each line
        from .inspect.attention import inspect_seq2seq
        result = inspect_seq2seq(model, args.text, args.out, max_chars=args.max_chars, beam=args.beam,
                                 unknown=args.unknown, run_name=str(args.run_dir))
        for m in result["maps"][:20]:
            print(f"{m['source']}\t{m['output']}")
        print("wrote " + ", ".join(str(p) for p in result["written"]))
        return 0
    _only_language_models(args, "inspect reads language models, classifiers and seq2seq runs")
    result = inspect(model, args.text, args.out, max_chars=args.max_chars, search_chars=args.search_chars,
                     features=feature_set(args.features), npz=args.npz, lstmvis=args.lstmvis, units=units,
                     min_support=args.min_support, min_stretches=args.min_stretches, unknown=args.unknown)
    for line in result["gates"]:
        print(line)
    for s in result["cells"][:5]:
        print(s.describe())
    if result["left_out"]:
        print(result["left_out"])
    print("wrote " + ", ".join(str(p) for p in result["written"]))
    return 0


def _cmd_cells(args) -> int:
    from .tasks import load
    from .inspect.cells import best_table
    from .data.corpus import read_text
    from .inspect.run import feature_set, find_cells, plot_best_cells
    _check_positive(max_chars=args.max_chars, top=args.top)
    _check_support(args)
    _only_language_models(args, "cells searches a language model's cells")
    features = feature_set(args.features, [f.strip() for f in args.only.split(",")] if args.only else None)
    found = find_cells(load(args.run_dir, args.checkpoint), read_text(args.text, args.max_chars), features,
                       args.kinds, args.min_support, args.min_stretches, args.unknown)
    if not found.scores and found.left_out:
        raise RnnkitError(f"no feature has enough support in this text to be scored ({found.left_out_line()}); "
                          "try a longer --max-chars or a lower --min-support / --min-stretches")
    if not found.scores:
        raise RnnkitError("no feature varies over this text; try a longer --max-chars or other --features")
    print(best_table(found))
    results = found.scores
    if args.top > 1:
        for name, scores in results.items():
            print(f"\n{name}: top {args.top}")
            for s in scores[:args.top]:
                print("  " + s.describe())
    if args.json:
        from dataclasses import asdict
        from .io import atomic_write_json
        atomic_write_json(args.json, {k: [asdict(s) for s in v[:args.top]] for k, v in results.items()})
    if args.plot:
        plot_best_cells(found, args.plot)
    return 0


def _only_language_models(args, what: str, tokens: bool = True) -> None:
    """A one-line error (exit 2) for a command that looks at a language model's cells, given another task's run
    (or, unless `tokens`, a language model of word or bpe tokens)."""
    from .checkpoint import task_of
    from .errors import UsageError
    task = task_of(args.run_dir)
    if task != "lm":
        raise UsageError(f"{args.run_dir} was trained for the {task} task; {what}")
    from .checkpoint import read_config_json
    level = read_config_json(args.run_dir).get("data", {}).get("tokens", "char")
    if not tokens and level in ("word", "bpe"):
        raise UsageError(f"{args.run_dir} models {level} tokens; {args.command} reads character and byte models")


def _add_support(p) -> None:
    """The cell search's support rule (rnnkit.inspect.cells), for `cells` and `inspect`."""
    p.add_argument("--min-support", type=int, default=MIN_SUPPORT, metavar="N",
                   help="score a feature only if at least N characters differ from its most common value, so "
                   "that a feature seen only in the first, warming-up characters is not scored (0: no minimum; "
                   f"default: {MIN_SUPPORT})")
    p.add_argument("--min-stretches", type=int, default=MIN_STRETCHES, metavar="N",
                   help="... and they fall in at least N separate stretches of the text (0: no minimum; "
                   f"default: {MIN_STRETCHES}); features left out are named with their support")


def _check_support(args) -> None:
    """--min-support and --min-stretches of `cells` and `inspect`: 0 turns a rule off."""
    for name in ("min_support", "min_stretches"):
        if getattr(args, name) < 0:
            raise RnnkitError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")


def _int_option(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise RnnkitError(f"--{name} must be a number >= 0 or 'all', got {value}") from None


def _cmd_gates(args) -> int:
    from .tasks import load
    from .inspect import gates
    from .data.corpus import read_text
    from .inspect.activations import activations
    _check_positive(max_chars=args.max_chars)
    _only_language_models(args, "gates measures a language model's gates")
    model = load(args.run_dir, args.checkpoint)
    if model.config.cell == "rnn":
        raise RnnkitError("a vanilla RNN has no gates; gate saturation needs an lstm, gru, mingru or minlstm run")
    stats = gates.saturation(activations(model, read_text(args.text, args.max_chars), unknown=args.unknown),
                             model.config.cell)
    print("\n".join(gates.summary(stats)))
    if args.out:
        gates.plot(stats, args.out)
        print(f"wrote {args.out}")
    return 0


def _parse_orders(spec: str) -> tuple[int, int]:
    """'20' or '1..20' -> (lo, hi)."""
    try:
        lo, _, hi = spec.partition("..")
        lo, hi = (int(lo), int(hi)) if hi else (1, int(lo))
    except ValueError:
        raise RnnkitError(f"-n must look like 20 or 1..20, got {spec!r}") from None
    if not 1 <= lo <= hi <= 64:
        raise RnnkitError(f"-n must satisfy 1 <= lo <= hi <= 64, got {spec!r}")
    return lo, hi


def _cmd_ngram(args) -> int:
    from .inspect.ngram import joint_vocab, loss_by_order
    from .data.corpus import normalize_newlines, read_text
    from .inspect.run import ngram_table, plot_ngram_orders
    lo, hi = _parse_orders(args.n)
    train, test = read_text(args.train), read_text(args.test)
    if not args.keep_crlf:
        train, test = normalize_newlines(train), normalize_newlines(test)
    vocab = joint_vocab(train, test)
    by_order = loss_by_order(vocab.encode(train), vocab.encode(test), hi, len(vocab))
    shown = {n: v for n, v in by_order.items() if n >= lo}
    print(ngram_table(shown))
    if args.plot:
        plot_ngram_orders(shown, args.plot)
    return 0


def _cmd_compare(args) -> int:
    from .tasks import load
    from .data.corpus import read_text
    from .inspect.compare import compare
    _, hi = _parse_orders(args.n)
    _only_language_models(args, "compare lines a language model up against n-grams", tokens=False)  # char n-grams
    result = compare(load(args.run_dir, args.checkpoint), read_text(args.train), read_text(args.test), hi,
                     unknown=args.unknown)
    print(result.table())
    if args.plot:
        result.plot(args.plot)
    return 0


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value < 1:
            raise RnnkitError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _add_run_dir(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by rnnkit train")


def _add_unknown(p, what: str) -> None:
    p.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help=f"characters of {what} that the model's vocabulary lacks: error (default) or skip them")


def _add_checkpoint(p) -> None:
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="weights with the best validation loss, or the latest (default: best)")


def _add_decoding(p, per: str, outputs: str, longest: str) -> None:
    """translate's and caption's decoding flags: --beam, --nbest, --temperature, --max-length, --seed."""
    p.add_argument("--beam", type=int, default=0, help=f"beam search with this many hypotheses per {per}, batched "
                   f"over {per}s and beam (default: 0, greedy)")
    p.add_argument("--nbest", type=int, default=1, help=f"{outputs} per {per}, best first (needs --beam at least as "
                   "wide; default: 1)")
    p.add_argument("--temperature", type=float, default=0.0, help="sample each token at this temperature instead "
                   "of taking the most likely (default: 0, greedy; not with --beam)")
    p.add_argument("--max-length", type=int, default=0, help=f"longest output in tokens (default: the run's "
                   f"--max-length, else {longest})")
    p.add_argument("--seed", type=int, default=0, help="random seed for --temperature sampling (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Train, sample, evaluate and look inside recurrent networks "
                     "(RNN/LSTM/GRU): character language models, sequence classifiers, conditional generators, time-series "
                     "forecasters and encoder-decoders with attention.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    p = sub.add_parser("train", help="train a model (language model, classifier, generator or forecaster)",
                       description=(
        "Train a model for --task: a character-level language model (the default; with no DATA, on the bundled "
        "tiny Shakespeare), a classifier of labelled examples, a generator of short texts (words, names) by "
        "class, a forecaster of a CSV series, or an encoder-decoder of source -> target pairs. "
        "Stops at the first of --max-steps, --max-epochs and --budget (10 epochs if none is given), then "
        "(a language model) prints a sample. Interrupt with Ctrl-C to save a checkpoint; continue with --resume."))
    p.add_argument("data", nargs="*", help="text files or directories (see --glob); classify: TSV, CSV, JSONL or "
                   ".npz files, or a folder of one file per class; generate: the same (not .npz), or a .txt "
                   "file of one example per line (unconditional); series: one CSV file; seq2seq: TSV files of "
                   "source<TAB>target pairs")
    p.add_argument("--out", "-o", metavar="RUN_DIR", help="run directory to create (default: runs/<date-time>)")
    p.add_argument("--force", action="store_true", help="replace an existing run directory given as --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped; "
                   "--max-steps/--max-epochs given with it replace its limits (counted from the run's start), "
                   "--budget gives it that much more time")
    p.add_argument("--init-from", metavar="RUN_DIR",
                   help="start from RUN_DIR's weights and vocabulary (fine-tune on new data)")
    p.add_argument("--extend-vocab", action="store_true",
                   help="with --init-from: add the characters of the new text that RUN_DIR's vocabulary lacks "
                   "(new embedding and output rows; the old characters keep theirs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--task", choices=(*TASK_CONFIGS, "video"), help="what to learn: lm (a character language "
                   "model, the default), classify (text -> a class, from labelled examples), generate (a class -> "
                   "short texts, from the same examples; or unlabelled lines), series (a CSV time series -> its "
                   "next values), seq2seq (a source text -> a target text, from a TSV of pairs), caption (an "
                   "image -> a sentence, from a captions file: Karpathy's split JSON, COCO's captions JSON or "
                   "Flickr8k's tokens), vqa (an image and a question -> an answer, from VQA v2 files), glimpse (an "
                   "image -> a class, from a few glimpses, from an .npz of images) or video (a clip -> a class: "
                   "classify over an .npz of frames); without it, the data decide where they can; --resume and "
                   "--init-from keep their run's task")
    seen: set = set()
    for name, (model_cls, data_cls) in TASK_CONFIGS.items():
        add_arguments(p, model_cls, f"model ({name})" if name != "lm" else "model", seen)
        add_arguments(p, data_cls, f"data ({name})" if name != "lm" else "data", seen)
    add_arguments(p, TrainConfig, "training")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="generate text from a trained model", description=(
        "Generate text from a run directory, one character at a time; a language model's characters stream "
        "to stdout, a generator's samples (--class) print one per line."))
    _add_run_dir(p)
    p.add_argument("--prime-file", metavar="FILE", help="read the prime text from FILE (UTF-8)")
    p.add_argument("--plain", action="store_true", help="step the PyTorch model itself instead of the fast "
                   "NumPy stepper (same text for the same seed, several times slower)")
    p.add_argument("--jsonl", action="store_true", help="print each sample as one JSON line, "
                   '{"sample": 1, "text": "..."}, instead of text (several samples are otherwise printed '
                   "each after a '--- sample i of N ---' line; a generator's, one per line)")
    p.add_argument("--class", dest="label", metavar="CLASS", help="generators (--task generate): the class to "
                   "write, e.g. --class french; each sample is one example (a word, a name), ended by the model")
    _add_checkpoint(p)
    add_arguments(p, SampleConfig, "sampling")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("eval", help="the task's metrics on the test split or a file", description=(
        "Evaluate a trained model on its run's test split, or on FILE: a language model's loss, bits per "
        "character and perplexity; a classifier's accuracy, macro-F1, per-class scores, confusion matrix and "
        "calibration; a generator's loss per class and what its samples are (seen, held-out, novel, judged); a "
        "forecaster's MSE and MAE beside persistence."))
    _add_run_dir(p)
    p.add_argument("file", metavar="FILE", nargs="?", help="text to evaluate on (default: the run's test split)")
    _add_checkpoint(p)
    _add_unknown(p, "FILE")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--confusion", metavar="PNG", help="classifiers: also draw the confusion matrix here")
    p.add_argument("--glimpses", metavar="PNG", help="glimpse runs (recurrent attention): draw the first test images "
                   "with their glimpse paths here")
    p.add_argument("--horizon", type=int, default=1, help="forecasters: predict each step this many steps ahead, "
                   "feeding predictions back (default: 1, every input a true value)")
    p.add_argument("--plot", metavar="PNG", help="forecasters: draw the forecast against the truth here")
    p.add_argument("--samples", type=int, metavar="N", help="generators: how many samples per class to draw and "
                   "sort into seen in training / held-out / novel (default: 200)")
    p.add_argument("--judge", metavar="RUN_DIR", help="generators: a classifier run (same classes) that reads "
                   "every sample; reports how often it finds the class the sample was written for")
    p.add_argument("--beam", type=int, default=0, help="seq2seq: decode with beam search of this width (default: 0, "
                   "greedy)")
    p.add_argument("--ignore-stress", action="store_true", help="seq2seq: score ARPAbet phonemes without their "
                   "stress digits (AH0 -> AH), the 39-phoneme set of the G2P literature")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="the most likely classes of a text (classifiers)", description=(
        "Classify TEXT, or every line of --input FILE, with a classifier run: each text, then its --top-k "
        "classes and their probabilities, tab-separated."))
    _add_run_dir(p)
    p.add_argument("text", metavar="TEXT", nargs="?", help="the text to classify")
    p.add_argument("--input", metavar="FILE", help="classify every non-empty line of FILE instead")
    p.add_argument("--output", metavar="TSV", help="write the predictions here instead of printing them")
    p.add_argument("--top-k", type=int, default=1, help="how many classes to list per text (default: 1)")
    _add_checkpoint(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("translate", help="the outputs of a seq2seq run for a source text", description=(
        "Decode TEXT, or every line of --input FILE, with an encoder-decoder run: each source, then its "
        "--nbest outputs with their scores (summed log-probabilities; length-normalised with --beam), "
        "tab-separated."))
    _add_run_dir(p)
    p.add_argument("text", metavar="TEXT", nargs="?", help="the source to translate")
    p.add_argument("--input", metavar="FILE", help="translate every non-empty line of FILE instead")
    p.add_argument("--output", metavar="TSV", help="write the translations here instead of printing them")
    _add_decoding(p, "source", "outputs", "twice the source's length + 10")
    p.add_argument("--attention", metavar="PNG", help="also draw the attention map of TEXT's output here, and the "
                   "same as an HTML page beside it (same name, .html)")
    _add_unknown(p, "the sources")
    _add_checkpoint(p)
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser("data", help="generate a data set: moving-shapes video clips, captioned scenes, cluttered "
                       "digits", description=(
        "Write a synthetic data set that needs nothing from outside, deterministic by --seed. clips: grey video "
        "clips of a shape moving one of eight ways (right, left, down, up, clockwise, anticlockwise, grow, "
        "shrink), with a still distractor and noise; each class's reverse is another class, so only the order "
        "of the frames tells them apart. Written as train.npz, val.npz and test.npz (80/10/10) for rnnkit train "
        "--task classify, and meta.json. scenes: RGB images of two coloured shapes, four captions each "
        "(captions.json, Karpathy's split format, for rnnkit train --task caption) and questions with answers "
        "(vqa/<split>_questions.json and _annotations.json, VQA v2's formats); images holding a red square or a "
        "blue triangle form the split 'unseen', the rest train/val/test 80/10/10. digits: scikit-learn's bundled "
        "8 x 8 handwritten digits, each at a random place on an empty canvas with pieces of other digits as "
        "clutter (train/val/test.npz 80/10/10, from disjoint digit images 70/10/20), for rnnkit train --task "
        "glimpse."))
    p.add_argument("kind", choices=("clips", "scenes", "digits"), help="what to generate: clips (moving shapes), "
                   "scenes (images of two shapes with captions and questions) or digits (cluttered translated digits)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write the files in")
    p.add_argument("--num", type=int, default=5000, help="number of clips, scenes or canvases, all splits together "
                   "(default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default: 0)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default: 8)")
    p.add_argument("--size", type=int, default=0, help="frame (clips), image (scenes) or canvas (digits) width and "
                   "height in pixels (default: 32 for clips, 48 for scenes, 24 for digits)")
    p.add_argument("--clutter", type=int, default=None, help="scenes: grey specks scattered over each image (default: "
                   "0); digits: 3 x 3 pieces of other digits scattered over each canvas (default: 4)")
    p.add_argument("--noise", type=float, default=0.0, help="scenes: standard deviation of the pixel noise, as a "
                   "fraction of full brightness (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite the files of an earlier data set in DIR")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("caption", help="the captions a caption run writes for images", description=(
        "Caption each IMAGE with a caption run: the image's path, then its --nbest captions with their scores "
        "(summed log-probabilities; length-normalised with --beam), tab-separated."))
    _add_run_dir(p)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG ...) of the size the run's "
                   "images had (any size if the run resized them with --image-size)")
    _add_decoding(p, "image", "captions", "30")
    p.add_argument("--attention", metavar="PNG", help="also draw where the model looks for each word of the (best) "
                   "caption of the one IMAGE: the image, then one panel per word with its attention over the image; "
                   "and the same as an HTML page beside it (same name, .html)")
    _add_checkpoint(p)
    p.set_defaults(func=_cmd_caption)

    p = sub.add_parser("answer", help="a vqa run's answers to a question about an image", description=(
        "Answer QUESTION about IMAGE with a vqa run: the --top-k most likely answers (of those seen in "
        "training), one per line with its probability."))
    _add_run_dir(p)
    p.add_argument("image", metavar="IMAGE", help="the image file, the size the run's images had")
    p.add_argument("question", metavar="QUESTION", help="the question, e.g. \"what colour is the circle?\"")
    p.add_argument("--top-k", type=int, default=1, help="how many answers to list (default: 1)")
    p.add_argument("--attention", metavar="PNG", help="runs trained with --attention additive: also draw where "
                   "the question looks in the image here (the image, and its attention weights over it)")
    _add_checkpoint(p)
    p.set_defaults(func=_cmd_answer)

    p = sub.add_parser("export", help="write a run's model as ONNX graphs, for runtimes without PyTorch",
                       description=(
        "Write RUN's model as ONNX graphs with the recurrent state explicit: a language model, generator or "
        "forecaster as sequence.onnx (tokens (B, T) or values (B, T, F) and the state in, logits or predictions and "
        "the state out; B and T dynamic) and step.onnx (one step per stream); seq2seq and caption models as "
        "encoder.onnx and decoder.onnx (one decoding step); a classifier, question answerer or glimpse model as "
        "one graph (classifier.onnx, vqa.onnx, glimpse.onnx). Beside them go the vocabularies, the run's "
        "config.json and export.json (every graph's inputs, outputs and shapes, the classes or answers, the "
        "normalisation). onnxruntime runs them without PyTorch; the README has a sampling example."))
    _add_run_dir(p)
    p.add_argument("--format", choices=("onnx",), default="onnx", help="the format to write (default: onnx)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write the files in")
    p.add_argument("--force", action="store_true", help="overwrite the files of an earlier export in DIR")
    _add_checkpoint(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("serve", help="serve runs over HTTP: streamed generation, prediction, scoring, a web page",
                       description=(
        "Serve one or more run directories over HTTP (FastAPI on uvicorn) until Ctrl-C: a web page at /, "
        "POST /v1/generate (language models and generators; streamed as server-sent events), POST /v1/predict "
        "(classifiers: class probabilities; seq2seq runs: outputs), POST /v1/score (per-character loss), "
        "GET /v1/models, GET /healthz, and the OpenAPI docs at /docs. Requests for the same model are batched: "
        "every sample in flight advances one character per batched step. A model is named by its run "
        "directory's name. The server has no authentication; it listens on 127.0.0.1 unless told otherwise."))
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to serve")
    _add_checkpoint(p)
    add_arguments(p, ServeConfig, "server")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("prepare", help="encode text into a token file ahead of training", description=(
        "Build the vocabulary and token file for DATA (cached, so training reuses it)."))
    p.add_argument("data", nargs="+", help="text files or directories (see --glob)")
    p.add_argument("--out", metavar="DIR", help="write tokens.bin, vocab.json and meta.json here "
                   "(default: the cache, $RNNKIT_CACHE or ~/.cache/rnnkit)")
    add_arguments(p, DataConfig, "data")
    p.set_defaults(func=_cmd_prepare)

    def run_and_text(p, text_help="text to run the model over (UTF-8)", max_chars=20000):
        _add_run_dir(p)
        p.add_argument("--text", required=True, metavar="FILE", help=text_help)
        p.add_argument("--max-chars", type=int, default=max_chars,
                       help=f"use at most this many characters of FILE (default: {max_chars})")
        _add_checkpoint(p)
        _add_unknown(p, "FILE")

    p = sub.add_parser("inspect", help="HTML report: cell heat maps, guesses, loss, interpretable cells; a "
                       "classifier's prediction as it reads; a seq2seq model's attention",
                       description="Write one self-contained HTML page showing the model's cells over the text "
                       "(with PNG figures beside it), and optionally export the activations. To keep the page "
                       "small it holds --units cells of each quantity and layer (the cells the search lists, "
                       "the ones it ranked highest and the most variable), not all of them. For a classifier run, "
                       "the page shows instead how its prediction moves as it reads each line of FILE, character "
                       "by character (and OUT-reading.png the same as curves). For a seq2seq run, each line of FILE "
                       "is a source (or source<TAB>reference) and the page shows its output and attention map "
                       "(OUT-attention.png: the first line's map).")
    run_and_text(p, "text to look at (UTF-8)", max_chars=2000)
    p.add_argument("--out", required=True, metavar="HTML", help="the report to write, e.g. report.html")
    p.add_argument("--search-chars", type=int, default=20000,
                   help="characters of FILE over which cells are scored and gates counted (default: 20000)")
    p.add_argument("--features", metavar="PY", help="extra feature functions: a .py file or module (see rnnkit cells)")
    p.add_argument("--units", default=str(DEFAULT_UNITS), metavar="N",
                   help="cells of each quantity and layer to put in the page: every listed cell, the search's "
                   "best and the most variable, up to N; 'all' (or 0) for every cell, a page about 7 times "
                   f"larger (default: {DEFAULT_UNITS})")
    _add_support(p)
    p.add_argument("--npz", metavar="FILE", help="also save every activation to FILE (.npz)")
    p.add_argument("--lstmvis", metavar="DIR", help="also export the states to DIR in LSTMVis's format")
    p.add_argument("--beam", type=int, default=0, metavar="K", help="seq2seq runs: map the best output of a beam "
                   "search of width K (default: 0, greedy decoding)")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("cells", help="find cells that track features of the text",
                       description="Score every cell against features of the text (Pearson r for numbers, ROC "
                       "AUC for yes/no features) and print the best cell per feature.")
    run_and_text(p)
    p.add_argument("--features", metavar="PY", help="a .py file or module with a FEATURES dict or feature_* "
                   "functions, each f(text) -> one number or bool per character")
    p.add_argument("--only", metavar="NAMES", help="comma-separated features to score (default: all)")
    p.add_argument("--kinds", default="state", help="what to score: state (h and c), all (also gates) or a "
                   "comma list like h,gate:forget (default: state)")
    p.add_argument("--top", type=int, default=1, help="also list the top N cells of each feature (default: 1)")
    _add_support(p)
    p.add_argument("--json", metavar="FILE", help="write the top cells of every feature as JSON")
    p.add_argument("--plot", metavar="PNG", help="bar chart of the best score per feature")
    p.set_defaults(func=_cmd_cells)

    p = sub.add_parser("gates", help="gate saturation statistics (LSTM, GRU, minGRU, minLSTM)",
                       description="How often each gate unit is shut (< 0.1) or open (> 0.9) over the text.")
    run_and_text(p)
    p.add_argument("--out", metavar="PNG", help="write the saturation scatter plot here")
    p.set_defaults(func=_cmd_gates)

    p = sub.add_parser("ngram", help="character n-gram baselines (Witten-Bell)",
                       description="Fit interpolated Witten-Bell character n-grams on TRAIN and report the test "
                       "loss for each n.")
    p.add_argument("train", metavar="TRAIN_TEXT", help="training text (UTF-8)")
    p.add_argument("--test", required=True, metavar="FILE", help="test text (UTF-8)")
    p.add_argument("-n", default="1..20", help="orders to report: 20 or 1..20 (default: 1..20)")
    p.add_argument("--plot", metavar="PNG", help="plot the loss against n")
    p.add_argument("--keep-crlf", action="store_true", help="keep CRLF and lone CR line endings (by default "
                   "they become LF, as when training)")
    p.set_defaults(func=_cmd_ngram)

    p = sub.add_parser("compare", help="an RNN run against the best n-gram, with an error breakdown",
                       description="Line a run up against the best n-gram (fitted on TRAIN) on the same test "
                       "text: overall loss, and by character class and position in the line.")
    _add_run_dir(p)
    p.add_argument("--train", required=True, metavar="FILE", help="text to fit the n-grams on (UTF-8)")
    p.add_argument("--test", required=True, metavar="FILE", help="text both models are scored on (UTF-8)")
    p.add_argument("-n", default="20", help="largest n-gram order to try (default: 20)")
    _add_checkpoint(p)
    _add_unknown(p, "the test text")
    p.add_argument("--plot", metavar="PNG", help="bar charts of the breakdown")
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RnnkitError as exc:
        print(f"rnnkit {args.command}: {'' if isinstance(exc, Interrupted) else 'error: '}{exc}", file=sys.stderr)
        return 130 if isinstance(exc, Interrupted) else 2 if isinstance(exc, UsageError) else 1
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
