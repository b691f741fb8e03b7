"""Text -> vocabulary -> token file; stream batching."""

from .batching import StreamBatches, eval_chunks
from .corpus import Corpus, bundled_corpus, prepare, resolve_sources
from .vocab import Vocab

__all__ = ["Corpus", "StreamBatches", "Vocab", "bundled_corpus", "eval_chunks", "prepare", "resolve_sources"]
