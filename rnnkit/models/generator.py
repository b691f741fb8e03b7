"""One-to-many: a character generator that writes one short text at a time (a name, a word), told
which class to write (Karpathy's "one input, sequence output"; the PyTorch tutorial "generating names
with a character-level RNN", batched, with the class in the state or the input, or in both).

It is the character language model (models/lm.py) trained on examples instead of a stream: every
example is read as "\\n" + text + "\\n", so the newline is both the start symbol and the end symbol
(makemore's "." token), the state starts afresh for each example, and sampling starts after a "\\n"
and stops at the next one. The class c (of C) enters in two ways, chosen by GeneratorConfig.condition:

    init:  the initial state is a learned vector per class, state_0 = S[c]  (S zeros at the start);
    step:  a learned class vector is added to every step's character embedding, x_t = E[token_t] + K[c];
    both:  both (the default); none: an unconditional model of the same examples (the baseline).

The contract is the language model's, with the class beside the tokens:
`forward(tokens, state=None, classes=None) -> (logits, state)`; tokens (B, T), classes (B,) or (1,)
class indices (required when the model is conditional), logits (B, T, V), state a tuple of (L, B, H).
Because the class's input vector is a constant added to the embedding, the fast sampler folds it into
its table once per class (`input_offset`) and steps at the language model's speed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import GeneratorConfig
from ..errors import UsageError
from .lm import CharRNN

BOUNDARY = "\n"  # the start and end symbol of every example (examples are single lines)
EVAL_BATCH = 256  # examples per forward pass when evaluating


def example_nats(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of each example's predictions. tokens (B, T) are the padded sequences
    boundary + text + boundary, lengths (B,) their true lengths, logits (B, T - 1, V) the model's
    outputs for tokens[:, :-1]; each example scores its lengths - 1 next symbols (the end symbol
    included), padding none. -> (B,) nats."""
    B, T1, V = logits.shape
    target = tokens[:, 1:].clone()  # (B, T - 1)
    target[torch.arange(T1, device=tokens.device)[None] >= (lengths.to(tokens.device) - 1)[:, None]] = -100
    nll = F.cross_entropy(logits.reshape(-1, V).float(), target.reshape(-1), ignore_index=-100, reduction="none")
    return nll.view(B, T1).sum(dim=1)


def example_ids(vocab, text: str, unknown: str = "error", end: bool = True) -> np.ndarray:
    """boundary + text (+ boundary) as token ids. The boundary is one symbol of every vocabulary a
    generator reads (characters, bytes, BPE pieces learned on single lines), and the text is encoded
    on its own, so no piece ever spans an end of the example."""
    b = vocab.encode(BOUNDARY)
    parts = [b, vocab.encode(text, unknown=unknown)] + ([b] if end else [])
    return np.concatenate(parts).astype(b.dtype)


class CharGenerator(CharRNN):
    """A CharRNN over one example at a time, with optional class conditioning; `classes` (the label
    names, in index order) travel with the model for `sample(label=...)` and the metrics."""

    def __init__(self, config: GeneratorConfig, vocab=None, classes: list[str] | None = None):
        super().__init__(config, vocab)
        self.classes = list(classes or [])
        C, L, H = config.num_classes, config.num_layers, config.hidden_size
        self.conditional = C > 0 and config.condition != "none"
        # A learned initial state per class, all of the family's state tensors (h, and c for the LSTM)
        # of every layer; zeros at the start, so an untrained class begins like the unconditional model.
        self.class_state = (nn.Embedding(C, len(self.family.STATE) * L * H)
                            if self.conditional and config.condition in ("init", "both") else None)
        if self.class_state is not None:
            nn.init.zeros_(self.class_state.weight)
        # A learned vector per class added to every character embedding (same scale: N(0, 1)).
        self.class_embed = (nn.Embedding(C, config.embed_size)
                            if self.conditional and config.condition in ("step", "both") else None)

    def class_index(self, label: str | None) -> int | None:
        """The index of class `label`; None for an unconditional model (which takes no label)."""
        if not self.conditional:
            if label is not None:
                raise UsageError("this generator is unconditional (trained with --condition none or unlabelled "
                                 "examples); it takes no --class")
            return None
        if label is None:
            raise UsageError(f"this generator writes one of {len(self.classes)} classes; give --class, one of "
                             f"({', '.join(self.classes[:12])}{' ...' if len(self.classes) > 12 else ''})")
        if label not in self.classes:
            raise UsageError(f"class {label!r} is not one this generator was trained on: {', '.join(self.classes)}")
        return self.classes.index(label)

    def initial_state(self, batch_size: int, classes: torch.Tensor | None = None):
        """The state before the first symbol: the classes' learned states, or zeros. classes (B,) or (1,)."""
        if self.class_state is None:
            return self.init_state(batch_size, self.head.weight.device)
        c = self.config
        S = len(self.family.STATE)
        s = self.class_state(classes).view(-1, S, c.num_layers, c.hidden_size)  # (B or 1, S, L, H)
        s = s.expand(batch_size, -1, -1, -1).permute(1, 2, 0, 3)  # (S, L, B, H)
        return tuple(s[i].contiguous() for i in range(S))

    def forward(self, tokens: torch.Tensor, state=None, classes: torch.Tensor | None = None):
        """tokens (B, T), classes (B,) or (1,) -> logits (B, T, V), state (tuple of (L, B, H))."""
        B, T = tokens.shape
        if self.conditional and classes is None:
            raise ValueError("a conditional generator needs the classes of its inputs")
        if state is None:
            state = self.initial_state(B, classes)
        x = self.embed(tokens)  # (B, T, E)
        if self.class_embed is not None:
            x = x + self.class_embed(classes)[:, None]  # (B or 1, 1, E): the same vector at every step
        out, new = self.rnn(x, state if len(state) == 2 else state[0])  # out (B, T, H)
        new = tuple(new) if isinstance(new, tuple) else (new,)
        return self.head(self.drop(out)), new  # (B, T, V)

    def forward_steps(self, tokens, state=None):
        raise NotImplementedError("per-step inspection is for language models; a generator's class input is not "
                                  "traced")

    def input_offset(self, class_index: int | None) -> torch.Tensor | None:
        """What class `class_index` adds to every character embedding (E,), or None."""
        if self.class_embed is None or class_index is None:
            return None
        return self.class_embed.weight[class_index].detach()

    # -- conveniences for people holding a loaded model -------------------------------------------

    def encode(self, texts: list[str], unknown: str = "error") -> list[np.ndarray]:
        """Each text as the model reads it: boundary + text + boundary, as token ids."""
        return [example_ids(self.vocab, t, unknown) for t in texts]

    @torch.no_grad()
    def nats(self, seqs: list[np.ndarray], class_ids: np.ndarray | None) -> np.ndarray:
        """Summed loss (nats) of each encoded example (N,), run in batches of similar length."""
        from ..data.examples import pad
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        order = np.argsort([len(q) for q in seqs], kind="stable")
        out = np.empty(len(seqs))
        try:
            for i in range(0, len(seqs), EVAL_BATCH):
                idx = order[i:i + EVAL_BATCH]
                tokens, lengths = pad([seqs[j] for j in idx])
                tokens = tokens.to(device)
                classes = torch.from_numpy(class_ids[idx]).to(device) if self.conditional else None
                logits, _ = self(tokens[:, :-1], classes=classes)  # (B, T - 1, V)
                out[idx] = example_nats(logits, tokens, lengths).cpu().numpy()
        finally:
            self.train(was_training)
        return out

    def evaluate(self, texts, labels=None, unknown: str = "error") -> dict:
        """Loss per character (the end of each example counted as one) on `texts`, overall and per
        class when `labels` (class names) are given: {'nats', 'bpc', 'perplexity', 'chars',
        'examples', 'per_class': {class: {'nats', 'chars', 'examples'}}}; for byte and BPE tokens also
        'nats_per_token' and 'tokens'."""
        texts = list(texts)
        if not texts:
            raise ValueError("nothing to evaluate")
        seqs = self.encode(texts, unknown)
        labels = list(labels) if labels is not None else None
        if labels is not None and self.classes:
            unseen = sorted(set(labels) - set(self.classes))
            if unseen:
                raise UsageError(f"label(s) {', '.join(map(repr, unseen[:10]))} are not among this generator's "
                                 f"classes: {', '.join(self.classes)}")
            class_ids = np.array([self.classes.index(c) for c in labels], dtype=np.int64)
        elif self.conditional:
            raise UsageError("a conditional generator is evaluated on labelled examples")
        else:
            class_ids = None
        nats, tokens = self.nats(seqs, class_ids), np.array([len(q) - 1 for q in seqs])
        # Per character, the end of each example counted as one; byte and BPE runs add the loss per token.
        chars = tokens if self.vocab.kind == "char" else np.array([len(t) + 1 for t in texts])
        result = {"nats": float(nats.sum() / chars.sum()), "chars": int(chars.sum()), "examples": len(seqs)}
        result.update(bpc=result["nats"] / np.log(2), perplexity=float(np.exp(result["nats"])))
        if self.vocab.kind != "char":
            result.update(nats_per_token=float(nats.sum() / tokens.sum()), tokens=int(tokens.sum()))
        if labels is not None:
            result["per_class"] = {c: {"nats": float(nats[m].sum() / chars[m].sum()), "chars": int(chars[m].sum()),
                                       "examples": int(m.sum())}
                                   for c in sorted(set(labels)) for m in [np.array([lab == c for lab in labels])]}
        return result

    def sample(self, label: str | None = None, **options) -> str:
        """One generated example of class `label` (without its boundaries); the options are
        `rnnkit sample`'s (temperature, top_k, top_p, greedy, beam, prime, seed, length cap)."""
        return self.samples(1, label=label, **options)[0]

    def samples(self, num_samples: int, label: str | None = None, **options) -> list[str]:
        """`num_samples` generated examples of class `label`, made together as a batch; always a list."""
        from ..sample import generate
        return generate(self, num_samples, label=label, **options)
