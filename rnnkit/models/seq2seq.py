"""Sequence to sequence: an RNN encoder reads the source, an RNN decoder writes the target one token at
a time, looking back at the encoder's states (Sutskever et al. 2014; Cho et al. 2014; attention:
Bahdanau et al. 2015, Luong et al. 2015; the PyTorch tutorial "translation with a sequence to
sequence network and attention", batched).

    encoder:  embedding (V_s -> E) -> RNN/LSTM/GRU stack (H units, optionally both directions)
              -> memory m_1..m_S (B, S, D x H), and its final state bridged to the decoder's
    decoder:  h_t = RNN([embedding(y_{t-1}); a~_{t-1}], h_{t-1})          (input feeding: a~ of the last step)
              scores_ts = score(h_t, m_s), masked to the real source positions, softmax -> alpha_t (B, S)
              c_t = sum_s alpha_ts m_s;  a~_t = tanh(W_c [c_t; h_t]);  logits_t = W_o a~_t
    score:    dot h^T m (m projected to H if bidirectional), general h^T W m (Luong), additive
              v^T tanh(W_1 h + W_2 m) (Bahdanau's form, used Luong-style on the current state);
              "none" is Sutskever's model: no attention, a~_t = h_t, the source reaches the decoder only
              through the bridged final state.

The bridge: a unidirectional encoder's final state starts the decoder as it is (same L, H); a
bidirectional one's two directions, side by side per layer, go through a linear layer (and tanh for
h) to H. Deviation from Bahdanau: his score uses the previous decoder state and feeds c_t into the RNN;
with input feeding (Luong) the attentional vector of step t - 1 enters step t, which carries the same
information, and one decoder step stays one fused RNN call. Without input feeding, teacher forcing
needs no step's output for the next, and the whole target goes through the decoder RNN in one call.

Contract: `forward(source, source_lengths, target_in) -> (logits (B, T, V_t), attention (B, T, S))`,
teacher forcing; the source is packed, so padding never enters the encoder's state, and attention
gives padded positions exactly 0. `translate` decodes greedily, by sampling or by beam search.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config import Seq2SeqConfig
from ..data.pairs import BOS, EOS, PAD, UNK, pad_ids
from .lm import FAMILIES


class Seq2Seq(nn.Module):
    """`source_vocab` and `target_vocab` (rnnkit.data.pairs.SideVocab) travel with the model for
    `translate`; the network never reads them."""

    def __init__(self, config: Seq2SeqConfig, source_vocab=None, target_vocab=None):
        super().__init__()
        c = config
        if c.target_vocab_size < 1:
            raise ValueError("the config's target_vocab_size must be set from the data")
        self.config, self.source_vocab, self.target_vocab = c, source_vocab, target_vocab
        family = self.family = FAMILIES[c.cell]
        H, E = c.hidden_size, c.embed_size
        M = self.build_encoder(c)  # width of the memory
        self.tgt_embed = nn.Embedding(c.target_vocab_size, E, padding_idx=PAD)
        self.feeds = c.input_feeding and c.attention != "none"
        feed = H if self.feeds else 0
        self.decoder = family.make_fused(E + feed, c)
        family.init_weights(self.decoder, c)
        if c.attention == "dot":
            self.mem_proj = nn.Linear(M, H, bias=False) if M != H else None
        elif c.attention == "general":
            self.att_w = nn.Linear(M, H, bias=False)
        elif c.attention == "additive":
            self.att_h, self.att_m = nn.Linear(H, H, bias=False), nn.Linear(M, H)
            self.att_v = nn.Linear(H, 1, bias=False)
        if c.attention != "none":
            self.combine = nn.Linear(M + H, H, bias=False)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(H, c.target_vocab_size)
        if c.tie_embeddings:  # the decoder's input embedding is its output layer (Press & Wolf 2017)
            if E != H:
                raise ValueError("--tie-embeddings needs --embed-size equal to --hidden-size")
            self.out.weight = self.tgt_embed.weight

    # -- the encoder ------------------------------------------------------------------------------

    def build_encoder(self, c) -> int:
        """The source's embedding, encoder and bridge; returns the width of the memory (what a
        subclass with another kind of source, such as images, replaces)."""
        if c.source_vocab_size < 1:
            raise ValueError("Seq2SeqConfig.source_vocab_size must be set from the data")
        D = 2 if c.bidirectional else 1
        self.src_embed = nn.Embedding(c.source_vocab_size, c.embed_size, padding_idx=PAD)
        self.encoder = self.family.make_fused(c.embed_size, c, bidirectional=c.bidirectional)
        self.family.init_weights(self.encoder, c)
        self.bridge = nn.Linear(D * c.hidden_size, c.hidden_size) if D == 2 else None
        return D * c.hidden_size

    def encode(self, source: torch.Tensor, lengths: torch.Tensor):
        """source (B, S), lengths (B,) -> memory (B, S', D x H), mask (B, S') True at real positions,
        the decoder's initial state (tuple of (L, B, H)), and the memory's keys for attention."""
        c = self.config
        x = self.drop(self.src_embed(source))  # (B, S, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True)  # (B, S', D x H), zeros past each length
        mask = torch.arange(memory.shape[1], device=memory.device)[None] < lengths.to(memory.device)[:, None]
        final = final if isinstance(final, tuple) else (final,)
        if c.bidirectional:  # (L x 2, B, H) -> (L, B, 2H) -> (L, B, H)
            final = tuple(s.view(c.num_layers, 2, *s.shape[1:]).permute(0, 2, 1, 3).reshape(c.num_layers, s.shape[1], -1)
                          for s in final)
            final = tuple(torch.tanh(self.bridge(s)) if i == 0 else self.bridge(s) for i, s in enumerate(final))
        return memory, mask, tuple(s.contiguous() for s in final), self.keys(memory)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """What the decoder state is scored against, computed once per source."""
        a = self.config.attention
        if a == "dot":
            return self.mem_proj(memory) if self.mem_proj is not None else memory  # (B, S, H)
        if a == "general":
            return self.att_w(memory)  # (B, S, H): h^T W m = h . (W m)
        if a == "additive":
            return self.att_m(memory)  # (B, S, H): W_2 m + b
        return memory

    # -- one decoder step -------------------------------------------------------------------------

    def step(self, y_prev: torch.Tensor, state, feed: torch.Tensor | None, memory, mask, keys):
        """y_prev (B,) -> logits (B, V_t), new state, the attentional vector a~_t (B, H) (the next
        step's input feed), attention weights (B, S) (zeros for attention "none")."""
        x = self.drop(self.tgt_embed(y_prev))  # (B, E)
        if self.feeds:
            x = torch.cat([x, feed], dim=-1)  # (B, E + H)
        out, new = self.decoder(x[:, None], state if len(state) == 2 else state[0])  # (B, 1, H)
        new = new if isinstance(new, tuple) else (new,)
        att, alpha = self.attend(out, memory, mask, keys)
        return self.out(self.drop(att[:, 0])), new, att[:, 0], alpha[:, 0]

    def attend(self, h: torch.Tensor, memory, mask, keys):
        """Decoder outputs h (B, T, H) -> attentional vectors a~ (B, T, H) and weights (B, T, S), for
        any number of steps at once (one while decoding, the whole target under teacher forcing
        without input feeding)."""
        if self.config.attention == "none":
            return h, torch.zeros((*h.shape[:2], mask.shape[1]), dtype=h.dtype, device=h.device)
        if self.config.attention == "additive":
            scores = self.att_v(torch.tanh(self.att_h(h)[:, :, None] + keys[:, None])).squeeze(-1)  # (B, T, S)
        else:
            scores = torch.bmm(h, keys.transpose(1, 2))  # (B, T, S)
        alpha = scores.masked_fill(~mask[:, None], float("-inf")).softmax(dim=-1)  # padding gets exactly 0
        context = torch.bmm(alpha, memory)  # (B, T, D x H)
        return torch.tanh(self.combine(torch.cat([context, h], dim=-1))), alpha

    def initial_feed(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(batch, self.config.hidden_size, dtype=like.dtype, device=like.device)

    def forward(self, source, source_lengths, target_in, sampling_ratio: float = 0.0, generator=None):
        """Teacher forcing: target_in (B, T) starts with BOS; logits (B, T, V_t) predict target_in
        shifted by one (and EOS), attention (B, T, S). Without input feeding (or attention) and without
        scheduled sampling, no step needs the one before it, so the decoder runs as one fused RNN call
        over the whole target and attends for every step in one batched product; otherwise it steps
        as decoding does. With `sampling_ratio` > 0 (scheduled sampling, Bengio et al. 2015), each
        step's input is instead the model's own previous guess with that probability, per sequence."""
        memory, mask, state, keys = self.encode(source, source_lengths)
        B, T = target_in.shape
        if not self.feeds and sampling_ratio == 0:  # no step depends on the last one's output: one RNN call
            x = self.drop(self.tgt_embed(target_in))  # (B, T, E); padding only follows the real steps
            out, _ = self.decoder(x, state if len(state) == 2 else state[0])  # (B, T, H)
            att, alpha = self.attend(out, memory, mask, keys)
            return self.out(self.drop(att)), alpha
        feed = self.initial_feed(B, memory)
        logits, attention = [], []
        y = target_in[:, 0]
        for t in range(T):
            out, state, feed, alpha = self.step(y, state, feed, memory, mask, keys)
            logits.append(out)
            attention.append(alpha)
            if t + 1 < T:
                y = target_in[:, t + 1]
                if sampling_ratio > 0:
                    own = out.argmax(dim=-1)
                    use = torch.rand(B, generator=generator, device=y.device) < sampling_ratio
                    y = torch.where(use & (y != PAD), own, y)
        return torch.stack(logits, dim=1), torch.stack(attention, dim=1)

    # -- decoding ---------------------------------------------------------------------------------

    @staticmethod
    def decoding_logp(logits: torch.Tensor) -> torch.Tensor:
        """Log-probabilities to decode with: padding, the start symbol and the unknown token are never
        training targets, so they are never output."""
        logits = logits.float().clone()
        logits[:, [PAD, BOS, UNK]] = float("-inf")
        return F.log_softmax(logits, dim=-1)

    def max_length_for(self, lengths: torch.Tensor) -> int:
        c = self.config
        return c.max_length if c.max_length else int(lengths.max()) * 2 + 10

    @torch.no_grad()
    def greedy(self, source, lengths, max_length: int | None = None, temperature: float = 0.0,
               generator=None) -> tuple[list[list[int]], list[float], torch.Tensor]:
        """Batched greedy decoding (or sampling, with temperature > 0): (token ids of each output,
        without BOS/EOS; their summed log-probabilities; attention (B, T, S))."""
        memory, mask, state, keys = self.encode(source, lengths)
        B = source.shape[0]
        T = max_length or self.max_length_for(lengths)
        feed = self.initial_feed(B, memory)
        y = torch.full((B,), BOS, dtype=torch.int64, device=source.device)
        done = torch.zeros(B, dtype=torch.bool, device=source.device)
        ids, scores, attention = [], torch.zeros(B, device=source.device), []
        for _ in range(T):
            logits, state, feed, alpha = self.step(y, state, feed, memory, mask, keys)
            logp = self.decoding_logp(logits)
            if temperature > 0:
                y = torch.multinomial(F.softmax(logp / temperature, dim=-1), 1, generator=generator)[:, 0]
            else:
                y = logp.argmax(dim=-1)
            scores += torch.where(done, 0.0, logp.gather(1, y[:, None])[:, 0])
            ids.append(torch.where(done, PAD, y))
            attention.append(alpha)
            done |= y == EOS
            if bool(done.all()):
                break
        ids = torch.stack(ids, dim=1).tolist()
        out = [[i for i in row[:row.index(EOS)] if i != PAD] if EOS in row else [i for i in row if i != PAD]
               for row in ids]
        return out, scores.tolist(), torch.stack(attention, dim=1)

    @torch.no_grad()
    def beam_search(self, source, lengths, beam: int = 5, nbest: int = 1, max_length: int | None = None,
                    alpha: float = 0.6) -> list[list[tuple[list[int], float]]]:
        """Beam search, batched over the examples and the beam (B x K hypotheses stepped together):
        for each example its `nbest` outputs (ids without BOS/EOS) with their scores, the summed
        log-probability divided by lp(length) = ((5 + length) / 6) ** alpha (Wu et al. 2016; alpha 0:
        no normalisation), best first. The search ends when no live hypothesis can beat any example's
        nbest-th ended one, or at max_length."""
        memory, mask, state, keys = self.encode(source, lengths)
        B, K, V = source.shape[0], beam, self.config.target_vocab_size
        T = max_length or self.max_length_for(lengths)
        dev = source.device
        rep = lambda t: t.repeat_interleave(K, dim=0)  # noqa: E731  (B, ...) -> (B x K, ...)
        memory, mask, keys = rep(memory), rep(mask), rep(keys)
        state = tuple(s.repeat_interleave(K, dim=1) for s in state)  # (L, B x K, H)
        feed = self.initial_feed(B * K, memory)
        y = torch.full((B * K,), BOS, dtype=torch.int64, device=dev)
        scores = torch.full((B, K), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # one live hypothesis per example to start: the others are copies
        history = torch.zeros(B, K, 0, dtype=torch.int64, device=dev)
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
        lp = lambda n: ((5.0 + n) / 6.0) ** alpha  # noqa: E731
        for t in range(T):
            logits, state, feed, _ = self.step(y, state, feed, memory, mask, keys)
            logp = self.decoding_logp(logits).view(B, K, V)
            total = (scores[:, :, None] + logp).view(B, K * V)  # (B, K x V)
            top, idx = total.topk(K, dim=1)  # (B, K)
            parent, token = idx // V, idx % V
            history = torch.cat([history.gather(1, parent[:, :, None].expand(-1, -1, history.shape[2])),
                                 token[:, :, None]], dim=2)  # (B, K, t + 1)
            ended = (token == EOS) & torch.isfinite(top)
            for b, k in ended.nonzero().tolist():
                finished[b].append((float(top[b, k]) / lp(t + 1), history[b, k, :-1].tolist()))
            scores = top.masked_fill(ended, float("-inf"))  # an ended hypothesis grows no further
            # An example is done when its nbest-th finished hypothesis beats anything a live one could
            # still score: log-probabilities only fall as a hypothesis grows, and lp(T) is the kindest
            # normalisation it could get.
            alive = scores.max(dim=1).values.tolist()
            if all(len(f) >= nbest and sorted(c[0] for c in f)[-nbest] >= a / lp(T) for f, a in zip(finished, alive)):
                break
            flat = (torch.arange(B, device=dev)[:, None] * K + parent).view(-1)  # each new hypothesis' parent
            state = tuple(s[:, flat] for s in state)
            feed = feed[flat]
            y = token.view(-1)
        results = []
        for b in range(B):
            if len(finished[b]) < nbest:  # out of length: the live hypotheses count as they stand
                live = [(float(scores[b, k]) / lp(T), history[b, k].tolist()) for k in range(K)
                        if np.isfinite(float(scores[b, k]))]
                finished[b] += sorted(live, key=lambda c: -c[0])[:nbest - len(finished[b])]
            best = sorted(finished[b], key=lambda c: -c[0])[:nbest]
            results.append([(ids, score) for score, ids in best])
        return results

    # -- conveniences for people holding a loaded model -------------------------------------------

    def translate(self, sources, beam: int = 0, nbest: int = 1, temperature: float = 0.0,
                  max_length: int | None = None, seed: int = 0, batch_size: int = 64) -> list[list[tuple[str, float]]]:
        """The `nbest` outputs for each source text (a list per source, best first, with scores):
        greedy by default, sampling with `temperature` > 0, beam search with `beam` >= 1."""
        if self.source_vocab is None:
            raise ValueError("this model has no vocabularies attached; load it with rnnkit.load(run_dir)")
        sources = [sources] if isinstance(sources, str) else list(sources)
        batches = (pad_ids([self.source_vocab.encode(s) for s in sources[i:i + batch_size]])
                   for i in range(0, len(sources), batch_size))
        return self.decode_all(batches, beam, nbest, temperature, max_length, seed)

    def decode_all(self, batches, beam: int, nbest: int, temperature: float, max_length: int | None,
                   seed: int) -> list[list[tuple[str, float]]]:
        """`decode_batch` over an iterable of (source, lengths) batches, in eval mode, with one seeded
        generator for sampling: what `translate` (and the captioner's `caption`) share."""
        if nbest > max(beam, 1):
            raise ValueError(f"nbest ({nbest}) needs a beam at least as wide")
        self.eval()
        device = self.out.weight.device
        generator = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
        results = []
        for src, lengths in batches:
            results += self.decode_batch(src.to(device), lengths, beam, nbest, temperature, max_length, generator)
        return results

    def decode_batch(self, src, lengths, beam: int = 0, nbest: int = 1, temperature: float = 0.0,
                     max_length: int | None = None, generator=None) -> list[list[tuple[str, float]]]:
        """The texts of one batch of encoded sources: greedy, sampled or beam search, as `translate`."""
        if beam:
            return [[(self.target_vocab.decode(ids), score) for ids, score in hyps]
                    for hyps in self.beam_search(src, lengths, beam, nbest, max_length)]
        ids, scores, _ = self.greedy(src, lengths, max_length, temperature, generator)
        return [[(self.target_vocab.decode(x), s)] for x, s in zip(ids, scores)]

    @torch.no_grad()
    def attention_map(self, source: str, target: str | None = None, beam: int = 0):
        """(source tokens, output tokens, weights (T, S)) for one source: over `target` if given
        (teacher forcing), else over the model's own output (greedy, or the best beam)."""
        self.eval()
        device = self.out.weight.device
        src, lengths = pad_ids([self.source_vocab.encode(source)])
        if target is None:
            target = self.translate(source, beam=beam)[0][0][0]
        tgt, _ = pad_ids([self.target_vocab.encode(target)], bos=True, eos=True)
        _, attention = self(src.to(device), lengths, tgt[:, :-1].to(device))
        out_tokens = self.target_vocab.split(target) + ["</s>"]
        return self.source_vocab.split(source), out_tokens, attention[0].float().cpu().numpy()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
