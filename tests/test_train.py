import json
import math

import pytest
import torch

import rnnkit
from rnnkit import checkpoint as ckpt
from rnnkit.config import TrainConfig
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.train import cpu_lstm_has_bf16, lr_at, resolve_precision

from conftest import SMALL

QUIET = dict(progress=False, log=lambda m: None)


def _losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r], [(r["step"], r["val_loss"]) for r in rows
                                                                   if "val_loss" in r]


def test_resume_continues_exactly(tmp_path, small_corpus):
    # A step schedule and dropout make the learning rate and the RNG part of what must be restored.
    opts = dict(SMALL, dropout=0.2, lr_schedule="step", lr_decay_every=40, lr_decay=0.5, eval_every=50,
                checkpoint_every=1000, **QUIET)
    rnnkit.train(small_corpus, out=tmp_path / "a", max_steps=200, **opts)
    first = rnnkit.train(small_corpus, out=tmp_path / "b", max_steps=100, **opts)
    assert first.step == 100
    resumed = rnnkit.train(resume=tmp_path / "b", max_steps=200, progress=False, log=lambda m: None)
    assert resumed.step == 200
    a_train, a_val = _losses(tmp_path / "a")
    b_train, b_val = _losses(tmp_path / "b")
    assert [s for s, _ in b_train] == list(range(1, 201))  # every step exactly once
    assert a_train == b_train  # identical, not just close
    assert a_val == b_val
    wa, _ = ckpt.load_tensors(tmp_path / "a" / ckpt.LAST)
    wb, _ = ckpt.load_tensors(tmp_path / "b" / ckpt.LAST)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_rejects_changes_that_alter_learning(tmp_path, trained_run):
    with pytest.raises(ConfigError, match="cannot change hidden_size, lr when resuming"):
        rnnkit.train(resume=trained_run.dir, hidden_size=64, lr=0.1, **QUIET)


def test_run_directory_contents_and_checkpoint_round_trip(trained_run):
    d = trained_run.dir
    for name in ("config.json", "model.safetensors", "last.safetensors", "trainer.safetensors", "metrics.jsonl",
                 "loss.png"):
        assert (d / name).is_file(), name
    assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((d / "config.json").read_text())
    assert config["rnnkit_version"] == rnnkit.__version__ and config["vocab"]["kind"] == "char"
    assert config["model"]["hidden_size"] == 32
    loaded = rnnkit.load(d)
    tokens = torch.randint(0, loaded.config.vocab_size, (2, 30))
    torch.testing.assert_close(loaded(tokens)[0], trained_run.model(tokens)[0], rtol=0, atol=0)
    assert trained_run.best_val_loss < math.log(loaded.config.vocab_size)  # learned something


def test_existing_run_directory_is_not_overwritten_without_force(tmp_path, small_corpus):
    out = tmp_path / "run"
    rnnkit.train(small_corpus, out=out, max_steps=3, **SMALL, **QUIET)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already exists; pass --force"):
        rnnkit.train(small_corpus, out=out, max_steps=3, **SMALL, **QUIET)
    assert (out / "model.safetensors").read_bytes() == before
    rnnkit.train(small_corpus, out=out, max_steps=3, force=True, seed=7, **SMALL, **QUIET)
    assert (out / "model.safetensors").read_bytes() != before
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match="not an rnnkit run directory"):
        rnnkit.train(small_corpus, out=other, max_steps=3, force=True, **SMALL, **QUIET)
    assert (other / "thesis.tex").read_text() == "years of work"


def test_overfit_tiny_text_then_reproduce_it_greedily(tmp_path):
    verse = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n"
    f = tmp_path / "verse.txt"
    f.write_text(verse * 30)
    run = rnnkit.train(f, out=tmp_path / "run", cell="lstm", num_layers=1, hidden_size=96, embed_size=16,
                       batch_size=4, seq_len=40, lr=1e-2, max_steps=250, split="1,0,0", sample_every=0, **QUIET)
    out = run.model.sample(prime="Shall", greedy=True, length=len(verse) * 2 - 5)
    assert out == (verse * 2)


def test_stop_conditions(tmp_path, small_corpus):
    run = rnnkit.train(small_corpus, out=tmp_path / "e", max_epochs=0.5, **SMALL, **QUIET)
    assert run.stopped_by == "max_epochs"
    steps_per_epoch = (int(60_000 * 0.9) - 1) // 8 // 16
    assert run.step == math.ceil(0.5 * steps_per_epoch)
    run = rnnkit.train(small_corpus, out=tmp_path / "b", budget="1.5s", **SMALL, **QUIET)
    assert run.stopped_by == "budget" and run.step > 0


def test_divergence_stops_with_a_clear_message(tmp_path, small_corpus):
    with pytest.raises(rnnkit.errors.TrainingDiverged, match=r"at step \d+.*lower learning rate \(--lr"):
        rnnkit.train(small_corpus, out=tmp_path / "d", optimizer="sgd", lr=1e4, grad_clip=0, max_steps=100,
                     **SMALL, **QUIET)


def _inject_nan(monkeypatch, at_calls):
    """Make the training loss NaN on the given calls of cross_entropy (1-based)."""
    real, calls = torch.nn.functional.cross_entropy, [0]

    def loss(*args, **kwargs):
        calls[0] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls[0] in at_calls else value
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", loss)


def test_rollback_on_divergence_reloads_the_checkpoint_and_halves_the_lr(tmp_path, small_corpus, monkeypatch):
    _inject_nan(monkeypatch, {8})  # the 8th step's loss is NaN
    messages = []
    run = rnnkit.train(small_corpus, out=tmp_path / "r", max_steps=12, checkpoint_every=5, eval_every=0,
                       on_divergence="rollback", lr=4e-3, lr_schedule="constant", progress=False, log=messages.append,
                       **SMALL)
    assert run.step == 12
    assert any("loss is NaN at step 8: rolled back to the checkpoint of step 5" in m for m in messages)
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == list(range(1, 13))  # steps 6 and 7 were redone: each appears once
    lrs = {r["step"]: r["lr"] for r in rows if "lr" in r}
    assert lrs[5] == pytest.approx(4e-3) and lrs[6] == lrs[12] == pytest.approx(2e-3)
    assert [r["rollback"] for r in rows if "rollback" in r] == [1]
    _, meta = ckpt.load_tensors(tmp_path / "r" / ckpt.TRAINER)  # the halving survives a resume
    assert meta["progress"]["lr_scale"] == 0.5 and meta["progress"]["rollbacks"] == 1


def test_rollbacks_are_bounded_and_the_default_stops(tmp_path, small_corpus, monkeypatch):
    _inject_nan(monkeypatch, set(range(4, 1000)))  # every step from the 4th on diverges
    with pytest.raises(rnnkit.errors.TrainingDiverged, match=r"at step 4 after 2 rollback\(s\); the last good "
                                                              r"checkpoint is step 3"):
        rnnkit.train(small_corpus, out=tmp_path / "b", max_steps=20, checkpoint_every=3, on_divergence="rollback",
                     max_rollbacks=2, **SMALL, **QUIET)
    with pytest.raises(rnnkit.errors.TrainingDiverged, match=r"loss is NaN at step \d+; the last good checkpoint is "
                                                              r"step \d+ .*--on-divergence rollback"):
        rnnkit.train(small_corpus, out=tmp_path / "s", max_steps=20, **SMALL, **QUIET)


def test_a_nan_gradient_is_caught_before_the_update(tmp_path, small_corpus, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: real(*a, **k) * float("inf"))
    with pytest.raises(rnnkit.errors.TrainingDiverged, match="gradient norm is infinite at step 1"):
        rnnkit.train(small_corpus, out=tmp_path / "g", max_steps=5, **SMALL, **QUIET)
    w, _ = ckpt.load_tensors(tmp_path / "g" / ckpt.LAST)  # the step-0 checkpoint: finite, untouched
    assert all(torch.isfinite(t).all() for t in w.values())


@pytest.mark.parametrize("capability, bf16, lm, other", [
    ((9, 0), True, None, torch.bfloat16),            # H200: TF32, so language models stay fp32
    ((8, 0), True, None, torch.bfloat16),            # A100
    ((7, 0), False, torch.float16, torch.float16),   # V100: no TF32, no bf16: fp16 with loss scaling
])
def test_auto_precision_on_gpus(monkeypatch, capability, bf16, lm, other):
    """--precision auto on CUDA, the GPU's answers stubbed (none here): the language model's fp32 where
    cuDNN has TF32 (benchmarks/gpu_grid.py), mixed precision for unmeasured tasks and older GPUs."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cuda = torch.device("cuda")
    assert resolve_precision("auto", cuda, "lstm", cpu_bf16=False, cuda_mixed=False) is lm
    assert resolve_precision("auto", cuda, "lstm", cpu_bf16=False, cuda_mixed=True) is other
    assert resolve_precision("fp32", cuda, "lstm", cuda_mixed=True) is None
    assert resolve_precision("fp16", cuda, "lstm", cuda_mixed=False) is torch.float16
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # the user turned TF32 off: mixed again
    assert resolve_precision("auto", cuda, "lstm", cuda_mixed=False) is other


def test_mixed_precision_trains_and_resumes_exactly(tmp_path, small_corpus):
    # fp16 with loss scaling (a GRU: PyTorch's CPU LSTM kernel has no fp16) and bf16 run on the CPU
    # too, so the GPU's code path is tested here; the weights stay fp32 and the run resumes exactly.
    opts = dict(SMALL, cell="gru", precision="fp16", lr_schedule="constant", eval_every=0, checkpoint_every=1000,
                **QUIET)
    rnnkit.train(small_corpus, out=tmp_path / "a", max_steps=40, **opts)
    rnnkit.train(small_corpus, out=tmp_path / "b", max_steps=20, **opts)
    rnnkit.train(resume=tmp_path / "b", max_steps=40, progress=False, log=lambda m: None)
    assert _losses(tmp_path / "a")[0] == _losses(tmp_path / "b")[0]
    wa, meta = ckpt.load_tensors(tmp_path / "a" / ckpt.TRAINER)
    wb, _ = ckpt.load_tensors(tmp_path / "b" / ckpt.TRAINER)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert meta["progress"]["grad_scaler"]["scale"] > 1 and wa["model.head.weight"].dtype == torch.float32
    losses = [loss for _, loss in _losses(tmp_path / "a")[0]]
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5

    bf16 = dict(out=tmp_path / "bf16", max_steps=40, precision="bf16", lr_schedule="constant", eval_every=0,
                **SMALL, **QUIET)
    if SMALL.get("cell", "lstm") == "lstm" and not cpu_lstm_has_bf16():  # oneDNN's LSTM without AVX-512
        with pytest.raises(ConfigError, match="no bf16 version on this CPU"):
            rnnkit.train(small_corpus, **bf16)
        assert not (tmp_path / "bf16").exists()
    else:
        run = rnnkit.train(small_corpus, **bf16)
        losses = [loss for _, loss in _losses(tmp_path / "bf16")[0]]
        assert sum(losses[-5:]) / 5 < losses[0] - 0.5 and run.model.head.weight.dtype == torch.float32
    with pytest.raises(ConfigError, match="no fp16 version; use bf16"):
        rnnkit.train(small_corpus, out=tmp_path / "x", max_steps=2, precision="fp16", **SMALL, **QUIET)


def test_init_from_fine_tunes_and_names_missing_characters(tmp_path, trained_run, small_corpus, shakespeare_text):
    other = tmp_path / "other.txt"
    other.write_text(shakespeare_text[30_000:60_000])  # same alphabet, other text
    run = rnnkit.train(other, out=tmp_path / "ft", init_from=trained_run.dir, max_steps=5, batch_size=8, seq_len=16,
                       sample_every=0, **QUIET)
    assert run.model.vocab == trained_run.model.vocab
    alien = tmp_path / "alien.txt"
    alien.write_text(shakespeare_text[:30_000] + "§")
    with pytest.raises(rnnkit.errors.DataError, match="outside the model's vocabulary: '§'; --extend-vocab adds them"):
        rnnkit.train(alien, out=tmp_path / "ft2", init_from=trained_run.dir, max_steps=5, **QUIET)
    assert not (tmp_path / "ft2").exists()


def test_extend_vocab_fine_tunes_on_text_with_new_characters(tmp_path, trained_run, shakespeare_text):
    modern = tmp_path / "modern.txt"
    modern.write_text(shakespeare_text[30_000:40_000] + "\nCafé? ¿Qué tal? Ça va.\n" * 30, encoding="utf-8")
    run = rnnkit.train(modern, out=tmp_path / "ft", init_from=trained_run.dir, extend_vocab=True, max_steps=30,
                       batch_size=8, seq_len=16, sample_every=0, eval_every=0, **QUIET)
    old = trained_run.model.vocab
    assert set(run.model.vocab.chars) == set(old.chars) | set("éQ¿Ç") and run.model.config.vocab_size == len(old) + 4
    model = rnnkit.load(run.dir)  # the grown vocabulary is the run's own: it loads, samples, resumes
    assert model.sample(prime="Café", length=20, seed=1).startswith("Café")
    assert rnnkit.train(resume=run.dir, max_steps=35, **QUIET).step == 35
    assert rnnkit.evaluate(run.dir)["chars"] > 0  # its test split is encoded with the grown vocabulary
    with pytest.raises(ConfigError, match="give --init-from"):
        rnnkit.train(modern, out=tmp_path / "x", extend_vocab=True, max_steps=1, **QUIET)


def test_a_grown_vocabulary_keeps_the_old_characters_behaviour(trained_run):
    from dataclasses import replace
    from rnnkit.data import Vocab
    from rnnkit.models import CharRNN, grow_vocabulary
    base = trained_run.model
    old = base.vocab
    new = Vocab("char", old.chars + ["é", "¿", "\u00a0"])
    grown = CharRNN(replace(base.config, vocab_size=len(new)), vocab=new).eval()
    grown.load_state_dict(grow_vocabulary(base.state_dict(), old, new))
    text = "ROMEO:\nWhat say you, sir?"
    with torch.no_grad():
        a, a_state = base(torch.tensor([old.encode(text).tolist()]))
        b, b_state = grown(torch.tensor([new.encode(text).tolist()]))
    same = [new.chars.index(c) for c in old.chars]
    fresh = [new.chars.index(c) for c in "é¿\u00a0"]
    assert torch.allclose(b[..., same], a, atol=1e-6) and all(torch.equal(x, y) for x, y in zip(a_state, b_state))
    assert torch.equal(grown.embed.weight[fresh[0]], base.embed.weight.mean(dim=0))  # an average character
    assert (b[..., fresh] <= a.max(dim=-1, keepdim=True).values).all()  # new characters start unlikely


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "adagrad", "sgd"])
def test_every_optimizer_lowers_the_loss(tmp_path, small_corpus, optimizer):
    lr = {"sgd": 1.0, "adagrad": 0.05}.get(optimizer, 3e-3)
    rnnkit.train(small_corpus, out=tmp_path / "o", optimizer=optimizer, lr=lr, max_steps=60, clip_mode="value",
                 **SMALL, **QUIET)
    losses = [loss for _, loss in _losses(tmp_path / "o")[0]]
    assert sum(losses[-10:]) / 10 < losses[0] - 0.3


def test_learning_rate_schedules():
    const = TrainConfig(lr=1.0, lr_schedule="constant")
    assert lr_at(0, 0.0, const) == lr_at(999, 0.7, const) == 1.0
    step = TrainConfig(lr=1.0, lr_schedule="step", lr_decay=0.5, lr_decay_every=10)
    assert [lr_at(s, 0, step) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=10, min_lr=0.1)
    assert lr_at(0, 0.0, cos) == pytest.approx(0.1)  # warmup
    assert lr_at(50, 0.0, cos) == pytest.approx(1.0)
    assert lr_at(50, 0.5, cos) == pytest.approx(0.55)
    assert lr_at(50, 1.0, cos) == pytest.approx(0.1)


def test_numpy_backend_trains_and_its_run_samples(tmp_path, small_corpus):
    run = rnnkit.train(small_corpus, out=tmp_path / "np", backend="numpy", cell="rnn", num_layers=1, hidden_size=24,
                       embed_size=8, batch_size=4, seq_len=10, max_steps=40, eval_every=0, sample_every=0, **QUIET)
    losses = [loss for _, loss in _losses(run.dir)[0]]
    assert losses[-1] < losses[0]
    assert len(run.model.sample(length=20, seed=1)) == 20
    with pytest.raises(ConfigError, match="--backend numpy supports"):
        rnnkit.train(small_corpus, out=tmp_path / "np2", backend="numpy", cell="gru", max_steps=1, **QUIET)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_other_families_train(tmp_path, small_corpus, cell):
    run = rnnkit.train(small_corpus, out=tmp_path / cell, cell=cell, max_steps=60, lr_schedule="constant",
                       **SMALL, **QUIET)
    losses = [loss for _, loss in _losses(run.dir)[0]]
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5
    assert rnnkit.load(run.dir).config.cell == cell


def test_byte_level_run_on_text_that_is_not_utf8(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes(("Ça coûte cher, garçon. " * 200).encode("latin-1"))
    run = rnnkit.train(f, out=tmp_path / "bytes", byte_level=True, max_steps=20, split="0.8,0.2,0", **SMALL, **QUIET)
    assert run.model.vocab.kind == "byte" and run.model.config.vocab_size == 256
    assert isinstance(run.model.sample(length=30, seed=1), str)
    result = rnnkit.evaluate(run.dir, f)
    assert result["chars"] > 4000 and result["nats"] < math.log(256)


def test_api_mirrors_the_commands(tmp_path, trained_run, small_corpus):
    samples = rnnkit.samples(trained_run.dir, length=20, num_samples=3, seed=9)
    assert len(samples) == 3 and all(len(s) == 20 for s in samples) and len(set(samples)) > 1
    # One rule for both: sample -> a string, samples -> a list (even of one), from a run or a model.
    one = rnnkit.sample(trained_run.dir, length=20, seed=9)
    assert isinstance(one, str) and one == rnnkit.load(trained_run.dir).sample(length=20, seed=9)
    assert rnnkit.samples(trained_run.dir, length=20, seed=9) == [one]
    assert rnnkit.load(trained_run.dir).samples(3, length=20, seed=9) == samples
    for call in (lambda: rnnkit.sample(trained_run.dir, num_samples=2), lambda: trained_run.model.sample(num_samples=2)):
        with pytest.raises(ConfigError, match="use samples"):
            call()
    assert rnnkit.evaluate(trained_run.dir)["split"] == "test"
    corpus = rnnkit.prepare(small_corpus, out=tmp_path / "prep", split="0.8,0.1,0.1")
    assert len(corpus.tokens) == 60_000 and corpus.bounds == (48_000, 54_000)
