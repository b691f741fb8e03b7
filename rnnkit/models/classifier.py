"""Many-to-one: a recurrent classifier, sequence -> one class (Karpathy's "sequence input, one output";
the PyTorch tutorial "classifying names with a character-level RNN", batched and packed).

    embedding (V -> E) [+ hashed n-gram embeddings] -> RNN/LSTM/GRU stack (H units, optionally both
                       directions) -> pooling over time (last / mean / max / attention) -> dropout -> linear (-> C)

Sequences of vectors are projected to E instead of embedded, and sequences of frames (video clips)
read by a small CNN per frame (`FrameEncoder`). `cell="none"` leaves the recurrence out and pools
the inputs themselves: averaging frame features, the baseline a recurrent video model must beat.

The contract is the language model's: `forward(tokens, lengths=None, state=None) -> (logits, state)`,
tokens (B, T) int64, lengths (B,) the true length of each row (None: all T), logits (B, C), state the
final (h,) or (h, c), each (L x directions, B, H), as nn.LSTM returns it. Rows are packed
(`pack_padded_sequence`), so padding never enters the recurrence and a padded batch classifies each
sequence exactly as it would alone (tests/test_classify.py checks it). "last" pooling takes each
direction's final state, i.e. the forward pass after the last real token and the backward pass after
reading back to the first; attention pooling is Bahdanau-style additive scoring of every output,
softmax over the real positions only (Yang et al. 2016 use it for document classification).

Optional n-gram embeddings (`ngram_buckets`): each step's input also adds the embeddings of the
character n-grams ending at that step (orders 2 to `ngram_order`, the word's start as a boundary
symbol), hashed into one table, as fastText represents words by their character n-grams (Bojanowski
et al. 2017). The recurrence then starts from the same evidence a bag-of-n-grams classifier has and
spends its capacity on what that bag cannot see: order, position and the word as a whole.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config import ClassifierConfig
from ..data.examples import Examples, encode, pad
from ..errors import DataError
from .lm import FAMILIES

EVAL_BATCH = 256  # examples per forward pass when evaluating


class SequenceClassifier(nn.Module):
    """`vocab` and `classes` (label names) travel with the model for `predict`; the network never reads them."""

    def __init__(self, config: ClassifierConfig, vocab=None, classes: list[str] | None = None):
        super().__init__()
        if (config.vocab_size < 1 and config.num_features < 1) or config.num_classes < 2:
            raise ValueError("ClassifierConfig.vocab_size or num_features (>= 1) and num_classes (>= 2) must be set "
                             "from the data")
        self.config, self.vocab, self.classes = config, vocab, classes
        # Characters are looked up in an embedding table; a sequence of vectors (F values a step, e.g. an
        # image read one row at a time) is projected to the same E dimensions instead, and a sequence of
        # frames (a video clip) is read frame by frame by a small CNN.
        if config.frame_shape:
            self.embed = FrameEncoder(config.frame_shape, config.embed_size)
        elif config.num_features:
            self.embed = nn.Linear(config.num_features, config.embed_size)
        else:
            self.embed = nn.Embedding(config.vocab_size, config.embed_size)
        self.ngrams = nn.Embedding(config.ngram_buckets, config.embed_size) if config.ngram_buckets else None
        if config.cell == "none":  # no recurrence: the inputs are pooled as they are (the order-blind baseline)
            self.rnn, width = None, config.embed_size
        else:
            family = FAMILIES[config.cell]
            self.rnn = family.make_fused(config.embed_size, config, bidirectional=config.bidirectional)
            family.init_weights(self.rnn, config)
            width = (2 if config.bidirectional else 1) * config.hidden_size  # (B, D x H) after pooling
        if config.pooling == "attention":
            self.score = nn.Sequential(nn.Linear(width, config.hidden_size), nn.Tanh(),
                                       nn.Linear(config.hidden_size, 1, bias=False))
        self.drop = nn.Dropout(config.dropout)
        self.input_drop = nn.Dropout(config.input_dropout)
        self.head = nn.Linear(width, config.num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None, state=None):
        """tokens (B, T) (or vectors (B, T, F), or frames (B, T, H, W, C)), lengths (B,) -> logits (B, C),
        final state (tuple of (L x D, B, H); empty for --cell none)."""
        B, T = tokens.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.int64)
        x = self.step_inputs(tokens)  # (B, T, E)
        if self.rnn is None:
            return self.head(self.drop(self.pool(x, lengths))), ()
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if state is not None and len(state) == 1:
            state = state[0]
        out, new = self.rnn(packed, state)
        new = tuple(new) if isinstance(new, tuple) else (new,)
        if self.config.pooling == "last":
            pooled = self.last(new[0])  # (B, D x H)
        else:
            pooled = self.pool(pad_packed_sequence(out, batch_first=True)[0], lengths)  # from (B, T', D x H)
        return self.head(self.drop(pooled)), new

    def step_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the recurrence reads at each step (B, T, E): the embedded (or projected, or CNN-read)
        inputs, plus their n-gram embeddings, with input dropout."""
        x = self.embed(tokens)  # (B, T, E)
        if self.ngrams is not None:
            x = x + self.ngrams(ngram_ids(tokens, self.config.vocab_size, self.config.ngram_order,
                                          self.config.ngram_buckets)).sum(dim=2)  # (B, T, n-1, E) -> (B, T, E)
        return self.input_drop(x)

    def last(self, h_n: torch.Tensor) -> torch.Tensor:
        """The top layer's final state of each direction, side by side: (L x D, B, H) -> (B, D x H)."""
        D = 2 if self.config.bidirectional else 1
        return torch.cat([h_n[-D + d] for d in range(D)], dim=-1)

    def pool(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T', W) outputs (or inputs) -> (B, W), over each row's first `lengths` steps only."""
        mask = torch.arange(out.shape[1], device=out.device)[None] < lengths.to(out.device)[:, None]  # (B, T')
        if self.config.pooling == "mean":
            return (out * mask[..., None]).sum(dim=1) / lengths.to(out.device)[:, None].to(out.dtype)
        if self.config.pooling == "max":
            return out.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
        weights = self.score(out).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, T')
        return (weights[..., None] * out).sum(dim=1)

    # -- conveniences for people holding a loaded model -------------------------------------------

    @torch.no_grad()
    def predict_proba(self, texts: list) -> torch.Tensor:
        """Class probabilities (N, C) of each text (characters the vocabulary lacks are skipped), or of
        each sequence of vectors ((T, F) arrays) for a model of vectors."""
        if self.vocab is None and not self.config.num_features:
            raise ValueError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
        self.eval()
        device = self.head.weight.device
        seqs = ([np.asarray(t, dtype=np.float32) for t in texts] if self.config.num_features
                else [self.vocab.encode(t, unknown="skip") for t in texts])
        self.check_steps(seqs)
        tokens, lengths = pad(seqs)
        return F.softmax(self(tokens.to(device), lengths)[0].float(), dim=-1).cpu()

    @torch.no_grad()
    def batched_logits(self, seqs: list[np.ndarray]) -> torch.Tensor:
        """Logits (N, C) of encoded sequences, run in batches of similar length, in the original order
        (float32, on the CPU)."""
        self.check_steps(seqs)
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out = torch.empty(len(seqs), self.config.num_classes)
        try:
            for i in range(0, len(seqs), EVAL_BATCH):
                idx = order[i:i + EVAL_BATCH]
                tokens, lengths = pad([seqs[j] for j in idx])
                out[torch.from_numpy(idx)] = self(tokens.to(device), lengths)[0].float().cpu()
        finally:
            self.train(was_training)
        return out

    def check_steps(self, seqs: list[np.ndarray], what: str = "example") -> None:
        """A one-line DataError for the first sequence of vectors or frames whose steps are not the
        shape this model reads (token sequences always fit)."""
        c = self.config
        if not c.num_features:
            return
        want = tuple(c.frame_shape) if c.frame_shape else (c.num_features,)
        for i, s in enumerate(seqs):
            if s.ndim < 2 or s.shape[1:] != want:
                reads = "frames of {} x {} x {}".format(*want) if c.frame_shape else f"{want[0]} values a step"
                raise DataError(f"{what} {i + 1} has steps of shape {tuple(s.shape[1:])}; this model reads {reads}")

    def evaluate(self, texts, labels) -> dict:
        """Accuracy, macro-F1, per-class scores, confusion matrix, calibration error and cross-entropy
        per example on labelled texts (or sequences of vectors); labels are class names."""
        seqs, y = encode(Examples(list(texts), list(labels)), self.vocab, self.classes)
        logits = self.batched_logits(seqs)
        result = classification_metrics(F.softmax(logits, dim=-1).numpy(), y, self.classes)
        return {**result, "loss": float(F.cross_entropy(logits, torch.from_numpy(y)))}

    def predict(self, texts, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """The `top_k` most likely classes of each text (or sequence of vectors), with their
        probabilities: a list per input, always a list of lists (one text gives a list of one)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        probs = self.predict_proba(texts)
        top = probs.topk(min(top_k, probs.shape[1]), dim=-1)
        return [[(self.classes[j], float(p)) for p, j in zip(ps.tolist(), js.tolist())]
                for ps, js in zip(top.values, top.indices)]


class FrameEncoder(nn.Module):
    """Each frame (H, W, C) of a clip -> E values: two 3x3 convolutions with ReLU, each followed by
    2x2 max pooling, then a linear layer; the same weights for every frame (frames are read one at a
    time, as a CNN reads an image, and the recurrence does the rest)."""

    def __init__(self, shape, embed_size: int):
        super().__init__()
        H, W, C = shape
        if min(H, W) < 4:
            raise ValueError(f"frames must be at least 4 x 4 pixels for the frame encoder, got {H} x {W}")
        self.conv = nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.proj = nn.Linear(32 * (H // 4) * (W // 4), embed_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, H, W, C) -> (B, T, E)."""
        B, T = frames.shape[:2]
        x = frames.reshape(B * T, *frames.shape[2:]).permute(0, 3, 1, 2)  # (B x T, C, H, W)
        return self.proj(self.conv(x).flatten(1)).view(B, T, -1)


# A rolling hash keeps n-gram codes below 2^31 whatever the vocabulary size; the final multiply (Knuth's
# multiplicative constant) spreads neighbouring codes over the table. Both stay inside int64.
_MODULUS = 2_147_483_647
_MIX = 2_654_435_761


def ngram_ids(tokens: torch.Tensor, vocab_size: int, order: int, buckets: int) -> torch.Tensor:
    """tokens (B, T) -> (B, T, order - 1) table rows of the 2..order-grams ending at each step. Steps
    before the start read as a boundary symbol (id vocab_size), so "^ab" and "ab" in mid-word differ.
    Only steps at or before t are read: padding after a sequence never changes its n-grams."""
    B, T = tokens.shape
    start = torch.full((B, order - 1), vocab_size, dtype=torch.int64, device=tokens.device)
    padded = torch.cat([start, tokens.long()], dim=1)  # (B, order - 1 + T)
    code = padded[:, order - 1:] + 1  # the unigram at each step, (B, T)
    rows = []
    for n in range(2, order + 1):
        previous = padded[:, order - n:order - n + T] + 1  # the token n - 1 steps back
        code = (code * (vocab_size + 2) + previous) % _MODULUS
        rows.append((code * _MIX + n) % buckets)
    return torch.stack(rows, dim=-1)  # (B, T, order - 1)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str], bins: int = 15) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix (rows: true class,
    columns: predicted) and the expected calibration error (Guo et al. 2017: |accuracy - confidence|
    over `bins` equal-width confidence bins, weighted by their share of the examples)."""
    C = len(classes)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((C, C), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / confusion.sum(axis=0))
        recall = np.nan_to_num(tp / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    confidence = probs.max(axis=1)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = sum(abs((pred[which == b] == labels[which == b]).mean() - confidence[which == b].mean()) * (which == b).mean()
              for b in range(bins) if (which == b).any())
    present = confusion.sum(axis=1) > 0  # macro averages over the classes that occur in these labels
    return {"examples": int(len(labels)), "accuracy": float((pred == labels).mean()),
            "macro_f1": float(f1[present].mean()), "ece": float(ece),
            "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                              "support": int(confusion[i].sum())} for i, c in enumerate(classes)},
            "classes": classes, "confusion": confusion.tolist()}
