"""Visual question answering: an RNN reads the question, a CNN the image, and a classifier picks the
answer from those seen in training (Antol et al. 2015's "LSTM Q + I"; fused here by concatenation
and a hidden layer, as in Jabri et al. 2016's strong MLP baseline).

    question: word embedding -> RNN/LSTM/GRU stack (packed, so padding never enters) -> last layer's
              final state q (H)
    image:    the captioner's CNN (rnnkit.models.captioner.ImageEncoder) -> its whole grid, flattened
              (so where things are survives) -> linear -> ReLU -> v (H); or with --attention additive
              (one hop of Yang et al. 2016's stacked attention), each cell a_s of the grid plus a learnt
              embedding of its position, scored against the question, e_s = w^T tanh(W_a a_s + W_q q),
              alpha = softmax(e) over the S cells, v = ReLU(W_v sum_s alpha_s a_s)
    answer:   logits = W_o dropout(ReLU(W_f [q; v])) over the training answers

`inputs` picks what the model may see, for the dataset-bias lesson of Jabri et al.: "both" (the
model above), "question" (W_f reads q alone: how far the question's words go) or "image" (v alone:
what the image says whatever was asked). The three share everything else, so a table of the three
on one split shows what each input is worth. (An element-wise product of q and v, Antol et al.'s
fusion, learnt nothing of the image in 1,200 steps on the scenes, where this one does.)

Contract: `forward(images (B, H, W, C) in [0, 1], tokens (B, T), lengths (B,)) -> logits (B, A)`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..config import VQAConfig
from ..data.pairs import PAD, pad_ids
from .captioner import CHANNELS, ImageEncoder
from .lm import FAMILIES


class VQAModel(nn.Module):
    """`question_vocab` (rnnkit.data.pairs.SideVocab) and `answers` (list of str) travel with the model
    for `answer`; the network never reads them."""

    def __init__(self, config: VQAConfig, question_vocab=None, answers=None):
        super().__init__()
        c = self.config = config
        if c.vocab_size < 1 or c.num_answers < 1 or len(c.image_shape) != 3:
            raise ValueError("VQAConfig.vocab_size, num_answers and image_shape must be set from the data")
        self.question_vocab, self.answers = question_vocab, answers
        family = FAMILIES[c.cell]
        self.embed = nn.Embedding(c.vocab_size, c.embed_size, padding_idx=PAD)
        self.rnn = family.make_fused(c.embed_size, c)
        family.init_weights(self.rnn, c)
        self.image_encoder = ImageEncoder(c.image_shape[2])
        H, W = c.image_shape[0] // 8, c.image_shape[1] // 8
        if min(H, W) < 1:
            raise ValueError(f"images must be at least 8 x 8 pixels for the image encoder, got {c.image_shape}")
        if c.attention == "additive":
            M = CHANNELS[-1]
            self.cell_position = nn.Parameter(torch.zeros(H * W, M))  # where each cell is, learnt
            nn.init.normal_(self.cell_position, std=0.1)
            self.att_cell, self.att_question = nn.Linear(M, c.hidden_size), nn.Linear(c.hidden_size, c.hidden_size)
            self.att_v = nn.Linear(c.hidden_size, 1, bias=False)
            self.image_proj = nn.Linear(M, c.hidden_size)
        else:
            self.image_proj = nn.Linear(H * W * CHANNELS[-1], c.hidden_size)
        self.fuse = nn.Linear(c.hidden_size * (2 if c.inputs == "both" else 1), c.hidden_size)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_size, c.num_answers)

    def question_state(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(tokens))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, final = self.rnn(packed)
        h = final[0] if isinstance(final, tuple) else final  # (L, B, H)
        return h[-1]

    def image_state(self, images: torch.Tensor, question: torch.Tensor | None = None):
        """v (B, H), and the attention weights (B, h, w) over the grid (None without attention)."""
        grid = self.image_encoder(images)  # (B, h, w, 128)
        if self.config.attention == "none":
            return torch.relu(self.image_proj(grid.flatten(1))), None
        cells = grid.flatten(1, 2) + self.cell_position  # (B, S, 128)
        scores = self.att_v(torch.tanh(self.att_cell(cells) + self.att_question(question)[:, None]))[..., 0]  # (B, S)
        alpha = scores.softmax(dim=-1)
        v = torch.relu(self.image_proj(torch.bmm(alpha[:, None], cells)[:, 0]))
        return v, alpha.view(grid.shape[:3])

    def forward(self, images, tokens, lengths, return_attention: bool = False):
        """logits (B, A); with `return_attention`, also the weights (B, h, w) over the grid (None when
        the model has no attention or sees no image)."""
        seen = self.config.inputs
        q = self.question_state(tokens, lengths) if seen != "image" else None
        v, alpha = self.image_state(images, q) if seen != "question" else (None, None)
        parts = ([q] if seen != "image" else []) + ([v] if seen != "question" else [])
        logits = self.out(self.drop(torch.relu(self.fuse(torch.cat(parts, dim=-1)))))
        return (logits, alpha) if return_attention else logits

    @torch.no_grad()
    def answer(self, images, questions: list[str], top_k: int = 1, batch_size: int = 256,
               attention: list | None = None) -> list[list[tuple[str, float]]]:
        """The `top_k` answers (with probabilities) to each question about the image beside it:
        `images` uint8 (N, H, W, C), one per question. A list given as `attention` receives each
        question's weights over the grid ((h, w) NumPy arrays; needs --attention additive)."""
        if attention is not None and self.config.attention == "none":
            raise ValueError("this model has no attention over the image (it was trained with --attention none)")
        if self.question_vocab is None:
            raise ValueError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
        from ..data.captions import normalise
        images = np.asarray(images)
        if images.shape[1:] != tuple(self.config.image_shape) or len(images) != len(questions):
            raise ValueError(f"answer needs one image of {' x '.join(map(str, self.config.image_shape))} per question")
        self.eval()
        device = self.out.weight.device
        out = []
        for i in range(0, len(questions), batch_size):
            tokens, lengths = pad_ids([self.question_vocab.encode(normalise(q)) for q in questions[i:i + batch_size]])
            x = torch.from_numpy(images[i:i + batch_size]).float().to(device) / 255.0
            logits, alpha = self(x, tokens.to(device), lengths, return_attention=True)
            p = logits.softmax(dim=-1)
            if attention is not None:
                attention += list(alpha.float().cpu().numpy())
            top = p.topk(min(top_k, p.shape[-1]), dim=-1)
            out += [[(self.answers[j], float(v)) for v, j in zip(vs.tolist(), js.tolist())]
                    for vs, js in zip(top.values, top.indices)]
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
