"""Image captioning: a CNN reads the image into a grid of feature vectors, and the encoder-decoder's
decoder (rnnkit.models.seq2seq) writes the caption a word at a time, looking at the grid.

    encoder:  image (H, W, C) in [0, 1] -> three blocks of 3x3 convolution, ReLU, 2x2 max pooling
              (32, 64, 128 channels) -> a grid of (H/8) x (W/8) annotation vectors a_1..a_S (128 each)
    start:    h_0 = tanh(W_h mean(a)), c_0 = W_c mean(a), per decoder layer (Xu et al. 2015)
    decoder:  the seq2seq decoder: with attention (Show, Attend and Tell: soft attention over the grid,
              the score chosen by --attention), or `--attention none` (Show and Tell: the image
              reaches the decoder only through its start state; Vinyals et al. feed it as the first
              input instead, which carries the same information into the first step)

Everything after the encoder is Seq2Seq's: teacher forcing, greedy decoding, sampling, batched beam
search, attention weights (B, T, S) over the grid's S cells, row by row. The doubly stochastic
regularisation of Xu et al. (every cell's attention summed over the caption close to 1) is a term
of the caption task's loss (rnnkit.tasks.caption), weighted by --attention-penalty.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import CaptionConfig
from .seq2seq import Seq2Seq

CHANNELS = (32, 64, 128)


class ImageEncoder(nn.Module):
    """images (B, H, W, C) -> feature grid (B, H/8, W/8, 128); trained from scratch with the decoder."""

    def __init__(self, channels: int):
        super().__init__()
        layers, c_in = [], channels
        for c_out in CHANNELS:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class Captioner(Seq2Seq):
    """A Seq2Seq whose source is an image. `target_vocab` (rnnkit.data.pairs.SideVocab) travels with
    the model for `caption`."""

    def __init__(self, config: CaptionConfig, target_vocab=None):
        super().__init__(config, source_vocab=None, target_vocab=target_vocab)

    def build_encoder(self, c) -> int:
        H, W, C = c.image_shape
        if min(H, W) < 8:
            raise ValueError(f"images must be at least 8 x 8 pixels for the image encoder, got {H} x {W}")
        self.image_encoder = ImageEncoder(C)
        M = CHANNELS[-1]
        self.start_h = nn.Linear(M, c.num_layers * c.hidden_size)
        self.start_c = nn.Linear(M, c.num_layers * c.hidden_size) if c.cell == "lstm" else None
        return M

    def grid_shape(self) -> tuple[int, int]:
        H, W, _ = self.config.image_shape
        return H // 8, W // 8

    def encode(self, images: torch.Tensor, lengths=None):
        """images (B, H, W, C) floats in [0, 1] -> memory (B, S, 128) of the S grid cells (row by row),
        mask (B, S) all True, the decoder's start state and the attention keys."""
        c = self.config
        grid = self.image_encoder(images)
        memory = grid.reshape(grid.shape[0], -1, grid.shape[-1])  # (B, S, M)
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
        mean = memory.mean(dim=1)
        layers = lambda x: x.view(-1, c.num_layers, c.hidden_size).transpose(0, 1).contiguous()  # noqa: E731
        state = (layers(torch.tanh(self.start_h(mean))),)
        if self.start_c is not None:
            state += (layers(self.start_c(mean)),)
        return memory, mask, state, self.keys(memory)

    def max_length_for(self, lengths) -> int:
        return self.config.max_length or 30

    @staticmethod
    def image_batch(images) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, H, W, C) -> (floats in [0, 1], placeholder lengths): Seq2Seq's decoding
        takes (source, lengths)."""
        x = torch.as_tensor(images).float() / 255.0
        return x, torch.ones(x.shape[0], dtype=torch.int64)

    def caption(self, images, beam: int = 0, nbest: int = 1, temperature: float = 0.0, max_length: int | None = None,
                seed: int = 0, batch_size: int = 64) -> list[list[tuple[str, float]]]:
        """The `nbest` captions (with scores) of each uint8 image (N, H, W, C) or (H, W, C): greedy by
        default, sampled with `temperature` > 0, beam search with `beam` >= 1."""
        if self.target_vocab is None:
            raise ValueError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
        images = torch.from_numpy(np.array(images)) if isinstance(images, np.ndarray) else torch.as_tensor(images)
        images = images[None] if images.dim() == 3 else images
        if tuple(images.shape[1:]) != tuple(self.config.image_shape):
            raise ValueError(f"this model reads images of {' x '.join(map(str, self.config.image_shape))}, got "
                             f"{' x '.join(map(str, images.shape[1:]))}")
        batches = (self.image_batch(images[i:i + batch_size]) for i in range(0, len(images), batch_size))
        return self.decode_all(batches, beam, nbest, temperature, max_length, seed)

    @torch.no_grad()
    def attention_grid(self, image, beam: int = 0):
        """(output tokens with </s>, weights (T, grid H, grid W)) of the model's caption of one image."""
        self.eval()
        from ..data.pairs import pad_ids
        text = self.caption(image, beam=beam)[0][0][0]
        x, lengths = self.image_batch(torch.from_numpy(np.array(image))[None])
        tgt, _ = pad_ids([self.target_vocab.encode(text)], bos=True, eos=True)
        device = self.out.weight.device
        _, attention = self(x.to(device), lengths, tgt[:, :-1].to(device))
        tokens = self.target_vocab.split(text) + ["</s>"]
        return text, tokens, attention[0].float().cpu().numpy().reshape(len(tokens), *self.grid_shape())
