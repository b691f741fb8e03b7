"""The strong simple baseline of the image and clip benchmarks: logistic regression on every pixel
(of every frame), C tuned on the validation split. Needs scikit-learn (pip install -e ".[bench]")."""

import time

import numpy as np


def logistic_regression(files: dict, cs=(0.01, 0.1, 1.0), max_iter: int = 500) -> dict:
    """`files`: {"train", "val", "test"} -> .npz paths of x (uint8 pixels) and y (labels)."""
    from sklearn.linear_model import LogisticRegression
    data = {}
    for name, path in files.items():
        with np.load(path) as f:
            data[name] = (f["x"].reshape(len(f["x"]), -1) / 255.0, f["y"])
    best = None
    for c in cs:
        t0 = time.time()
        model = LogisticRegression(C=c, max_iter=max_iter).fit(*data["train"])
        val = model.score(*data["val"])
        if best is None or val > best[1]:
            best = (model, val, c, time.time() - t0)
    model, val, c, fit_s = best
    return {"C": c, "val_accuracy": round(val, 4), "test_accuracy": round(model.score(*data["test"]), 4),
            "fit_s": round(fit_s, 1)}
