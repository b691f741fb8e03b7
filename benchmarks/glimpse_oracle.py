"""How precisely must a glimpse land? An MLP classifies crops of the cluttered digits (`rnnkit data
digits`) cut at the digit's true centre (the `where` the data record), shifted by a random offset
of up to `jitter` pixels on each axis in training, and is scored on test crops shifted 0, 1 and 2
pixels to the right. The baseline in the same run is the same MLP on crops at the canvas's centre,
which is what a glimpse model that never moves sees. This is the ceiling of a glimpse classifier
given perfect (or nearly perfect) locations, not a glimpse model.

    python benchmarks/glimpse_oracle.py [--budget 40] [--num 50000] [--json FILE]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

from rnnkit.data.digits import write_digits  # noqa: E402

# (crop width, training jitter): the 8-pixel retina placed exactly, and 12 pixels with slack.
SETTINGS = [(8, 0), (12, 2)]


def load(path: Path, crop: int):
    with np.load(path) as f:
        x = np.pad(f["x"].astype(np.float32) / 255, ((0, 0), (crop, crop), (crop, crop)))
        return x, f["y"].astype(int), f["where"].astype(int) + crop


def crops(x, centres, crop: int) -> torch.Tensor:
    """(N, crop * crop) pixels of each image's crop centred (as the retina rounds) on centres (N, 2) x, y."""
    top, left = centres[:, 1] - crop // 2, centres[:, 0] - crop // 2
    rows = top[:, None, None] + np.arange(crop)[None, :, None]
    cols = left[:, None, None] + np.arange(crop)[None, None, :]
    return torch.from_numpy(x[np.arange(len(x))[:, None, None], rows, cols].reshape(len(x), -1))


def train_and_score(data: dict, crop: int, jitter: int, budget: float, at_centre: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    (xtr, ytr, wtr), (xte, yte, wte) = data["train"], data["test"]
    if at_centre:  # the canvas's centre, in the padded coordinates
        middle = np.array([xtr.shape[2] // 2, xtr.shape[1] // 2])
        wtr, wte = np.broadcast_to(middle, wtr.shape), np.broadcast_to(middle, wte.shape)
    net = nn.Sequential(nn.Linear(crop * crop, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    labels = torch.from_numpy(ytr)
    steps, t0 = 0, time.time()
    while time.time() - t0 < budget:
        idx = rng.integers(0, len(xtr), 256)
        shift = rng.integers(-jitter, jitter + 1, size=(256, 2)) if jitter else 0
        loss = F.cross_entropy(net(crops(xtr[idx], wtr[idx] + shift, crop)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    report = {"crop": crop, "train_jitter": jitter, "steps": steps, "test_accuracy_at_offset": {}}
    with torch.no_grad():
        for offset in (0, 1, 2):
            predicted = net(crops(xte, wte + np.array([offset, 0]), crop)).argmax(-1).numpy()
            report["test_accuracy_at_offset"][str(offset)] = round(float((predicted == yte).mean()), 4)
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=40.0, help="training seconds for each MLP (default 40)")
    ap.add_argument("--num", type=int, default=50000, help="canvases in all, split 80/10/10 (default 50000)")
    ap.add_argument("--seed", type=int, default=0, help="the canvases' seed (default 0)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    print(describe(), flush=True)
    report = {"budget_s": args.budget, "at_digit": [], "at_canvas_centre": []}
    with tempfile.TemporaryDirectory() as tmp:
        write_digits(Path(tmp), args.num, args.seed)
        for crop, jitter in SETTINGS:
            data = {name: load(Path(tmp) / f"{name}.npz", crop) for name in ("train", "test")}
            for key, at_centre in (("at_digit", False), ("at_canvas_centre", True)):
                print(f"{crop} x {crop} crops {key}, training jitter {jitter} ...", flush=True)
                report[key].append(train_and_score(data, crop, jitter, args.budget, at_centre))
    report["machine"] = describe()
    emit(report, args.json)


if __name__ == "__main__":
    main()
