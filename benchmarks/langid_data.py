"""Build a word -> language identification data set from the Debian word lists.

Twelve languages, one list each, read from /usr/share/dict (install them with the apt command in
benchmarks/README.md; nothing is downloaded here). The rules, also written to meta.json:

- Unicode NFC; an entry is kept only if every character is a letter (str.isalpha) and it is all
  lowercase. That drops English possessives ("cat's"), Italian/French elisions ("aujourd'hui"),
  hyphenated and multi-word entries, digits, acronyms and capitalised entries. The lists do not mark
  proper nouns, so the capital letter is the only sign of one; the price is that German nouns go
  too (German capitalises every noun), and the case letter can never be the cue.
- A word found in more than one language's (filtered) list is dropped from all of them, so every
  label is unambiguous; meta.json counts how many per language.
- Every class is cut to the same size (--per-class) by a seeded random sample, then split 80/10/10
  per class. Words are unique across the whole set, so the splits are word-disjoint.

Writes train.tsv, val.tsv, test.tsv (UTF-8, one `word<TAB>language` per line, no header, lines in a
seeded random order; language is an ISO 639-1 code) and meta.json. The same seed gives the same files.

    python benchmarks/langid_data.py --out data/langid [--seed 0] [--per-class 8000]
"""

import argparse
import json
import random
import sys
import unicodedata
from collections import Counter
from pathlib import Path

# code: (language, file under /usr/share/dict, Debian package). Finnish has no Debian list;
# Bulgarian and Ukrainian (Cyrillic) are left out because the script alone would give them away;
# Brazilian Portuguese and Galician are left out as near-duplicates of Portuguese.
LANGUAGES = {
    "en": ("English", "american-english", "wamerican"),
    "de": ("German", "ngerman", "wngerman"),
    "fr": ("French", "french", "wfrench"),
    "it": ("Italian", "italian", "witalian"),
    "es": ("Spanish", "spanish", "wspanish"),
    "pt": ("Portuguese", "portuguese", "wportuguese"),
    "nl": ("Dutch", "dutch", "wdutch"),
    "sv": ("Swedish", "swedish", "wswedish"),
    "da": ("Danish", "danish", "wdanish"),
    "nb": ("Norwegian Bokmål", "bokmaal", "wnorwegian"),
    "pl": ("Polish", "polish", "wpolish"),
    "ca": ("Catalan", "catalan", "wcatalan"),
}
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def read_list(path: Path) -> tuple[list[str], str]:
    """Lines of a word list and the encoding it was read with (swedish and bokmaal are Latin-1)."""
    raw = path.read_bytes()
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "latin-1"
    return text.splitlines(), encoding


def keep(word: str) -> bool:
    # Letters only and no capitals: see the module docstring for why.
    return word.isalpha() and word == word.lower()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="directory to write train/val/test.tsv and meta.json")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample, split and line order (default 0)")
    ap.add_argument("--per-class", type=int, default=8000, help="words per language before the split (default 8000)")
    ap.add_argument("--dict-dir", type=Path, default=Path("/usr/share/dict"), help="where the word lists are")
    args = ap.parse_args()
    if args.per_class < 10:
        sys.exit("langid_data.py: --per-class must be at least 10 (one word per split and more)")

    missing = [pkg for _, name, pkg in LANGUAGES.values() if not (args.dict_dir / name).is_file()]
    if missing:
        sys.exit(f"langid_data.py: word lists missing from {args.dict_dir}; install them with: "
                 f"apt-get install -y {' '.join(missing)}")

    words, sources = {}, {}
    for code, (language, name, pkg) in LANGUAGES.items():
        lines, encoding = read_list(args.dict_dir / name)
        kept = {w for w in (unicodedata.normalize("NFC", line.strip()) for line in lines) if keep(w)}
        words[code] = kept
        sources[code] = {"language": language, "path": str(args.dict_dir / name), "package": pkg,
                         "encoding": encoding, "entries": len(lines), "kept_by_rules": len(kept)}

    # Drop every word that more than one language claims.
    seen = Counter(w for kept in words.values() for w in kept)
    shared = {w for w, n in seen.items() if n > 1}
    for code in LANGUAGES:
        sources[code]["dropped_shared"] = len(words[code] & shared)
        words[code] -= shared
        sources[code]["unambiguous"] = len(words[code])
    short = {code: len(w) for code, w in words.items() if len(w) < args.per_class}
    if short:
        sys.exit(f"langid_data.py: --per-class {args.per_class} is more than some languages have: {short}")

    rng = random.Random(args.seed)
    rows = {split: [] for split, _ in SPLITS}
    counts = {split: {} for split, _ in SPLITS}
    for code in LANGUAGES:  # a fixed order, so the draws are the same for a seed
        sample = rng.sample(sorted(words[code]), args.per_class)  # sorted: set order varies by process
        n_train, n_val = int(0.8 * args.per_class), int(0.1 * args.per_class)
        parts = {"train": sample[:n_train], "val": sample[n_train:n_train + n_val],
                 "test": sample[n_train + n_val:]}
        for split, part in parts.items():
            rows[split] += [(w, code) for w in part]
            counts[split][code] = len(part)

    args.out.mkdir(parents=True, exist_ok=True)
    for split, _ in SPLITS:
        rng.shuffle(rows[split])
        with open(args.out / f"{split}.tsv", "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(f"{w}\t{code}\n" for w, code in rows[split])
    meta = {
        "format": "UTF-8 TSV, one `word<TAB>language` per line, no header; language is the ISO 639-1 code",
        "seed": args.seed, "per_class": args.per_class, "splits": dict(SPLITS),
        "rules": "NFC; keep entries made only of letters (str.isalpha) and all lowercase; drop words "
                 "that occur in more than one language's filtered list; seeded equal-size sample per "
                 "class; per-class 80/10/10 split (word-disjoint)",
        "shared_words_dropped": len(shared), "sources": sources, "counts": counts,
        "vocabulary": sorted({ch for split in rows.values() for w, _ in split for ch in w}),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(f"{'code':4} {'language':17} {'entries':>9} {'kept':>9} {'shared':>7} {'unambig':>9}  "
          + " ".join(f"{s:>6}" for s, _ in SPLITS))
    for code, src in sources.items():
        print(f"{code:4} {src['language']:17} {src['entries']:>9,} {src['kept_by_rules']:>9,} "
              f"{src['dropped_shared']:>7,} {src['unambiguous']:>9,}  "
              + " ".join(f"{counts[s][code]:>6}" for s, _ in SPLITS))
    print(f"{len(shared):,} words shared by two or more languages dropped; "
          f"wrote {', '.join(f'{s}.tsv ({len(rows[s]):,})' for s, _ in SPLITS)} and meta.json to {args.out}")


if __name__ == "__main__":
    main()
