"""Classifying an image by a few glimpses: the recurrent attention model of Mnih et al. 2014 ("RAM"),
with the two whole-image baselines it is measured against.

    retina:    at location l in [-1, 1]^2 (x, y; the image's corners are -1 and 1), `scales` square
               patches centred on l, of glimpse_size * 2^k pixels (k = 0 .. scales - 1), each
               averaged down to glimpse_size x glimpse_size; outside the image is 0
    glimpse:   g_t = ReLU(W_g ReLU(W_p rho(x, l)) + W_l ReLU(W_q l))           (hidden_size)
    core:      h_t = RNN/LSTM/GRU stack(g_t, h_{t-1})
    location:  the next location's mean mu_t = tanh(W_m h_t), l_{t+1} ~ N(mu_t, sigma^2) clipped to
               [-1, 1] in training, mu_t itself in evaluation; h_t is detached, so the location
               network learns from REINFORCE alone (its gradient is the policy gradient, not
               backpropagation through the non-differentiable patch extraction)
    baseline:  b_t = W_b h_t (detached), regressed onto the reward, subtracted from it to reduce the
               variance of REINFORCE
    action:    after the last glimpse, logits = W_c h_T over the classes

The first glimpse is at the centre (0, 0); with three scales its coarsest patch covers the whole of
a canvas up to four times the glimpse wide, at a quarter of the resolution: where to look next is
in the first glimpse. The task (rnnkit.tasks.glimpse) trains the classifier by cross-entropy and the
locations by REINFORCE with reward 1 for a right class and 0 otherwise (Mnih et al.'s).

`network` = "cnn" or "mlp" reads the whole image instead (the baselines): the captioner's three
convolution blocks (rnnkit.models.captioner.ImageEncoder) then a linear layer; or two hidden ReLU
layers of hidden_size over the pixels.

Contract: `forward(images (B, H, W, C) in [0, 1], sample=False) -> Glimpses` whose `logits` are
(B, classes); for RAM, `locations` (B, N, 2), and in sampling mode `log_pi` and `baselines`
(B, N - 1), the log-density of each sampled location and the baseline beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GlimpseConfig
from .captioner import CHANNELS, ImageEncoder
from .lm import FAMILIES


@dataclass
class Glimpses:
    logits: torch.Tensor                     # (B, classes)
    locations: torch.Tensor | None = None    # (B, N, 2) every glimpse's centre, in [-1, 1] (x, y)
    log_pi: torch.Tensor | None = None       # (B, N - 1) log-density of each sampled location (sampling only)
    baselines: torch.Tensor | None = None    # (B, N - 1) the reward baseline of each sampled location


def pyramid(images: torch.Tensor, glimpse_size: int, scales: int) -> tuple[list[torch.Tensor], int]:
    """The image (B, C, H, W), zero-padded for the largest patch, and each scale's box-filtered copy
    (the mean of every 2^k x 2^k window, stride 1), with the padding: one patch of scale k is then a
    strided gather from level k. The windows' sums come from one summed-area table (four lookups a
    window), many times faster on a CPU than average pooling with stride 1."""
    pad = glimpse_size * 2 ** (scales - 1) // 2 + 1
    x = F.pad(images, (pad, pad, pad, pad))
    table = F.pad(x.cumsum(2).cumsum(3), (1, 0, 1, 0))  # table[i, j] = sum of x[:i, :j]
    levels = [x]
    for k in range(1, scales):
        s = 2 ** k
        levels.append((table[..., s:, s:] - table[..., :-s, s:] - table[..., s:, :-s] + table[..., :-s, :-s]) / (s * s))
    return levels, pad


def retina(levels: list[torch.Tensor], pad: int, loc: torch.Tensor, glimpse_size: int) -> torch.Tensor:
    """The glimpses at `loc` (B, 2) in [-1, 1] (x, y): (B, scales, C, g, g). The centre is rounded to
    the nearest pixel; cell (i, j) of scale k is the mean of the 2^k x 2^k pixels starting at
    centre - g 2^k / 2 + (i 2^k, j 2^k)."""
    B, _, Hp, Wp = levels[0].shape
    H, W = Hp - 2 * pad, Wp - 2 * pad
    cx = torch.round((loc[:, 0] + 1) / 2 * W).long()
    cy = torch.round((loc[:, 1] + 1) / 2 * H).long()
    b = torch.arange(B, device=loc.device)[:, None, None]
    out = []
    for k, level in enumerate(levels):
        s = 2 ** k
        offsets = torch.arange(glimpse_size, device=loc.device) * s - glimpse_size * s // 2 + pad
        rows, cols = cy[:, None] + offsets, cx[:, None] + offsets  # (B, g) each
        out.append(level.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2))
    return torch.stack(out, dim=1)


def retina_reference(images: torch.Tensor, loc: torch.Tensor, glimpse_size: int, scales: int) -> torch.Tensor:
    """The same glimpses one image and one cell at a time, by slicing and averaging: the slow, obvious
    version that the tests hold `retina` to."""
    B, C, H, W = images.shape
    out = torch.zeros(B, scales, C, glimpse_size, glimpse_size, dtype=images.dtype)
    for n in range(B):
        cx = int(torch.round((loc[n, 0] + 1) / 2 * W))
        cy = int(torch.round((loc[n, 1] + 1) / 2 * H))
        for k in range(scales):
            s = 2 ** k
            top, left = cy - glimpse_size * s // 2, cx - glimpse_size * s // 2
            for i in range(glimpse_size):
                for j in range(glimpse_size):
                    total = torch.zeros(C, dtype=images.dtype)
                    for y in range(top + i * s, top + (i + 1) * s):
                        for x in range(left + j * s, left + (j + 1) * s):
                            if 0 <= y < H and 0 <= x < W:
                                total += images[n, :, y, x]
                    out[n, k, :, i, j] = total / (s * s)
    return out


class GlimpseClassifier(nn.Module):
    """A recurrent attention model (network "ram") or a whole-image baseline ("cnn", "mlp").
    `classes` (list of str) travels with the model for `predict`."""

    def __init__(self, config: GlimpseConfig, classes: list[str] | None = None):
        super().__init__()
        c = self.config = config
        if c.num_classes < 2 or len(c.image_shape) != 3:
            raise ValueError("GlimpseConfig.num_classes and image_shape must be set from the data")
        self.classes = classes
        H, W, C = c.image_shape
        if c.network == "ram":
            self.patch = nn.Linear(c.scales * C * c.glimpse_size ** 2, c.glimpse_hidden)
            self.where = nn.Linear(2, c.glimpse_hidden)
            self.patch_out = nn.Linear(c.glimpse_hidden, c.hidden_size)
            self.where_out = nn.Linear(c.glimpse_hidden, c.hidden_size)
            family = FAMILIES[c.cell]
            self.rnn = family.make_fused(c.hidden_size, c)
            family.init_weights(self.rnn, c)
            if c.glimpses > 1:  # one glimpse is at the centre: no location to choose
                self.locator = nn.Linear(c.hidden_size, 2 if c.location_policy == "gaussian" else c.glimpse_size ** 2)
                self.baseline = nn.Linear(c.hidden_size, 1)
                if c.location_policy == "grid":
                    self.cell_scores = nn.Sequential(nn.Conv2d(C, 16, 3, padding=1), nn.ReLU(),
                                                     nn.Conv2d(16, 1, 3, padding=1))
        elif c.network == "cnn":
            if min(H, W) < 8:
                raise ValueError(f"the CNN baseline needs images of at least 8 x 8 pixels, got {H} x {W}")
            self.image_encoder = ImageEncoder(C)
            self.image_proj = nn.Linear((H // 8) * (W // 8) * CHANNELS[-1], c.hidden_size)
        else:
            self.mlp = nn.Sequential(nn.Linear(H * W * C, c.hidden_size), nn.ReLU(),
                                     nn.Linear(c.hidden_size, c.hidden_size), nn.ReLU())
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_size, c.num_classes)

    def forward(self, images: torch.Tensor, sample: bool = False) -> Glimpses:
        c = self.config
        if c.network == "cnn":
            z = torch.relu(self.image_proj(self.image_encoder(images).flatten(1)))
            return Glimpses(self.out(self.drop(z)))
        if c.network == "mlp":
            return Glimpses(self.out(self.drop(self.mlp(images.flatten(1)))))
        return self._glimpses(images, sample)

    def _glimpses(self, images: torch.Tensor, sample: bool) -> Glimpses:
        c = self.config
        B = images.shape[0]
        levels, pad = pyramid(images.permute(0, 3, 1, 2), c.glimpse_size, c.scales)
        loc = images.new_zeros(B, 2)
        locations, log_pi, baselines, state = [loc], [], [], None
        for t in range(c.glimpses):
            seen = retina(levels, pad, loc, c.glimpse_size).flatten(1)
            g = torch.relu(self.patch_out(torch.relu(self.patch(seen))) + self.where_out(torch.relu(self.where(loc))))
            out, state = self.rnn(g[:, None], state)
            h = out[:, 0]
            if t == c.glimpses - 1:
                break
            if c.location_policy == "grid":
                loc, lp = self._grid_step(levels, pad, loc, h.detach(), sample)
            else:
                loc, lp = self._gaussian_step(h.detach(), sample)
            if sample:
                log_pi.append(lp)
                baselines.append(self.baseline(h.detach())[:, 0])
            locations.append(loc)
        logits = self.out(self.drop(h))
        stack = (lambda xs: torch.stack(xs, 1) if xs else images.new_zeros(B, 0)) if sample else (lambda xs: None)
        return Glimpses(logits, torch.stack(locations, 1), stack(log_pi), stack(baselines))

    def _gaussian_step(self, h: torch.Tensor, sample: bool):
        """The next location from N(tanh(W_m h), sigma^2), clipped to the image, and its log-density
        (of the unclipped draw: the density of what the policy did; clipping first would bias the
        gradient toward the edges)."""
        mu = torch.tanh(self.locator(h))
        if not sample:
            return mu.detach(), None
        std = self.config.location_std
        draw = (mu + std * torch.randn_like(mu)).detach()
        log_pi = -((draw - mu) ** 2).sum(-1) / (2 * std ** 2)  # up to a constant; the gradient flows into mu
        return draw.clamp(-1, 1), log_pi

    def _grid_step(self, levels, pad: int, loc: torch.Tensor, h: torch.Tensor, sample: bool):
        """The next location as one of the g x g cells of the current glimpse's coarsest patch, chosen
        from logits = conv(that patch) + W_m h (a categorical policy: where the patch shows something,
        and what the core wants next), and its log-probability; the cell's centre, clipped to the image."""
        c = self.config
        coarse = retina(levels[-1:], pad, loc, c.glimpse_size)[:, 0]  # (B, C, g, g): level k = scales - 1 ...
        logits = self.cell_scores(coarse).flatten(1) + self.locator(h)  # (B, g * g)
        cell = torch.multinomial(logits.softmax(-1), 1)[:, 0] if sample else logits.argmax(-1)
        log_pi = logits.log_softmax(-1).gather(1, cell[:, None])[:, 0] if sample else None
        H, W = c.image_shape[:2]
        width = 2 ** (c.scales - 1)  # pixels per cell
        offset = (torch.stack([cell % c.glimpse_size, cell // c.glimpse_size], -1).to(loc.dtype) + 0.5) * width \
            - c.glimpse_size * width / 2  # (B, 2) pixels from the patch's centre, (x, y)
        return (loc + offset * 2 / torch.tensor([W, H], dtype=loc.dtype, device=loc.device)).clamp(-1, 1), log_pi

    @torch.no_grad()
    def predict(self, images, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """The `top_k` classes with their probabilities of each image (B, H, W, C) in [0, 1]."""
        was_training = self.training
        self.eval()
        try:
            probs = F.softmax(self(torch.as_tensor(images, dtype=torch.float32)).logits.float(), dim=-1)
        finally:
            self.train(was_training)
        p, idx = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        names = self.classes or [str(i) for i in range(probs.shape[-1])]
        return [[(names[j], float(q)) for j, q in zip(row_i.tolist(), row_p.tolist())] for row_i, row_p in zip(idx, p)]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
