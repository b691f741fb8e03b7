"""The web page `rnnkit serve` serves at / (index.html: one self-contained file, no external scripts)."""
