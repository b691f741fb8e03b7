"""The lever table of benchmarks/README.md, from the JSON files that benchmarks/levers.sh writes.

    python benchmarks/lever_table.py [results/levers]
"""

import json
import sys
from pathlib import Path


def main():
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results" / "levers"
    runs = [json.loads(p.read_text()) | {"name": p.stem} for p in sorted(folder.glob("*.json"))]
    print("| run (`levers.sh` name) | settings | steps | train chars/s | val loss |")
    print("|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: r["val_loss"]):
        print(f"| {r['name']} | `{r['args']}` | {r['steps']:,} | {r['train_chars_per_s']:,} | {r['val_loss']:.4f} |")


if __name__ == "__main__":
    main()
