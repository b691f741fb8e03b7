"""What the captioners of `captions.py --keep DIR` do on the scenes, the figures the README quotes
beside its table: how often greedy and beam-3 captions take the short form "a X and a Y", their
mean length against the references', beam 3 at other length normalisations (alpha 0, 0.6, 1.0),
and what the attention model writes for the held-out colour-shape pairs of the unseen images.

    python benchmarks/captions.py --keep runs/captions && python benchmarks/caption_analysis.py runs/captions
"""

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.captions import read_captions  # noqa: E402
from rnnkit.data.scenes import UNSEEN  # noqa: E402
from rnnkit.tasks.caption import caption_metrics  # noqa: E402

OBJECT = re.compile(r"(red|green|blue|yellow|purple) (circle|square|triangle)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("keep", type=Path, help="the --keep DIR of benchmarks/captions.py")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    print(describe(), flush=True)
    data = read_captions([str(args.keep / "scenes" / "captions.json")], (0.8, 0.1, 0.1), 0)
    test = data["test"]
    report = {"machine": describe(), "reference_words": round(float(np.mean(
        [len(c.split()) for caps in test.captions for c in caps])), 2)}
    for name in ("attention", "no_attention"):
        model = rnnkit.load(args.keep / name)
        row = report[name] = {}
        for beam in (0, 3):
            outs = [o[0][0] for o in model.caption(test.images, beam=beam)]
            row["beam3" if beam else "greedy"] = {"short_form": round(float(np.mean([" and " in o for o in outs])), 3),
                                                  "words": round(float(np.mean([len(o.split()) for o in outs])), 2)}
        x, lengths = model.image_batch(test.images)
        for alpha in (0.0, 0.6, 1.0):
            outs = [model.target_vocab.decode(h[0][0]) for i in range(0, len(x), 128)
                    for h in model.beam_search(x[i:i + 128], lengths[i:i + 128], 3, 1, None, alpha=alpha)]
            m = caption_metrics(outs, test.captions)
            row[f"beam3_alpha_{alpha}"] = {"bleu4": round(m["bleu4"], 2), "cider": round(m["cider"], 3)}
    unseen, model = data["unseen"], rnnkit.load(args.keep / "attention")
    objects = {e["filename"]: e["objects"] for e in
               json.loads((args.keep / "scenes" / "captions.json").read_text())["images"]}
    outs = [o[0][0] for o in model.caption(unseen.images)]
    written = Counter()
    for name, out in zip(unseen.names, outs):
        said = OBJECT.findall(out)
        for o in objects[Path(name).name]:
            if (o["colour"], o["shape"]) in UNSEEN:  # what stood for the held-out object in the caption
                near = [s for s in said if s[0] == o["colour"] or s[1] == o["shape"]]
                written[" ".join(near[0]) if near else "-"] += 1
    report["unseen"] = {"images": len(unseen), "written": {" ".join(p): sum(" ".join(p) in o for o in outs)
                                                           for p in UNSEEN},
                        "held_out_objects_written_as": dict(written.most_common(6))}
    emit(report, args.json)


if __name__ == "__main__":
    main()
