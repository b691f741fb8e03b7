"""Load test of `rnnkit serve`: C concurrent streaming clients on loopback, C = 1, 8, 64.

The server runs as its own process (`python -m rnnkit serve RUN --port 0`), the clients in this one
(asyncio, each client a loop of streamed POST /v1/generate requests on a kept-alive connection). For each C it reports
requests/s, characters/s over all clients, and p50/p99 of the latency of a whole request and of its
first piece of text; any failed request is counted and reported. The baseline, in the same run: the
same model sampled in-process by `rnnkit.generate` (no HTTP), batch 1 and batch C.

The model is a 2x128 LSTM (embedding 64) trained for a few steps on the bundled tiny Shakespeare (speed
does not depend on how well it is trained), or --run DIR.

    python benchmarks/serve_load.py [--seconds 10] [--length 500] [--clients 1,8,64] [--json FILE]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402


def make_run(out: Path) -> Path:
    import rnnkit
    from rnnkit.data import bundled_corpus
    return rnnkit.train(bundled_corpus(), out=out, max_steps=30, hidden_size=128, num_layers=2, embed_size=64,
                             batch_size=16, seq_len=64, sample_every=0, eval_every=30, progress=False,
                             log=lambda m: None).dir


def start_server(run: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", str(run), "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stdout.read()}")
    return proc, line.split("http://", 1)[1].split("/", 1)[0]


class Connection:
    """A kept-alive HTTP/1.1 connection that POSTs JSON and reads a chunked event stream. The load
    generator shares the 2 cores with the server, so it is kept lean: httpx's line-by-line reading
    of 64 streams took a whole core and measured the client instead of the server."""

    def __init__(self, address: str):
        self.host, self.port = address.rsplit(":", 1)
        self.reader = self.writer = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes, float | None]:
        """(status, body, seconds to the first text event) of one request."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, int(self.port))
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split()[1])
        first, chunks = None, []
        if "transfer-encoding: chunked" in head:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunk = (await self.reader.readexactly(size + 2))[:-2]
                if first is None and b"event: text" in chunk:
                    first = time.perf_counter() - t0
                chunks.append(chunk)
        else:
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            chunks.append(await self.reader.readexactly(length))
        if "connection: close" in head:
            self.writer.close()
            self.writer = None
        return status, b"".join(chunks), first

    def close(self):
        if self.writer is not None:
            self.writer.close()


async def one_request(conn: Connection, body: dict) -> tuple[int, float, float]:
    """(characters generated, seconds to the first text, seconds in all) of one streamed request."""
    t0 = time.perf_counter()
    status, data, first = await conn.post("/v1/generate", body)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data.decode()[:200]}")
    text = data.decode("utf-8")
    if "event: error" in text:
        raise RuntimeError(text[text.index("event: error"):][:200])
    marker = "event: done\ndata: "
    if marker not in text:
        raise RuntimeError("the stream ended without its done event")
    done = json.loads(text[text.rindex(marker) + len(marker):].split("\n", 1)[0])
    return done["chars"], first, time.perf_counter() - t0


async def load(address: str, clients: int, seconds: float, length: int) -> dict:
    latencies, firsts, chars, failures = [], [], [0], []
    deadline = time.perf_counter() + seconds

    async def client_loop(c: int):
        conn = Connection(address)
        k = 0
        try:
            while time.perf_counter() < deadline:
                k += 1
                body = {"prime": "ROMEO:", "length": length, "temperature": 0.8, "seed": 1000 * c + k}
                try:
                    n, first, total = await one_request(conn, body)
                except Exception as exc:  # counted, reported, and the client goes on
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    conn.close()
                    conn = Connection(address)
                    continue
                chars[0] += n
                latencies.append(total)
                firsts.append(first)
        finally:
            conn.close()

    warm = Connection(address)
    await one_request(warm, {"length": 10, "seed": 1})  # the server's first-request costs
    warm.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop(c) for c in range(clients)))
    elapsed = time.perf_counter() - t0

    def pct(xs, q):
        return statistics.quantiles(xs, n=100)[q - 1] if len(xs) >= 2 else (xs[0] if xs else None)

    return {"clients": clients, "requests": len(latencies), "failed": len(failures),
            "failures": failures[:3], "seconds": elapsed, "requests_per_s": len(latencies) / elapsed,
            "chars_per_s": chars[0] / elapsed,
            "latency_p50_s": pct(latencies, 50), "latency_p99_s": pct(latencies, 99),
            "first_text_p50_s": pct(firsts, 50), "first_text_p99_s": pct(firsts, 99)}


def in_process(run: Path, streams: int, length: int, repeats: int = 3) -> float:
    """Characters/s of rnnkit.generate on the same model, without HTTP: the baseline."""
    import rnnkit
    from rnnkit.sample import generate
    model = rnnkit.load(run)
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        generate(model, streams, length=length, prime="ROMEO:", temperature=0.8, seed=r + 1)
        rates.append(streams * length / (time.perf_counter() - t0))
    return statistics.median(rates)


def screenshot(address: str, path: Path, prime: str = "ROMEO:") -> None:
    """The web page in headless Chromium (Playwright driving Debian's chromium) after generating from
    `prime`, at a phone's width."""
    from playwright.sync_api import sync_playwright

    from rnnkit.inspect.browser import find_chromium
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 430, "height": 900}, device_scale_factor=2)
        page.goto(f"http://{address}/")
        page.fill("#prime", prime)
        page.fill("#length", "400")
        page.fill("#temperature", "0.8")
        page.fill("#seed", "7")
        page.click("#go")
        page.wait_for_function("document.querySelector('#status').textContent.includes('characters in')")
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="serve this run directory instead of a fresh 2x128 LSTM")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of load per concurrency level")
    ap.add_argument("--length", type=int, default=500, help="characters each request asks for")
    ap.add_argument("--clients", default="1,8,64", help="concurrency levels, comma-separated")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--screenshot", metavar="PNG", help="also save a screenshot of the web page after generating")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or make_run(Path(tmp) / "lstm-2x128")
        baseline = {f"batch_{c}": in_process(run, c, args.length) for c in sorted({1, *levels})}
        proc, address = start_server(run, ["--max-streams", str(max(levels) * 2)])
        try:
            results = [asyncio.run(load(address, c, args.seconds, args.length)) for c in levels]
            if args.screenshot:
                screenshot(address, args.screenshot)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    single = results[0]["chars_per_s"] if levels[0] == 1 else None
    for r in results:
        r["vs_one_client"] = r["chars_per_s"] / single if single else None
    emit({"benchmark": "serve_load", "machine": describe(), "model": "lstm 2x128" if not args.run else str(args.run),
          "length": args.length, "seconds_per_level": args.seconds, "results": results,
          "baseline_in_process_chars_per_s": baseline}, args.json)


if __name__ == "__main__":
    main()
