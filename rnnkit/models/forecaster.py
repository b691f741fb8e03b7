"""Many-to-many on real values: a recurrent forecaster, the values at step t -> the values at t + 1.

    linear (F -> E) -> RNN/LSTM/GRU stack (H units) -> linear (H -> F)

The contract is the language model's: `forward(values, state=None) -> (predictions, state)`, values
(B, T, F) float, predictions (B, T, F) (row t predicts step t + 1), state a tuple of (L, B, H). It works
on normalised values; `forecast` feeds its own predictions back for several steps ahead, and the
loaded model (rnnkit.tasks.series.load) carries the normalisation to speak in the data's units.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ForecasterConfig
from .lm import FAMILIES


class SeriesRNN(nn.Module):
    """`mean`, `std` (F,) and `columns` travel with a loaded model; the network never reads them."""

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        if config.num_features < 1:
            raise ValueError("ForecasterConfig.num_features must be set (>= 1) from the data")
        self.config = config
        family = FAMILIES[config.cell]
        self.embed = nn.Linear(config.num_features, config.embed_size)
        self.rnn = family.make_fused(config.embed_size, config)
        family.init_weights(self.rnn, config)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.num_features)
        self.mean = self.std = self.columns = None

    def forward(self, values: torch.Tensor, state=None):
        """values (B, T, F) -> next-step predictions (B, T, F), state (tuple of (L, B, H))."""
        x = self.embed(values)  # (B, T, E)
        if state is not None and len(state) == 1:
            state = state[0]
        out, new = self.rnn(x, state)  # (B, T, H)
        new = tuple(new) if isinstance(new, tuple) else (new,)
        return self.head(self.drop(out)), new

    @torch.no_grad()
    def forecast_normalised(self, history: torch.Tensor, steps: int) -> torch.Tensor:
        """Read history (B, T, F), then predict `steps` steps, each fed back as the next input: (B, steps, F)."""
        pred, state = self(history)
        nxt = pred[:, -1:]  # (B, 1, F)
        out = [nxt]
        for _ in range(steps - 1):
            nxt, state = self(nxt, state)
            out.append(nxt)
        return torch.cat(out, dim=1)

    def forecast(self, history, steps: int = 1) -> np.ndarray:
        """The next `steps` values after `history` ((T, F) or (T,) in the data's units), in its units."""
        if self.mean is None:
            raise ValueError("this model has no normalisation attached; load it with rnnkit.load(run_dir)")
        self.eval()
        h = np.asarray(history, dtype=np.float64).reshape(len(history), -1)
        x = torch.from_numpy(((h - self.mean) / self.std).astype(np.float32))[None]
        return self.forecast_normalised(x.to(self.head.weight.device), steps)[0].cpu().numpy() * self.std + self.mean

    # -- whole series, in the data's units ---------------------------------------------------------

    @torch.no_grad()
    def one_step(self, norm: np.ndarray) -> np.ndarray:
        """Teacher-forced one-step predictions (N, F) for a normalised series (N, F): row t is the
        prediction of step t from steps 0..t-1 (row 0, with nothing before it, is NaN)."""
        was_training = self.training
        self.eval()
        try:
            pred, _ = self(torch.from_numpy(np.asarray(norm, dtype=np.float32))[None].to(self.head.weight.device))
        finally:
            self.train(was_training)
        out = np.full(norm.shape, np.nan)
        out[1:] = pred[0, :-1].float().cpu().numpy()
        return out

    @torch.no_grad()
    def ahead(self, norm: np.ndarray, start: int, horizon: int) -> np.ndarray:
        """Predictions of steps start..N-1 of a normalised series, each made `horizon` steps ahead:
        the model reads the true series up to step t - horizon, then feeds its own predictions back.
        (N - start, F)."""
        if horizon == 1:
            return self.one_step(norm)[start:]
        self.eval()
        x = torch.from_numpy(np.asarray(norm, dtype=np.float32)).to(self.head.weight.device)
        return np.stack([self.forecast_normalised(x[None, :t - horizon + 1], horizon)[0, -1].cpu().numpy()
                         for t in range(start, len(norm))])

    def evaluate(self, values, horizon: int = 1, start: int | None = None) -> dict:
        """MSE and MAE (over the columns, and per column) of the predictions of steps start..N-1 of
        `values` ((N, F) or (N,), the data's units), each made `horizon` steps ahead, beside persistence
        (the value `horizon` steps before); `start` defaults to `horizon`. Also the truth and the
        predictions, for plotting."""
        if self.mean is None:
            raise ValueError("this model has no normalisation attached; load it with rnnkit.load(run_dir)")
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)  # (N, F)
        start = horizon if start is None else max(start, horizon)
        if start >= len(values):
            raise ValueError(f"no steps to score: {len(values)} values, scoring from step {start}")
        pred = self.ahead((values - self.mean) / self.std, start, horizon) * self.std + self.mean  # (n, F)
        truth, last = values[start:], values[start - horizon:len(values) - horizon]
        scores = {}  # averaged over the columns (each in its own units), and per column
        for name, guess in (("", pred), ("persistence_", last)):
            for metric, err in (("mse", (guess - truth) ** 2), ("mae", np.abs(guess - truth))):
                scores[f"{name}{metric}"] = float(err.mean())
                scores[f"{name}{metric}_by_column"] = err.mean(axis=0).tolist()
        return {"horizon": horizon, "steps": int(len(truth)), "columns": self.columns, **scores,
                "truth": truth.tolist(), "predictions": pred.tolist()}
