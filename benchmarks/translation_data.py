"""English -> French pairs from the gettext message catalogs Debian packages install
(/usr/share/locale/fr/LC_MESSAGES/*.mo: each program's interface messages and their translations),
split by catalog so that the test messages come from programs never seen in training.

Cleaning: plural forms and the header are skipped; whitespace is collapsed (tabs and line breaks
too); a message is dropped if it is untranslated (the same text), if it has fewer than two letters
once format directives (%s, %1$d, {name}, ${var}) and markup are removed, if either side is longer
than --max-chars characters, or if its English was already taken (the first catalog in sorted order
keeps it). Catalogs are shuffled with --seed and dealt to test and validation until each holds
about 5% of the pairs; the rest train. More catalogs: install more packages with French translations
(`apt-get install ...-l10n`, or programs whose translations are not split off).

    python benchmarks/translation_data.py --out runs/gettext-fr [--lang fr] [--max-chars 80]
"""

import argparse
import gettext
import json
import random
import re
from pathlib import Path

DIRECTIVE = re.compile(r"%(\d+\$)?[-+ #0]*\d*(\.\d+)?[hlLqjzt]*[a-zA-Z%]|\{[^{}]*\}|\$\{[^{}]*\}|<[^<>]*>|&\w+;")


def clean(text: str) -> str:
    return " ".join(text.split())


def letters(text: str) -> int:
    return sum(c.isalpha() for c in DIRECTIVE.sub("", text))


def catalog_pairs(path: Path, max_chars: int) -> list[tuple[str, str]]:
    with open(path, "rb") as fh:
        catalog = gettext.GNUTranslations(fh)._catalog
    pairs = []
    for msgid, msgstr in catalog.items():
        if not isinstance(msgid, str) or not msgid:
            continue  # plural forms (tuple keys) and the header ("")
        source, target = clean(msgid), clean(msgstr)
        if not source or not target or source == target or letters(source) < 2 or letters(target) < 2:
            continue
        if len(source) > max_chars or len(target) > max_chars:
            continue
        pairs.append((source, target))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for train.tsv, val.tsv, test.tsv, meta.json")
    ap.add_argument("--lang", default="fr", help="the target language's locale directory (default: fr)")
    ap.add_argument("--max-chars", type=int, default=80, help="longest message kept, either side (default: 80)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the catalog split (default: 0)")
    args = ap.parse_args()
    files = sorted(Path("/usr/share/locale", args.lang, "LC_MESSAGES").glob("*.mo"))
    if not files:
        raise SystemExit(f"translation_data.py: no catalogs under /usr/share/locale/{args.lang}/LC_MESSAGES")
    seen, by_catalog = set(), {}
    for f in files:
        kept = []
        for source, target in catalog_pairs(f, args.max_chars):
            if source not in seen:
                seen.add(source)
                kept.append((source, target))
        if kept:
            by_catalog[f.stem] = kept
    names = sorted(by_catalog)
    random.Random(args.seed).shuffle(names)
    total = sum(len(v) for v in by_catalog.values())
    parts = {"test": [], "val": [], "train": []}
    for name in names:
        for part in ("test", "val"):
            if sum(len(by_catalog[n]) for n in parts[part]) < 0.05 * total:
                parts[part].append(name)
                break
        else:
            parts["train"].append(name)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"source": f"/usr/share/locale/{args.lang}/LC_MESSAGES/*.mo", "catalogs": len(names), "seed": args.seed,
            "max_chars": args.max_chars}
    for part, catalogs in parts.items():
        rows = [p for n in sorted(catalogs) for p in by_catalog[n]]
        (args.out / f"{part}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
        meta[part] = {"pairs": len(rows), "catalogs": sorted(catalogs)}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"{total:,} pairs from {len(names)} catalogs: " +
          ", ".join(f"{p} {meta[p]['pairs']:,} ({len(parts[p])} catalogs)" for p in parts) + f" -> {args.out}")


if __name__ == "__main__":
    main()
