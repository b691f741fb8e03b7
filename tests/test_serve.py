"""`rnnkit serve`: the batched sampler against `generate`, and a real server in a subprocess on a free
loopback port driven by an HTTP client (streaming included) and by headless Chromium."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import GeneratorConfig, ModelConfig
from rnnkit.data import Vocab
from rnnkit.fastsample import FastStepper
from rnnkit.models import CharRNN
from rnnkit.models.generator import CharGenerator
from rnnkit.sample import generate
from rnnkit.streams import Busy, Sampler

from conftest import SMALL, run_cli

httpx = pytest.importorskip("httpx")
VOCAB = Vocab("char", list("abcdefghij \n.,"))


def _model(cell="lstm"):
    torch.manual_seed(3)
    cfg = ModelConfig(cell=cell, num_layers=2, hidden_size=40, embed_size=12, vocab_size=len(VOCAB))
    model = CharRNN(cfg, vocab=VOCAB).eval()
    with torch.no_grad():  # sharper distributions than the default init, so that samples differ
        for p in model.parameters():
            p.mul_(3)
    return model


def _texts(stream, timeout=30):
    deadline = time.time() + timeout
    while not stream.finished:
        assert time.time() < deadline, "the sampler did not finish"
        time.sleep(0.002)
    texts = [""] * stream.n
    for j, piece in stream.take():
        texts[j] += piece
    return texts


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_request_alone_gets_generates_text(cell):
    model = _model(cell)
    sampler = Sampler(model)
    try:
        for opts in ({"seed": 3}, {"seed": 5, "temperature": 0.7, "top_k": 4}, {"seed": 9, "top_p": 0.8, "prime": "abc"},
                     {"greedy": True, "prime": "j"}, {"seed": 4, "stop": "a."}, {"seed": 2, "length": 0}):
            length = opts.pop("length", 120)
            assert _texts(sampler.submit(n=3, length=length, **opts)) == generate(model, 3, length=length, **opts)
    finally:
        sampler.close()


def test_requests_batched_together_each_get_their_own_text():
    """Twenty requests of different options in one batch, joining while others run (rows enter and
    leave the batched state): each text is the one its request gets alone."""
    model = _model()
    sampler = Sampler(model)
    try:
        asks = [dict(seed=i + 1, temperature=0.5 + 0.2 * (i % 3), length=40 + 17 * i, n=1 + i % 3,
                     **({"stop": "."} if i % 4 == 0 else {})) for i in range(20)]
        streams = []
        for ask in asks:
            streams.append(sampler.submit(**ask))
            time.sleep(0.001)
        for ask, stream in zip(asks, streams):
            ask = dict(ask)
            n = ask.pop("n")
            assert _texts(stream) == generate(model, n, **ask)
    finally:
        sampler.close()


def test_generator_classes_are_batched_in_their_own_lanes():
    vocab = Vocab("char", list("\nabcdefgh"))
    torch.manual_seed(0)
    cfg = GeneratorConfig(cell="lstm", num_layers=1, hidden_size=24, embed_size=8, vocab_size=len(vocab),
                          num_classes=2)
    model = CharGenerator(cfg, vocab=vocab, classes=["x", "y"]).eval()
    sampler = Sampler(model)
    try:
        streams = [(label, sampler.submit(n=4, length=30, label=label, seed=7)) for label in ("x", "y", "x")]
        for label, stream in streams:
            assert _texts(stream) == generate(model, 4, length=30, label=label, seed=7)
        with pytest.raises(rnnkit.errors.UsageError, match="not one this generator"):
            sampler.submit(label="z")
    finally:
        sampler.close()


def test_gathering_states_copies_rows_exactly():
    model = _model()
    stepper = FastStepper(model)
    a, b = stepper.zero_state(3), stepper.zero_state(2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        stepper.step(rng.integers(0, len(VOCAB), 3), a)
        stepper.step(rng.integers(0, len(VOCAB), 2), b)
    both = stepper.gather([(a, np.array([2, 0])), (b, slice(None))])
    for k in range(2):
        assert np.array_equal(both.h[k], np.concatenate([a.h[k][[2, 0]], b.h[k]]))
        assert np.array_equal(both.out[k], np.concatenate([a.out[k][[2, 0]], b.out[k]]))
        assert np.array_equal(both.c[k], np.concatenate([a.c[k][[2, 0]], b.c[k]]))


def test_the_sampler_refuses_work_beyond_its_limit():
    sampler = Sampler(_model(), max_streams=4)
    try:
        long = sampler.submit(n=3, length=100000, seed=1)
        with pytest.raises(Busy, match="limit is 4"):
            sampler.submit(n=2, length=10)
        long.cancelled = True  # a client that went away frees its rows
        deadline = time.time() + 10
        while sampler.held and time.time() < deadline:
            time.sleep(0.01)
        assert sampler.held == 0
        assert _texts(sampler.submit(n=4, length=5, seed=2)) == generate(_model(), 4, length=5, seed=2)
    finally:
        sampler.close()


# -- a real server --------------------------------------------------------------------------------

class Server:
    def __init__(self, *args, cwd=None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", *map(str, args), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
        line = self.proc.stdout.readline()
        m = re.search(r"http://([\d.]+):(\d+)/", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"the server did not start: {line}{self.proc.stdout.read()}")
        self.url = f"http://{m.group(1)}:{m.group(2)}"
        self.port = int(m.group(2))
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stop(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def events(response) -> list[tuple[str, dict]]:
    out, event = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            out.append((event, json.loads(line[5:])))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_corpus, words):
    root = tmp_path_factory.mktemp("served")
    lm = rnnkit.train(small_corpus, out=root / "lm", max_steps=20, progress=False, log=lambda m: None, **SMALL).dir
    small = {k: v for k, v in SMALL.items() if k != "seq_len"}
    cls = rnnkit.train(words, task="classify", out=root / "cls", max_steps=20, progress=False, log=lambda m: None,
                       **small).dir
    gen = rnnkit.train(words, task="generate", out=root / "gen", max_steps=20, progress=False, log=lambda m: None,
                       **small).dir
    (lm / "report.html").write_text("<html><body>a report</body></html>")
    return {"lm": lm, "cls": cls, "gen": gen}


@pytest.fixture(scope="module")
def server(runs):
    s = Server(runs["lm"], runs["cls"], runs["gen"], "--max-length", "3000", "--max-streams", "40")
    yield s
    s.stop()


def test_models_and_health(server):
    assert server.client.get("/healthz").json()["status"] == "ok"
    models = {m["name"]: m for m in server.client.get("/v1/models").json()["models"]}
    assert set(models) == {"lm", "cls", "gen"}
    assert models["cls"]["classes"] == ["en", "rev"] and models["cls"]["endpoints"] == ["/v1/predict"]
    assert models["lm"]["report"] == "/v1/models/lm/report.html"
    assert "a report" in server.client.get(models["lm"]["report"]).text
    assert server.client.get("/v1/models/lm/config.json").status_code == 404  # only the report is public
    assert "/v1/generate" in server.client.get("/openapi.json").json()["paths"]


def test_streamed_text_is_the_samplers_text(server, runs):
    body = {"model": "lm", "prime": "ROMEO:", "length": 300, "seed": 42, "temperature": 0.8}
    with server.client.stream("POST", "/v1/generate", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    kinds = [e for e, _ in got]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"text"} and len(kinds) >= 3  # prime, then pieces
    streamed = "".join(d["text"] for e, d in got if e == "text")
    expected = rnnkit.sample(runs["lm"], length=300, seed=42, temperature=0.8, prime="ROMEO:")
    assert streamed == expected == got[-1][1]["texts"][0]
    assert got[-1][1]["chars"] == 300


def test_concurrent_clients_get_their_own_texts(server, runs):
    results = {}

    def ask(seed):
        body = {"model": "lm", "length": 400, "seed": seed, "top_k": 10}
        with server.client.stream("POST", "/v1/generate", json=body) as response:
            results[seed] = "".join(d["text"] for e, d in events(response) if e == "text")

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, text in results.items():
        assert text == rnnkit.sample(runs["lm"], length=400, seed=seed, top_k=10)
    assert len(results) == 12


def test_json_answers_several_samples_and_beam(server, runs):
    r = server.client.post("/v1/generate", json={"model": "lm", "n": 3, "length": 50, "seed": 8, "stream": False})
    assert r.status_code == 200
    assert r.json()["texts"] == rnnkit.samples(runs["lm"], num_samples=3, length=50, seed=8)
    r = server.client.post("/v1/generate", json={"model": "lm", "beam": 3, "length": 20, "stream": False})
    assert r.json()["texts"] == [rnnkit.sample(runs["lm"], beam=3, length=20)]
    r = server.client.post("/v1/generate", json={"model": "gen", "class": "rev", "n": 4, "seed": 3, "stream": False})
    assert r.json()["texts"] == rnnkit.samples(runs["gen"], label="rev", num_samples=4, seed=3)


def test_predict_and_score(server, runs):
    r = server.client.post("/v1/predict", json={"texts": ["hello", "olleh"]})  # the one predictive model
    assert r.status_code == 200
    preds = r.json()["predictions"]
    probs = rnnkit.load(runs["cls"]).predict_proba(["hello", "olleh"])
    for row, p in zip(preds, probs):
        assert {d["label"] for d in row} == {"en", "rev"}
        assert abs(sum(d["p"] for d in row) - 1) < 1e-5
        assert {d["label"]: d["p"] for d in row}["en"] == pytest.approx(float(p[0]), abs=1e-6)
    r = server.client.post("/v1/score", json={"model": "lm", "text": "To be, or not"}).json()
    assert r["count"] == 13 and r["unit"] == "char" and [t["text"] for t in r["per_token"]] == list("To be, or not")
    model = rnnkit.load(runs["lm"])
    ids = torch.from_numpy(model.vocab.encode("\nTo be, or not").astype(np.int64))
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    nats = torch.nn.functional.cross_entropy(logits[0], ids[1:])
    assert r["nats"] == pytest.approx(float(nats), rel=1e-5)


@pytest.mark.parametrize("path,body,status,message", [
    ("/v1/generate", {"model": "nope"}, 404, "no model named 'nope'; this server has lm, cls, gen"),
    ("/v1/generate", {"model": "lm", "length": -1}, 400, "length must be >= 0, got -1"),
    ("/v1/generate", {"model": "lm", "temperature": 0}, 400, "temperature must be > 0, got 0.0"),
    ("/v1/generate", {"model": "lm", "prime": "€uro"}, 400, "1 character(s) not in the vocabulary: '€'"),
    ("/v1/generate", {"model": "lm", "length": 5000}, 400, "length must be <= 3000 on this server, got 5000"),
    ("/v1/generate", {"model": "lm", "n": 41}, 400, "n must be in 1..16 on this server, got 41"),
    ("/v1/generate", {"model": "cls"}, 400, "model 'cls' is a classify run; /v1/generate serves lm and generate runs"),
    ("/v1/generate", {"prime": "a"}, 400, "name the model (\"model\": ...): one of lm, gen"),
    ("/v1/generate", {"model": "gen"}, 400, "this generator writes one of 2 classes; give class"),
    ("/v1/generate", {"model": "lm", "length": "long"}, 422, "length: Input should be a valid integer"),
    ("/v1/generate", {"model": "lm", "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
    ("/v1/predict", {"model": "cls"}, 400, "send either text (one) or texts (a list)"),
    ("/v1/score", {"model": "lm", "text": ""}, 400, "the text is empty"),
])
def test_bad_requests_get_json_errors(server, path, body, status, message):
    r = server.client.post(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_limits_protect_the_server(server):
    r = server.client.post("/v1/generate", content=b"{" + b" " * 70000 + b"}",
                           headers={"content-type": "application/json"})
    assert r.status_code == 413 and "65536 bytes" in r.json()["error"]
    r = server.client.post("/v1/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    # 40 streams at most: 3 requests of 16 samples cannot all be held at once
    bodies = [{"model": "lm", "n": 16, "length": 3000, "seed": i + 1} for i in range(3)]
    statuses = []
    with server.client.stream("POST", "/v1/generate", json=bodies[0]) as first:
        with server.client.stream("POST", "/v1/generate", json=bodies[1]) as second:
            third = server.client.post("/v1/generate", json=bodies[2])
            statuses = [first.status_code, second.status_code, third.status_code]
            assert third.headers.get("retry-after") == "1" and "limit is 40" in third.json()["error"]
    assert statuses == [200, 200, 503]
    deadline = time.time() + 20  # the two clients left mid-stream: their samples are dropped
    while server.client.get("/healthz").json()["streams"] and time.time() < deadline:
        time.sleep(0.05)
    assert server.client.get("/healthz").json()["streams"] == 0


def test_port_in_use_and_runs_that_cannot_load(tmp_path, runs):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        p = run_cli("serve", runs["lm"], "--port", taken.getsockname()[1], timeout=60)
        assert p.returncode == 1
        assert re.fullmatch(r"rnnkit serve: error: cannot listen on 127\.0\.0\.1:\d+: Address already in use "
                            r"\(another server is there; pick another --port, or --port 0 for any free one\)\n",
                            p.stderr), p.stderr
    finally:
        taken.close()
    with pytest.raises(rnnkit.errors.ConfigError, match="--port must be in 0..65535"):
        rnnkit.serve([runs["lm"]], port=70000)  # the API checks as the command does, before listening
    (tmp_path / "empty").mkdir()
    p = run_cli("serve", runs["lm"], tmp_path / "empty", "--port", "0", timeout=60)
    assert p.returncode == 1 and p.stderr.startswith(f"rnnkit serve: error: cannot serve {tmp_path / 'empty'}: ")
    assert p.stderr.count("\n") == 1


def test_the_page_streams_text_and_draws_class_bars(server, tmp_path):
    """The web page in headless Chromium (Debian's): choose the language model, type a prime, press
    Generate, see the text arrive; choose the classifier, type, see a bar per class."""
    from test_inspect import _chromium_or_skip
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    from rnnkit.inspect.browser import FLAGS, find_chromium
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(),
                                    args=[f for f in FLAGS if f not in ("--headless", "--enable-logging=stderr", "--v=0")])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's screen
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.select_option("#model", "lm")
            page.fill("#prime", "ROMEO:")
            page.fill("#length", "400")
            page.fill("#seed", "5")
            page.click("#go")
            page.wait_for_function("document.querySelector('#status').textContent.includes('characters in')")
            out = page.inner_text("#out")
            assert out.startswith("ROMEO:") and len(out) == 406
            assert page.inner_text("#out .prime") == "ROMEO:"
            page.screenshot(path=str(tmp_path / "generate.png"))
            assert (tmp_path / "generate.png").stat().st_size > 5000
            page.select_option("#model", "cls")
            page.fill("#text", "hello world")
            page.wait_for_selector("#bars .bar")
            names = page.locator("#bars .bar .name").all_inner_texts()
            assert sorted(names) == ["en", "rev"]
            page.select_option("#model", "lm")
            page.fill("#prime", "€")
            page.click("#go")
            page.wait_for_function("document.querySelector('#error').textContent.length > 0")
            assert "not in the vocabulary" in page.inner_text("#error")
            assert errors == []
        finally:
            browser.close()
