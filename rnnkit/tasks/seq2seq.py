"""Sequence to sequence as a task: a source text -> a target text (word -> pronunciation, English ->
French), with an encoder-decoder and attention (rnnkit.models.seq2seq).

The data are source<TAB>target pairs (rnnkit.data.pairs), split by distinct source with a stored seed
or given as validation and test files; each side has its own vocabulary, of characters or of
whitespace-separated tokens. The loss is the cross-entropy per target token (the end included, padding
never), with optional label smoothing and scheduled sampling. `rnnkit eval` decodes the test sources
(greedy, or beam search) and reports exact match, the token error rate (jiwer; the phoneme error rate
for pronunciations), BLEU and chrF (sacrebleu), and the teacher-forced loss; a source with several
targets counts as right if the output matches any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, PairsConfig, Seq2SeqConfig, TrainConfig, build
from ..data.pairs import PAD, PairBatches, Pairs, SideVocab, detect_tokens, pad_ids, read_pairs, split_pairs
from ..errors import CheckpointError, DataError
from ..models.seq2seq import Seq2Seq

LANGUAGE_MODEL = False
NAME = "seq2seq"
CONFIGS = TASK_CONFIGS[NAME]  # (Seq2SeqConfig, PairsConfig)
EVAL_BATCH = 128


@dataclass
class RunConfig:
    model: Seq2SeqConfig
    data: PairsConfig
    train: TrainConfig
    source_vocab: SideVocab
    target_vocab: SideVocab


def read_run(run_dir: str | Path) -> RunConfig:
    run = ckpt.parse_config(run_dir, lambda raw: RunConfig(
        build(Seq2SeqConfig, raw["model"]), build(PairsConfig, raw["data"]), build(TrainConfig, raw["train"]),
        SideVocab.from_json(raw["source_vocab"]), SideVocab.from_json(raw["target_vocab"])))
    if (run.model.source_vocab_size, run.model.target_vocab_size) != (len(run.source_vocab), len(run.target_vocab)):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: the model's sizes do not match its "
                              "vocabularies")
    return run


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> Seq2Seq:
    run = read_run(run_dir)
    model = Seq2Seq(run.model, source_vocab=run.source_vocab, target_vocab=run.target_vocab)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    return model.to(device).eval()


def splits(data: PairsConfig) -> tuple[Pairs, Pairs, Pairs]:
    every = read_pairs(data.paths)
    if not (data.val or data.test):
        return split_pairs(every, data.split, data.split_seed)
    val = read_pairs(data.val) if data.val else Pairs([], [])
    test = read_pairs(data.test) if data.test else Pairs([], [])
    return every, val, test


def encode_pairs(pairs: Pairs, source_vocab: SideVocab, target_vocab: SideVocab):
    return [source_vocab.encode(s) for s in pairs.sources], [target_vocab.encode(t) for t in pairs.targets]


@torch.no_grad()
def teacher_forced_nats(model: Seq2Seq, batches) -> tuple[float, int]:
    """Summed teacher-forced cross-entropy over an iterable of (source, source lengths, target ids)
    batches, the targets' EOS included, and the number of target tokens; in eval mode."""
    was_training = model.training
    model.eval()
    device = model.out.weight.device
    total, count = 0.0, 0
    try:
        for src, src_len, targets in batches:
            tgt, _ = pad_ids(targets, bos=True, eos=True)
            tgt = tgt.to(device)
            logits, _ = model(src.to(device), src_len, tgt[:, :-1])
            y = tgt[:, 1:]
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                           ignore_index=PAD, reduction="sum"))
            count += int((y != PAD).sum())
    finally:
        model.train(was_training)
    return total, count


def token_nats(model: Seq2Seq, sources: list[np.ndarray], targets: list[np.ndarray]) -> tuple[float, int]:
    """Summed teacher-forced cross-entropy of the targets (EOS included) and the number of tokens."""
    order = np.argsort([len(s) for s in sources], kind="stable")
    batches = ((*pad_ids([sources[j] for j in idx]), [targets[j] for j in idx])
               for idx in (order[i:i + EVAL_BATCH] for i in range(0, len(order), EVAL_BATCH)))
    return teacher_forced_nats(model, batches)


def tokens_per_process(real: torch.Tensor) -> torch.Tensor:
    """The mean over processes of the real target tokens in this step's batch: dividing each process's
    summed loss by it makes the gradients torchrun averages those of the mean over every token of the
    global batch (processes hold different numbers of tokens; a mean per process would weigh each
    process's batch alike instead)."""
    count = real.sum().float()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(count)
        count = count / torch.distributed.get_world_size()
    return count


class Task:
    name = NAME
    unit = "token"
    loss_unit = "nats/token"
    carries_state = False

    def __init__(self, model_cfg: Seq2SeqConfig, data_cfg: PairsConfig, train_cfg: TrainConfig,
                 source_vocab: SideVocab, target_vocab: SideVocab, train: Pairs, val: Pairs, model: Seq2Seq):
        self.model_cfg, self.data_cfg, self.train_cfg = model_cfg, data_cfg, train_cfg
        self.source_vocab, self.target_vocab, self.model = source_vocab, target_vocab, model
        self.train_src, self.train_tgt = encode_pairs(train, source_vocab, target_vocab)
        self.val_src, self.val_tgt = encode_pairs(val, source_vocab, target_vocab)
        self.val_pairs = val
        self.has_val = len(val) > 0
        self.mean_tokens = float(np.mean([len(t) + 1 for t in self.train_tgt]))
        # --precision auto: bf16 where the decoder runs over the whole target in one fused call (1.6x
        # the tokens per second of fp32 in benchmarks/seq2seq_speed.py on Zen 4, and 0.27 against 0.30
        # nats/phoneme after 4 minutes on CMUdict);
        # a decoder stepped token by token (input feeding, scheduled sampling) ran slower in bf16 than
        # in fp32, the casts costing more than the arithmetic saves at one small step.
        self.cpu_bf16 = not model.feeds and model_cfg.sampling_ratio == 0
        self.cuda_mixed = True  # unmeasured on a GPU

    def train_batches(self, rank: int = 0, world: int = 1) -> PairBatches:
        return PairBatches(self.train_src, self.train_tgt, self.train_cfg.batch_size, self.train_cfg.seed, rank, world)

    def items_per_step(self, world: int = 1) -> int:
        """Target tokens per step, on average."""
        return max(1, round(self.train_cfg.batch_size * self.mean_tokens * world))

    def loss(self, net, batch, state, device, amp):
        src, src_len, tgt, _ = batch
        tgt = tgt.to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits, _ = net(src.to(device), src_len, tgt[:, :-1], sampling_ratio=self.model_cfg.sampling_ratio)
        targets = tgt[:, 1:].reshape(-1)
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets, ignore_index=PAD,
                                label_smoothing=self.model_cfg.label_smoothing, reduction="sum")
        return total / tokens_per_process(targets != PAD), None

    def validate(self, model) -> float:
        total, count = token_nats(model, self.val_src, self.val_tgt)
        return total / count

    def preview(self, model, step: int) -> str:
        shown = self.val_pairs.subset(range(min(3, len(self.val_pairs))))
        outs = model.translate(shown.sources)
        return f"--- at step {step} ---\n" + "\n".join(f"{s} -> {o[0][0]}   (reference: {t})"
                                                      for s, t, o in zip(shown.sources, shown.targets, outs))

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"source_vocab": self.source_vocab.to_json(), "target_vocab": self.target_vocab.to_json()})

    def describe(self) -> str:
        c = self.model_cfg
        return (f"seq2seq: {c.cell} {c.num_layers}x{c.hidden_size}{' bidirectional' if c.bidirectional else ''} "
                f"encoder, attention {c.attention}, {self.model.num_parameters():,} parameters, source "
                f"{len(self.source_vocab)} {self.source_vocab.kind}s, target {len(self.target_vocab)} "
                f"{self.target_vocab.kind}s, {len(self.train_src):,} training pairs")


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    data_cfg = resumed.data if resumed is not None else build(PairsConfig, data_o)
    train, val, _ = splits(data_cfg)
    if not len(train):
        raise DataError("no training pairs (see --split)")
    if resumed is not None:
        model_cfg, source_vocab, target_vocab = resumed.model, resumed.source_vocab, resumed.target_vocab
    else:
        target_kind = data_cfg.target_tokens if data_cfg.target_tokens != "auto" else detect_tokens(train.targets)
        source_vocab = SideVocab.from_texts(data_cfg.source_tokens, train.sources, data_cfg.bpe_vocab)
        target_vocab = SideVocab.from_texts(target_kind, train.targets, data_cfg.bpe_vocab)
        model_cfg = build(Seq2SeqConfig, {**model_o, "source_vocab_size": len(source_vocab),
                                          "target_vocab_size": len(target_vocab)})
    torch.manual_seed(train_cfg.seed)
    model = Seq2Seq(model_cfg, source_vocab=source_vocab, target_vocab=target_vocab).to(device)
    return Task(model_cfg, data_cfg, train_cfg, source_vocab, target_vocab, train, val, model)


# -- evaluation -----------------------------------------------------------------------------------

STRESS = re.compile(r"(?<=[A-Za-z])[0-2]$")  # ARPAbet stress digits: AH0, OW1 -> AH, OW


def strip_stress(text: str) -> str:
    """ARPAbet without stress: the 39-phoneme set the G2P literature scores on."""
    return " ".join(STRESS.sub("", t) for t in text.split())


def edits(reference: list[str], hypothesis: list[str]) -> int:
    """Token edit distance (substitutions + deletions + insertions), by jiwer."""
    import jiwer
    if not hypothesis:
        return len(reference)
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions


def sequence_metrics(hypotheses: list[str], references: list[list[str]], kind: str) -> dict:
    """Exact match (any reference), the token error rate (edits to the closest reference over its
    length, summed over the corpus; tokens are characters or words as the target side is read), and
    BLEU and chrF against the first reference (sacrebleu)."""
    import sacrebleu
    split = (lambda t: list(t.replace(" ", "_"))) if kind == "char" else str.split
    exact, errors, length = 0, 0, 0
    for hyp, refs in zip(hypotheses, references):
        exact += any(hyp == r for r in refs)
        best = min(((edits(split(r), split(hyp)), len(split(r))) for r in refs), key=lambda c: c[0] / max(c[1], 1))
        errors, length = errors + best[0], length + best[1]
    first = [r[0] for r in references]
    return {"exact_match": exact / len(hypotheses), "sequence_error_rate": 1 - exact / len(hypotheses),
            "token_error_rate": errors / max(length, 1),
            "bleu": sacrebleu.corpus_bleu(hypotheses, [first]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [first]).score}


def check_known(vocab: SideVocab, sources: list[str]) -> None:
    """A one-line error naming the source tokens training never saw (`--unknown error`)."""
    missing = sorted({t for s in sources for t in vocab.unknown(s)})
    if missing:
        raise DataError(f"{len(missing)} source token(s) never seen in training: "
                        f"{', '.join(map(repr, missing[:20]))} (--unknown skip reads them as unknown)")


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error",
                 beam: int = 0, ignore_stress: bool = False) -> dict:
    """`rnnkit eval` on an encoder-decoder: decode every distinct source of the test split (or of
    `file`), greedy or with a `beam`, and score it against all its targets."""
    run = read_run(run_dir)
    model = load(run_dir, checkpoint)
    pairs = read_pairs([file]) if file else splits(run.data)[2]
    if not len(pairs):
        raise DataError("this run has no test pairs (see --split or --test); pass a FILE to evaluate on")
    if unknown == "error":
        check_known(run.source_vocab, pairs.sources)
    refs = pairs.references()
    sources = list(refs)
    outputs = [o[0][0] for o in model.translate(sources, beam=beam)]
    references = [refs[s] for s in sources]
    normal = strip_stress if ignore_stress else (lambda t: t)
    result = sequence_metrics([normal(o) for o in outputs], [[normal(r) for r in rs] for rs in references],
                              run.target_vocab.kind)
    total, count = token_nats(model, *encode_pairs(pairs, run.source_vocab, run.target_vocab))
    result.update(nats=total / count, tokens=count, sources=len(sources), pairs=len(pairs),
                  split=str(file) if file else "test", beam=beam, ignore_stress=ignore_stress,
                  examples=[{"source": s, "output": o, "references": r}
                            for s, o, r in list(zip(sources, outputs, references))[:10]])
    return result
