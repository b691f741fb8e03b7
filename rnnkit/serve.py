"""`rnnkit serve RUN [RUN ...]`: trained models over HTTP, with a web page.

    GET  /                         the web page: pick a model, type a prime, watch the text stream in;
                                   a classifier's class probabilities as you type
    GET  /healthz                  {"status": "ok", ...}
    GET  /v1/models                what is served: name, task, shape, classes, the endpoints that fit
    POST /v1/generate              samples of a language model or generator, streamed as server-sent
                                   events (or one JSON answer with "stream": false)
    POST /v1/predict               a classifier's class probabilities; a seq2seq run's outputs
    POST /v1/score                 the loss of each character of a text under a language model or generator
    GET  /v1/models/NAME/report.html   the run's inspection report, if the run directory holds one
    GET  /docs                     the OpenAPI documentation FastAPI writes from the code

Generation requests of one model share one batched sampler (rnnkit.streams): every sample in flight
advances by one character per step of one batched product, whoever asked for it. Beam search,
prediction and scoring run as jobs on two worker threads. Every limit (length, samples, streams,
jobs, body size, text size) answers with a JSON error, never by slowing everyone down: 400 for a bad
request, 404 for an unknown model, 413 for a body too large, 503 with Retry-After when full.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import time
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch

from . import checkpoint as ckpt
from .config import SampleConfig, ServeConfig
from .errors import CheckpointError, ConfigError, DataError, RnnkitError, UsageError
from .models.generator import CharGenerator, example_ids
from .streams import Busy, Sampler

# What each endpoint can serve, by the run's task.
GENERATIVE = ("lm", "generate")
PREDICTIVE = ("classify", "seq2seq")
SERVABLE = GENERATIVE + PREDICTIVE
MAX_BEAM = 16  # a beam costs its width in streams; wider ones would let one request take the machine


class ApiError(Exception):
    """A request the server refuses: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Served:
    """One run directory as the server holds it."""
    name: str
    run_dir: Path
    task: str
    model: Any
    sampler: Sampler | None  # language models and generators

    def describe(self) -> dict:
        c = self.model.config
        classes = getattr(self.model, "classes", None)
        report = self.run_dir / "report.html"
        return {"name": self.name, "task": self.task, "cell": c.cell, "layers": c.num_layers,
                "hidden": c.hidden_size, "parameters": sum(p.numel() for p in self.model.parameters()),
                "classes": list(classes) if classes else None,
                "endpoints": (["/v1/generate", "/v1/score"] if self.task in GENERATIVE else ["/v1/predict"]),
                "report": f"/v1/models/{self.name}/report.html" if report.is_file() else None}


def load_models(run_dirs: list, checkpoint: str = "best", config: ServeConfig | None = None) -> dict[str, Served]:
    """Every run directory, loaded; the first that cannot be served stops the server before it starts
    (CheckpointError naming it). Names are the directories' names, made unique with -2, -3 ..."""
    from .tasks import load
    config = config or ServeConfig()
    served: dict[str, Served] = {}
    for run_dir in map(Path, run_dirs):
        try:
            task = ckpt.task_of(run_dir)
            if task not in SERVABLE:
                raise UsageError(f"it is a {task} run; the server serves language models, generators, "
                                 "text classifiers and seq2seq runs")
            model = load(run_dir, checkpoint).eval()
            if task == "classify" and model.config.num_features:
                raise UsageError("it is a classifier of sequences of vectors; the server serves text classifiers")
        except RnnkitError as exc:
            raise CheckpointError(f"cannot serve {run_dir}: {exc}") from None
        name, k = run_dir.resolve().name, 2
        while name in served:
            name, k = f"{run_dir.resolve().name}-{k}", k + 1
        sampler = (Sampler(model, max_streams=config.max_streams, flush=config.flush, name=name)
                   if task in GENERATIVE else None)
        served[name] = Served(name, run_dir, task, model, sampler)
    return served


# -- request bodies ------------------------------------------------------------------------------

from pydantic import BaseModel, ConfigDict, Field  # FastAPI's request models


class GenerateBody(BaseModel):
    """POST /v1/generate. Unset options take `rnnkit sample`'s defaults."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    model: str | None = Field(None, description="the model's name (GET /v1/models); optional if only one generates")
    prime: str = Field("", description="text the model reads first; it begins every sample")
    length: int = Field(500, description="characters to generate per sample")
    temperature: float = Field(1.0, description="divide the logits by this (> 0)")
    top_k: int = Field(0, description="sample only from the k most likely characters (0: all)")
    top_p: float = Field(1.0, description="sample from the smallest set of characters with this much probability")
    greedy: bool = Field(False, description="always take the most likely character")
    beam: int = Field(0, description="beam search of this width instead of sampling (0: off)")
    stop: str = Field("", description="end a sample once it produces this string (included)")
    seed: int = Field(0, description="random seed (0: a random one); the same seed gives the same text")
    n: int = Field(1, description="independent samples")
    label: str | None = Field(None, alias="class", description="a generator's class to write")
    unknown: Literal["error", "skip"] = Field("error", description="prime characters the vocabulary lacks")
    stream: bool = Field(True, description="stream server-sent events (true) or answer once, as JSON (false)")


class PredictBody(BaseModel):
    """POST /v1/predict: one text or several."""
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    text: str | None = Field(None, description="one text")
    texts: list[str] | None = Field(None, description="several texts")
    top_k: int = Field(0, description="classifiers: how many classes to list, most likely first (0: all)")
    beam: int = Field(0, description="seq2seq: beam search of this width (0: greedy)")
    unknown: Literal["error", "skip"] = Field("error", description="characters the vocabulary lacks")


class ScoreBody(BaseModel):
    """POST /v1/score."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    model: str | None = None
    text: str = Field(..., description="the text to score")
    label: str | None = Field(None, alias="class", description="a conditional generator's class")


# -- the work behind the endpoints -----------------------------------------------------------------

@torch.no_grad()
def score_text(model, text: str, label: str | None = None) -> dict:
    """The loss of every character of `text` (of every byte, for a byte-level model) under a language
    model, each predicted from the ones before it and the start of a line, or under a generator, as one
    example (its end included)."""
    vocab = model.vocab
    model.eval()
    if isinstance(model, CharGenerator):
        index = model.class_index(label)
        ids = example_ids(vocab, text).tolist()
        classes = torch.tensor([index]) if index is not None else None
        logits, _ = model(torch.tensor([ids[:-1]]), classes=classes)
        targets = ids[1:]
    else:
        if label is not None:
            raise UsageError("class is for generators; this model is a language model")
        text = model.normalize_text(text)
        ids = vocab.encode(text).tolist()
        start = vocab.encode("\n", unknown="skip").tolist()  # what sampling starts from, as `sample` does
        inputs, targets = (start + ids[:-1], ids) if start else (ids[:-1], ids[1:])
        if not targets:
            raise DataError("the text is too short to score (one character, and this vocabulary has no newline)")
        logits, _ = model(torch.tensor([inputs]))
    nats = -torch.log_softmax(logits[0].float(), dim=-1)[torch.arange(len(targets)), torch.tensor(targets)]
    per = nats.tolist()
    mean = float(nats.mean())
    unit = {"char": "char", "byte": "byte"}.get(vocab.kind, "token")
    result = {"unit": unit, "count": len(per), "nats": mean, "bits": mean / math.log(2),
              "per_token": [{"text": vocab.decode([t]), "nats": v} for t, v in zip(targets, per)]}
    if unit == "token":  # word or bpe tokens: the same loss per character of the text scored
        chars = len(vocab.decode(targets))
        result["nats_per_char"] = float(nats.sum()) / max(chars, 1)
    return result


def predict(served: Served, texts: list[str], top_k: int, beam: int, unknown: str) -> list:
    model = served.model
    if served.task == "seq2seq":
        if unknown == "skip":
            texts = [model.source_vocab.known_only(t) for t in texts]
        outputs = model.translate(texts, beam=beam)
        return [[{"text": text, "score": float(score)} for text, score in best] for best in outputs]
    vocab = model.vocab
    if unknown == "error" and getattr(vocab, "kind", None) == "char":
        for t in texts:
            vocab.encode(t)  # raises DataError naming the characters the vocabulary lacks
    if any(not vocab.encode(t, unknown="skip").size for t in texts):
        raise DataError("a text to classify is empty (or holds only characters the vocabulary lacks)")
    probs = model.predict_proba(texts)
    k = probs.shape[1] if top_k <= 0 else min(top_k, probs.shape[1])
    top = probs.topk(k, dim=-1)
    return [[{"label": model.classes[j], "p": float(p)} for p, j in zip(ps.tolist(), js.tolist())]
            for ps, js in zip(top.values, top.indices)]


class Jobs:
    """Prediction, scoring and beam search: on two worker threads (the machine's two cores), with at
    most `limit` running or waiting; more raise Busy."""

    def __init__(self, limit: int, workers: int = 2):
        import anyio
        self._limiter = anyio.CapacityLimiter(workers)
        self._to_thread = anyio.to_thread.run_sync
        self.limit, self.held = limit, 0

    async def run(self, fn, *args, **kwargs):
        if self.held >= self.limit:
            raise Busy(f"the server has {self.held} jobs in hand, its limit; retry shortly")
        self.held += 1
        try:
            return await self._to_thread(partial(fn, *args, **kwargs), limiter=self._limiter)
        finally:
            self.held -= 1


async def follow(stream):
    """The pieces of a Stream as the engine makes them: lists of (sample index, text), at most one
    list every `flush` seconds; if the reader goes away, the samples are cancelled."""
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    stream.wake = lambda: loop.call_soon_threadsafe(event.set)
    try:
        while True:
            event.clear()
            stream.armed = True  # before reading `finished`: the engine's finish() then wakes us
            done = stream.finished
            pieces = stream.take()
            if pieces:
                yield pieces
            if done:
                if stream.error:
                    raise ApiError(500, stream.error)
                return
            await event.wait()
    finally:
        if not stream.finished:
            stream.cancelled = True


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _cli_names(message: str) -> str:
    """A config error's flag names (--top-p) as the API's field names (top_p)."""
    return re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)


# -- the application -----------------------------------------------------------------------------

class _BodyLimit:
    """Refuse request bodies over `limit` bytes (413) before the application reads them, and bodies of
    unknown length (411), so that no client can make the server buffer more than the limit."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            status, message = None, None
            if length is None:
                status, message = 411, "send the body with a Content-Length"
            elif not length.isdigit() or int(length) > self.limit:
                status, message = 413, f"the request body is larger than this server's limit of {self.limit} bytes"
            if status is not None:
                body = json.dumps({"error": message}).encode()
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(served: dict[str, Served], config: ServeConfig | None = None):
    """The FastAPI application serving `served` (from load_models)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    from . import __version__
    from .sample import generate as generate_texts

    config = config or ServeConfig()
    jobs = Jobs(config.max_jobs)
    app = FastAPI(title="rnnkit", version=__version__, description="Recurrent models trained with rnnkit: "
                  "sampling (streamed), classification, translation and scoring.")
    page = resources.files("rnnkit.web").joinpath("index.html").read_text("utf-8")

    def error(status: int, message: str, headers: dict | None = None):
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, str(exc))

    @app.exception_handler(Busy)
    async def _busy(request, exc: Busy):
        return error(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(RnnkitError)
    async def _bad(request, exc: RnnkitError):
        return error(400, _cli_names(str(exc)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e['loc'] if x != 'body') or 'body'}: {e['msg']}" for e in exc.errors()]
        return error(422, "; ".join(parts))

    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    def pick(name: str | None, tasks: tuple, endpoint: str) -> Served:
        fits = [s for s in served.values() if s.task in tasks]
        if name is None:
            if len(fits) == 1:
                return fits[0]
            if not fits:
                raise ApiError(400, f"no model here serves {endpoint}")
            raise ApiError(400, f"name the model (\"model\": ...): one of {', '.join(s.name for s in fits)}")
        if name not in served:
            raise ApiError(404, f"no model named {name!r}; this server has {', '.join(served)}")
        if served[name].task not in tasks:
            raise ApiError(400, f"model {name!r} is a {served[name].task} run; {endpoint} serves "
                                f"{' and '.join(tasks)} runs")
        return served[name]

    def check_text(text: str) -> None:
        if len(text) > config.max_text:
            raise ApiError(400, f"the text has {len(text)} characters; this server takes at most {config.max_text}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": list(served),
                "streams": sum(s.sampler.held for s in served.values() if s.sampler), "jobs": jobs.held}

    @app.get("/v1/models")
    async def models():
        return {"models": [s.describe() for s in served.values()]}

    @app.get("/v1/models/{name}/{filename}", include_in_schema=False)
    async def report(name: str, filename: str):
        if name not in served:
            raise ApiError(404, f"no model named {name!r}")
        path = served[name].run_dir / filename
        # only the inspection report and its figures: nothing else of the run directory is public
        if not re.fullmatch(r"report[\w.-]*\.(html|png)", filename) or not path.is_file():
            raise ApiError(404, f"{name} has no {filename}")
        return FileResponse(path)

    @app.post("/v1/generate")
    async def generate(body: GenerateBody):
        s = pick(body.model, GENERATIVE, "/v1/generate")
        options = body.model_dump(exclude_unset=True, exclude={"model", "n", "stream", "label", "length"})
        if body.length > config.max_length:
            raise ApiError(400, f"length must be <= {config.max_length} on this server, got {body.length}")
        if not 1 <= body.n <= config.max_samples:
            raise ApiError(400, f"n must be in 1..{config.max_samples} on this server, got {body.n}")
        if body.beam:
            if body.beam > MAX_BEAM:
                raise ApiError(400, f"beam must be <= {MAX_BEAM}, got {body.beam}")
            if body.n != 1:
                raise ApiError(400, "beam search gives one text; n must be 1")
            return await beam(s, body, options)
        stream = s.sampler.submit(n=body.n, length=body.length, label=body.label, **options)
        if not body.stream:
            texts = [""] * body.n
            async for pieces in follow(stream):
                for j, text in pieces:
                    texts[j] += text
            return {"model": s.name, "texts": texts, **_timing(stream)}

        async def events():
            texts = [""] * body.n
            try:
                async for pieces in follow(stream):
                    for j, text in _merge(pieces):
                        texts[j] += text
                        yield _sse("text", {"index": j, "text": text})
            except ApiError as exc:
                yield _sse("error", {"error": str(exc)})
                return
            yield _sse("done", {"model": s.name, "texts": texts, **_timing(stream)})
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def beam(s: Served, body: GenerateBody, options: dict):
        SampleConfig(**{k: v for k, v in options.items() if k != "stream"})  # bad options: 400 before the job
        started = time.perf_counter()
        texts = await jobs.run(generate_texts, s.model, 1, length=body.length, label=body.label, **options)
        timing = {"chars": len(texts[0]), "seconds": time.perf_counter() - started}
        if not body.stream:
            return {"model": s.name, "texts": texts, **timing}

        async def events():
            yield _sse("text", {"index": 0, "text": texts[0]})
            yield _sse("done", {"model": s.name, "texts": texts, **timing})
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/predict")
    async def predict_endpoint(body: PredictBody):
        s = pick(body.model, PREDICTIVE, "/v1/predict")
        if (body.text is None) == (body.texts is None):
            raise ApiError(400, "send either text (one) or texts (a list)")
        texts = [body.text] if body.text is not None else body.texts
        if not texts:
            raise ApiError(400, "texts is empty")
        for t in texts:
            check_text(t)
        if not 0 <= body.beam <= MAX_BEAM:
            raise ApiError(400, f"beam must be in 0..{MAX_BEAM}, got {body.beam}")
        if body.beam and s.task != "seq2seq":
            raise ApiError(400, "beam is for seq2seq runs")
        if body.top_k < 0:
            raise ApiError(400, f"top_k must be >= 0, got {body.top_k}")
        result = await jobs.run(predict, s, texts, body.top_k, body.beam, body.unknown)
        key = "outputs" if s.task == "seq2seq" else "predictions"
        return {"model": s.name, key: result}

    @app.post("/v1/score")
    async def score(body: ScoreBody):
        s = pick(body.model, GENERATIVE, "/v1/score")
        check_text(body.text)
        if not body.text:
            raise ApiError(400, "the text is empty")
        return {"model": s.name, **await jobs.run(score_text, s.model, body.text, body.label)}

    app.state.served = served
    return _BodyLimit(app, config.max_body)


def _merge(pieces: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Pieces of the same sample joined, in order of first appearance (the prime comes first)."""
    merged: dict[int, str] = {}
    for j, text in pieces:
        merged[j] = merged.get(j, "") + text
    return list(merged.items())


def _timing(stream) -> dict:
    seconds = time.perf_counter() - stream.started
    return {"chars": stream.chars(), "seconds": seconds}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a one-line error saying the port is taken."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    # proto=IPPROTO_TCP matters: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that
    # say they are TCP, and with it on, every streamed piece waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not another listener's port: TIME_WAIT only
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = " (another server is there; pick another --port, or --port 0 for any free one)" \
            if exc.errno == 98 else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


def serve(run_dirs: list, config: ServeConfig | None = None, checkpoint: str = "best", log=print,
          **options) -> None:
    """`rnnkit serve`: load the runs, listen, and serve until interrupted (Ctrl-C or SIGTERM). The
    options are ServeConfig's (host, port, max_length ...), given as a config or by name."""
    import uvicorn

    from .config import build
    config = build(ServeConfig, options, base=config)
    from threadpoolctl import threadpool_limits
    # One thread per computation: the samplers (one thread per model), the two job workers and the
    # event loop already keep the cores busy, and BLAS or PyTorch threads fighting them for the same
    # cores made a batched step 4x slower under load.
    threadpool_limits(1, user_api="blas")
    torch.set_num_threads(1)
    sock = bind(config.host, config.port)
    served = {}
    try:
        served = load_models(run_dirs, checkpoint, config)
        app = create_app(served, config)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        log(f"rnnkit serve: {', '.join(served)} on http://{shown}:{port}/ (API docs at /docs; Ctrl-C stops)")
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=3))
        server.run(sockets=[sock])
    finally:
        for s in served.values():
            if s.sampler is not None:
                s.sampler.close()
        sock.close()



