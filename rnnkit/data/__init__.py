"""Text -> vocabulary -> token file; stream batching."""

from .batching import StreamBatches, eval_chunks
from .corpus import Corpus, bundled_corpus, prepare, prepare_text, resolve_sources
from .vocab import Vocab

__all__ = ["Corpus", "StreamBatches", "Vocab", "bundled_corpus", "eval_chunks", "prepare", "prepare_text", "resolve_sources"]
