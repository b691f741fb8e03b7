"""Byte-level BPE tokenizers (Hugging Face `tokenizers`), trained on a run's training texts and stored
as JSON inside the run (never pickled).

A tokenizer's first four ids are the encoder-decoder's specials (rnnkit.data.pairs.SPECIALS: padding,
start, end, unknown), so its ids are the model's ids. Byte-level means every text has an encoding:
characters training never saw fall back to their UTF-8 bytes, and no token is unknown.
"""

from __future__ import annotations

import json

from ..errors import DataError


def _library():
    try:
        import tokenizers
    except ImportError:  # a dependency of rnnkit; only a broken install lacks it
        raise DataError("bpe tokens need the 'tokenizers' package: pip install tokenizers") from None
    return tokenizers


def train(texts: list[str], vocab_size: int, specials: tuple[str, ...]):
    """A byte-level BPE tokenizer of at most `vocab_size` tokens (specials and the 256 bytes included)
    learned from `texts`; pieces seen fewer than twice are not merged."""
    tk = _library()
    if vocab_size < len(specials) + 256 + 1:
        raise DataError(f"--bpe-vocab must be at least {len(specials) + 257} (the specials, the 256 bytes and "
                        f"one merge), got {vocab_size}")
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(specials),
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def from_json(obj, specials: tuple[str, ...]):
    """The tokenizer of `to_json`'s object; a one-line DataError if it is not one, or if its first ids
    are not the specials."""
    tk = _library()
    try:
        tokenizer = tk.Tokenizer.from_str(json.dumps(obj))
    except Exception as e:  # the library's own error types are not part of its API
        raise DataError(f"the BPE tokenizer is corrupt ({str(e).splitlines()[0][:120]})") from None
    if [tokenizer.id_to_token(i) for i in range(len(specials))] != list(specials):
        raise DataError(f"the BPE tokenizer's first ids must be {', '.join(specials)}")
    return tokenizer


def to_json(tokenizer) -> dict:
    return json.loads(tokenizer.to_str())
