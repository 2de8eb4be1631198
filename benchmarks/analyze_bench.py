"""Latency and throughput of `POST /analyze` with 100 real candles, and where the time goes.

Set-up: a model with the default architecture (`TrainConfig()`: LSTM, window 60, hidden 64; trained
for one epoch on the last 3,000 BTCUSDT 1h candles, since training length does not change the
cost of inference) is promoted into a temporary data directory, unless `--model-dir` names one.
The request bodies are real: distinct 100-candle windows of BTCUSDT 1h, serialised once up front.

1. HTTP: `python -m uvicorn botcore.api.ai.app:app` on 127.0.0.1, one worker (uvloop and httptools, as
   `uvicorn[standard]` installs them), started twice: with the prediction cache off (every request
   runs features and the network) and on (all windows seen once during warm-up, then every request
   is a hit). `--concurrency` (8) keep-alive connections send `--requests` (3,000) requests after
   `--warmup` (200), each the next request as soon as its answer is in. Printed: p50, p90, p99, max
   latency, requests/s, the server's and the client's CPU time per request (from psutil), and how
   many windows the service scored per network pass (`/model/info`'s `scoring`). The lean client
   with the cache off runs `--runs` (3) times against the same server, then their median: this
   shared 2-core machine's speed drifts by a third from one minute to the next.
   Two clients, since the client shares the machine's 2 cores with the server:
   - `raw`: a load generator in the manner of wrk: pre-built HTTP/1.1 requests written on asyncio
     transports (uvloop), answers read by their Content-Length, each status checked. It costs about
     a tenth of the server's CPU per request, so the figures are the server's.
   - `httpx`: `httpx.AsyncClient`, what a Python caller such as the engine uses. It takes more CPU per
     request than the server does, so on 2 cores it is the client that sets the pace.
2. The floor: the same lean load on `GET /health` and `GET /cache/stats` (bearer auth), endpoints
   that do no work, so the server CPU per request is what uvicorn and FastAPI cost by themselves.
   Then the way in: cached `POST /analyze` requests without an `Origin` header (a server's call,
   which the service answers by its short way) and with one (a browser's, through FastAPI's
   middleware, router and CORS): the difference is what the short way saves.
3. In-process stages, each timed with `time.perf_counter` over `--repeat` (1,000) repetitions of
   one request, in the order the endpoint runs them: the body to checked columns, the series checks, the `Analyzer`'s steps (the window's features, the network for
   one window and per window of a pass of 8, the signal), then the response.

0. The zoo, first: a row per model type (`--model-types`, default all: lstm, gru, transformer, mlp,
   lightgbm, logistic, and lightgbm-mtf, LightGBM on the multi-timeframe features). Each is its
   type's default `TrainConfig` (torch types: one epoch; LightGBM and logistic as they stop) trained
   on the last 3,000 BTCUSDT 1h candles, promoted (with `force=True`: the promotion gate judges skill,
   not speed) into a data dir of its own and served by its own `uvicorn` (one worker, the prediction
   cache off). The lean client sends `--type-requests` (2,000) real requests after the warm-up at
   `--concurrency` (8), `--type-runs` (3) times against the same server, and prints the runs' median.
   Each request carries the type's `min_candles` (100, or more for mtf: its higher timeframes need a
   longer history). Printed: p50, p99, req/s, server CPU per request, windows scored per pass, and
   whether the type meets the latency goals. It runs before the sections below, which serve the
   default LSTM (or `--model-dir`'s model) as before; `--zoo-only` stops after it.

Goals (issue 3): p50 <= 5 ms, p99 <= 20 ms, >= 300 requests/s at concurrency 8.

Run: .venv/bin/python benchmarks/analyze_bench.py [--requests 3000] [--concurrency 8] [--repeat 1000] [--clients raw,httpx]
     .venv/bin/python benchmarks/analyze_bench.py --model-types lightgbm,lightgbm-mtf --zoo-only   # the zoo table only
     .venv/bin/python benchmarks/analyze_bench.py --model-types none   # as before: the default LSTM only
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from fastcore.script import call_parse, store_true

from botcore.config import ENV_VARS
from botcore.data.candles import candles_to_json, load_candles

sys.path.insert(0, str(Path(__file__).parents[1] / 'tests'))
from support import free_port    # noqa: E402  the tests' helper

TOKEN = 'bench-token-' + 'b' * 32
ZOO = ('lstm', 'gru', 'transformer', 'mlp', 'lightgbm', 'logistic', 'lightgbm-mtf')
GOAL_P50_MS, GOAL_P99_MS = 5.0, 20.0


def trained_data_dir(model_dir: str | None) -> Path:
    "A data dir whose model_dir holds a promoted model of the default architecture."
    from botcore.model.registry import ModelRegistry
    from botcore.model.training import TrainConfig, train_model
    data_dir = Path(tempfile.mkdtemp(prefix='analyze-bench-'))
    if model_dir:
        (data_dir / 'models').symlink_to(Path(model_dir).resolve())
        return data_dir
    df = load_candles('BTCUSDT', '1h').iloc[-3000:]
    model = train_model(df, TrainConfig(epochs=1), 'BTCUSDT', '1h', progress=False)
    ModelRegistry(data_dir / 'models').promote(model, force=True)   # the gate judges skill; this is about speed
    return data_dir


def zoo_data_dir(name: str) -> tuple[Path, int]:
    "A data dir serving the zoo member `name` (`<type>` or `<type>-mtf`), and the candles it needs per request."
    from botcore.model.registry import ModelRegistry
    from botcore.model.signals import Analyzer
    from botcore.model.network import TORCH_TYPES
    from botcore.model.training import TrainConfig, train_model
    kind, _, features = name.partition('-')
    cfg = TrainConfig(model_type=kind, **({'epochs': 1} if kind in TORCH_TYPES else {}),
                      **({'features': features} if features else {}))
    model = train_model(load_candles('BTCUSDT', '1h').iloc[-3000:], cfg, 'BTCUSDT', '1h', progress=False)
    data_dir = Path(tempfile.mkdtemp(prefix=f'analyze-bench-{name}-'))
    ModelRegistry(data_dir / 'models').promote(model, force=True)   # the gate judges skill; this is about speed
    return data_dir, Analyzer(model).min_candles


def zoo_table(names: list[str], requests: int, concurrency: int, warmup: int, windows: int, runs: int = 3) -> list[dict]:
    "Per zoo member: the lean client's figures at `concurrency` with the cache off (median of `runs`), a row each."
    print(f"Per model type: POST /analyze, real BTCUSDT 1h candles, one uvicorn worker, prediction cache off, "
          f"concurrency {concurrency}, {requests} requests after {warmup}, lean client, the median of {runs} runs "
          f"against the same server; {os.cpu_count()} CPUs shared, load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'type':<13} {'candles':>7} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'req/s':>7} "
          f"{'server CPU ms/req':>17} {'windows/pass':>12}  goal p50 <= {GOAL_P50_MS:g} ms, p99 <= {GOAL_P99_MS:g} ms", flush=True)
    rows = []
    for name in names:
        data_dir, size = zoo_data_dir(name)
        rs = http_run(data_dir, False, bodies(windows, size), requests, concurrency, warmup, 'raw', runs)
        r = {k: (np.median([x[k] for x in rs]) if isinstance(v, (int, float, np.floating)) else v) for k, v in rs[0].items()}
        r |= dict(name=name, size=size, errors=sum(x['errors'] for x in rs), first_error=next((x['first_error'] for x in rs
                                                                                           if x['errors']), []))
        meets = r['p50'] <= GOAL_P50_MS and r['p99'] <= GOAL_P99_MS and not r['errors']
        rows.append(r | dict(meets=meets))
        print(f"{name:<13} {size:>7} {r['errors']:>6} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.2f} {r['rps']:>7.1f} "
              f"{r['server_cpu_ms']:>17.2f} {r['per_pass']:>12.2f}  {'meets' if meets else 'MISSES'}"
              + (f"  first error: {r['first_error']}" if r['errors'] else ''), flush=True)
    print()
    return rows


def bodies(n: int, size: int = 100) -> list[bytes]:
    "`n` distinct real requests: consecutive `size`-candle windows of BTCUSDT 1h."
    df = load_candles('BTCUSDT', '1h').iloc[-(n + size):]
    return [json.dumps({'symbol': 'BTCUSDT', 'timeframe': '1h', 'candles': candles_to_json(df.iloc[i:i + size])}).encode()
            for i in range(n)]


def start_server(data_dir: Path, cache: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith('BOTCORE_') and k not in ENV_VARS}
    env.update(BOTCORE_DATA_DIR=str(data_dir), INTER_SERVICE_TOKEN=TOKEN, BOTCORE_AI__CACHE_PREDICTIONS=str(cache).lower())
    proc = subprocess.Popen([sys.executable, '-m', 'uvicorn', 'botcore.api.ai.app:app', '--host', '127.0.0.1', '--port', str(port),
                             '--workers', '1', '--log-level', 'warning', '--no-access-log'], cwd=data_dir, env=env)
    url = f'http://127.0.0.1:{port}'
    for _ in range(480):
        try:
            if httpx.get(f'{url}/health', timeout=2).json()['model_loaded']: return proc, url
        except (httpx.TransportError, ValueError, KeyError): pass
        if proc.poll() is not None: sys.exit(f'server exited with {proc.returncode}')
        time.sleep(0.25)
    proc.kill()
    sys.exit('server did not become healthy')


class _Connection(asyncio.Protocol):
    "One keep-alive HTTP/1.1 connection that sends pre-built requests and reads each answer by its Content-Length."
    def __init__(self):
        self.buf, self.answer, self.transport = bytearray(), None, None
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b'\r\n\r\n')
        if end < 0: return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b'content-length:')
        size = int(head[at + 15:head.find(b'\r\n', at) if head.find(b'\r\n', at) > 0 else None]) if at >= 0 else 0
        if len(self.buf) < end + 4 + size: return
        status, body = int(self.buf[9:12]), bytes(self.buf[end + 4:end + 4 + size])
        del self.buf[:end + 4 + size]
        self.answer.set_result((status, body))
    def connection_lost(self, exc):
        if self.answer and not self.answer.done(): self.answer.set_exception(ConnectionError('connection closed'))
    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer


def analyze_requests(url: str, payloads: list[bytes]) -> list[bytes]:
    "Each payload as a complete `POST /analyze` HTTP/1.1 request."
    host = url.removeprefix('http://')
    head = f'POST /analyze HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n'.encode()
    return [head + f'Content-Length: {len(p)}\r\n\r\n'.encode() + p for p in payloads]


async def raw_load(url: str, payloads: list[bytes], requests: int, concurrency: int, built: list[bytes] | None = None) -> tuple[np.ndarray, float, float, list]:
    "As `load`, with the lean client: `concurrency` connections, each sending its next request when the last is answered."
    host, port = url.removeprefix('http://').split(':')
    built = built or analyze_requests(url, payloads)
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, host, int(port)))[1] for _ in range(concurrency)]
    lat, bad, todo = [], [], iter(range(requests))
    async def worker(conn):
        for i in todo:
            t = time.perf_counter()
            status, body = await conn.send(built[i % len(built)])
            lat.append(time.perf_counter() - t)
            if status != 200: bad.append((status, body[:200]))
    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(c) for c in conns))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for c in conns: c.transport.close()
    return np.array(lat), wall, cpu, bad


async def load(url: str, payloads: list[bytes], requests: int, concurrency: int) -> tuple[np.ndarray, float, float, list]:
    "Latencies (s) of `requests` requests sent by `concurrency` coroutines, the wall and client CPU time, any non-200 answers."
    headers = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'}
    lat, bad, todo = [], [], iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        async def worker():
            for i in todo:
                t = time.perf_counter()
                r = await client.post('/analyze', content=payloads[i % len(payloads)])
                lat.append(time.perf_counter() - t)
                if r.status_code != 200: bad.append((r.status_code, r.text[:200]))
        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return np.array(lat), time.perf_counter() - t0, time.process_time() - cpu0, bad


def http_run(data_dir: Path, cache: bool, payloads: list[bytes], requests: int, concurrency: int, warmup: int, client: str,
             runs: int = 1) -> list[dict]:
    "`runs` measured runs of the load against one server, after the warm-up; a dict of figures per run."
    import uvloop
    run = lambda coro: uvloop.run(coro) if client == 'raw' else asyncio.run(coro)
    go = raw_load if client == 'raw' else load
    info = lambda: httpx.get(f'{url}/model/info', headers={'Authorization': f'Bearer {TOKEN}'}).json()
    proc, url = start_server(data_dir, cache)
    out = []
    try:
        run(go(url, payloads, max(warmup, len(payloads) if cache else 0), concurrency))
        server = psutil.Process(proc.pid)
        for _ in range(runs):
            before, cpu0 = info(), sum(server.cpu_times()[:2])
            lat, wall, client_cpu, bad = run(go(url, payloads, requests, concurrency))
            cpu, after = sum(server.cpu_times()[:2]) - cpu0, info()
            delta = lambda part, k: after[part][k] - before[part][k]
            ms = lat * 1e3
            out.append(dict(client=client, cache='on' if cache else 'off', requests=len(lat), errors=len(bad), p50=np.percentile(ms, 50),
                            p90=np.percentile(ms, 90), p99=np.percentile(ms, 99), max=ms.max(), rps=len(lat) / wall,
                            server_cpu_ms=1e3 * cpu / len(lat), client_cpu_ms=1e3 * client_cpu / len(lat),
                            hits=delta('cache', 'hits'), misses=delta('cache', 'misses'),
                            per_pass=delta('scoring', 'windows') / max(1, delta('scoring', 'passes')), first_error=bad[:1]))
    finally:
        proc.terminate()
        proc.wait(15)
    return out


def floor_run(data_dir: Path, payload: bytes, requests: int, concurrency: int, warmup: int) -> list[tuple[str, float, float, float]]:
    "What uvicorn and FastAPI cost with no work: GET /health and GET /cache/stats (bearer auth) with the lean client."
    import uvloop
    proc, url = start_server(data_dir, False)
    host, out = url.removeprefix('http://'), []
    try:
        uvloop.run(raw_load(url, [payload], 1, 1))     # answered once the start-up warm-up (vectorbt's import) is over
        for name, req in (('GET /health', f'GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n'),
                          ('GET /cache/stats', f'GET /cache/stats HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n')):
            uvloop.run(raw_load(url, [], warmup, concurrency, [req.encode()]))
            server = psutil.Process(proc.pid)
            cpu0 = sum(server.cpu_times()[:2])
            lat, wall, _, bad = uvloop.run(raw_load(url, [], requests, concurrency, [req.encode()]))
            assert not bad, bad[:1]
            out.append((name, np.percentile(lat * 1e3, 50), len(lat) / wall, 1e3 * (sum(server.cpu_times()[:2]) - cpu0) / len(lat)))
    finally:
        proc.terminate()
        proc.wait(15)
    return out


def ways_run(data_dir: Path, payloads: list[bytes], requests: int, concurrency: int) -> list[tuple[str, float, float, float]]:
    "The same cached requests by the short way in (a server's, no Origin header) and by FastAPI's (a browser's, with one)."
    import uvloop
    proc, url = start_server(data_dir, True)
    built = analyze_requests(url, payloads)
    ways = {'POST /analyze, no Origin (short way)': built,
            'POST /analyze, Origin (FastAPI, CORS)': [r.replace(b'\r\n', b'\r\nOrigin: http://localhost:3000\r\n', 1) for r in built]}
    out = []
    try:
        uvloop.run(raw_load(url, payloads, len(payloads), concurrency))     # every window once: all hits from here on
        for name, reqs in ways.items():
            uvloop.run(raw_load(url, payloads, 200, concurrency, reqs))
            server = psutil.Process(proc.pid)
            cpu0 = sum(server.cpu_times()[:2])
            lat, wall, _, bad = uvloop.run(raw_load(url, payloads, requests, concurrency, reqs))
            assert not bad, bad[:1]
            out.append((name, np.percentile(lat * 1e3, 50), len(lat) / wall, 1e3 * (sum(server.cpu_times()[:2]) - cpu0) / len(lat)))
    finally:
        proc.terminate()
        proc.wait(15)
    return out


def per_call_ms(f, repeat: int) -> float:
    "Median over `repeat` calls of `f`, in ms (timed in batches of 10 for clock resolution)."
    f()
    times = []
    for _ in range(max(1, repeat // 10)):
        t = time.perf_counter()
        for _ in range(10): f()
        times.append((time.perf_counter() - t) / 10)
    return 1e3 * float(np.median(times))


def stages(data_dir: Path, payload: bytes, repeat: int) -> list[tuple[str, float]]:
    "The time of each step of one /analyze request, in-process, in the endpoint's order."
    import torch
    from botcore.api.ai.app import analyze_input, parse_body
    from botcore.api.ai.schemas import AnalysisResponse, AnalyzeRequest, candle_columns, series_errors
    from botcore.api.ai.serving import SignalService, cache_key
    from botcore.config import load_settings
    from botcore.data.features import feature_array
    from botcore.model.samples import scale_rows
    from botcore.model.trained import SERVE_BLOCK
    service = SignalService(load_settings(env={'BOTCORE_DATA_DIR': str(data_dir), 'INTER_SERVICE_TOKEN': TOKEN}))
    service.refresh()
    served = service.served   # as the service holds it, with its torch thread setting
    a, m = served.analyzer, served.analyzer.model
    req = parse_body(payload, AnalyzeRequest)
    columns = candle_columns(req.candles)
    t, _, high, low, close, volume = columns
    rows = a.window_rows(t, high, low, close, volume, req.timeframe)
    signal = a.analyze_columns(t, high, low, close, volume, req.symbol, req.timeframe)
    x = torch.from_numpy(np.repeat(scale_rows(rows, m.mean, m.scale)[None], SERVE_BLOCK, axis=0))
    def net_only():
        if not m.is_torch: return m.net.predict(x.numpy())     # a tabular model (--model-dir)
        with torch.inference_mode(): m.net.infer(x)
    eight = [rows] * 8
    steps = [
        ('analyze_input: body to columns (msgspec, then numpy)', lambda: analyze_input(payload)),
        ('  for comparison: pydantic (parse_body + candle_columns)', lambda: candle_columns(parse_body(payload, AnalyzeRequest).candles)),
        ('  for comparison: json.loads + model_validate (FastAPI)', lambda: AnalyzeRequest.model_validate(json.loads(payload))),
        ('series_errors: series checks on the columns', lambda: series_errors(columns, req.timeframe, 100)),
        ('cache_key', lambda: cache_key(req.symbol, req.timeframe, columns, served.version)),
        ('feature_array (21 features of 100 candles, one numba call)', lambda: feature_array(high, low, close, volume, t // 1000)),
        ('Analyzer.window_rows: the network input (features included)', lambda: a.window_rows(t, high, low, close, volume, req.timeframe)),
        ('predict_last_many, 1 window (one call of 4, padded)', lambda: m.predict_last_many(eight[:1])),
        (f'  of which the network alone (a call of {SERVE_BLOCK} windows)', net_only),
        ('predict_last_many, 8 windows (two calls of 4), per window', lambda: m.predict_last_many(eight)),
        ('Analyzer.signal_for: the probability as a Signal', lambda: a.signal_for(signal.probability, t[-1], req.symbol, req.timeframe)),
        ('Analyzer.analyze_columns, all of it (one window)', lambda: a.analyze_columns(t, high, low, close, volume, req.symbol, req.timeframe)),
        ('response: AnalysisResponse + JSON', lambda: AnalysisResponse(**signal.__dict__, model_version=served.version).model_dump_json()),
    ]
    out = [(name, per_call_ms(f, repeat) / (8 if 'per window' in name else 1)) for name, f in steps]
    out.append((f'(torch threads: {torch.get_num_threads()}, response {len(AnalysisResponse(**signal.__dict__, model_version=served.version).model_dump_json())} bytes)', float('nan')))
    return out


@call_parse
def main(requests: int = 3000,      # measured requests per run
         concurrency: int = 8,      # requests in flight at once
         warmup: int = 200,         # unmeasured requests before each run
         repeat: int = 1000,        # repetitions of each in-process stage
         windows: int = 500,        # distinct 100-candle windows sent
         clients: str = 'raw,httpx',  # load generators to run: raw (lean, wrk-like) and/or httpx
         runs: int = 3,             # measured runs of the lean client with the cache off (the machine's noise shows between them)
         model_dir: str = None,     # use the promoted model of this model_dir instead of training one
         model_types: str = 'all',  # the per-type table: 'all', 'none' or a comma list (e.g. lightgbm,lightgbm-mtf)
         type_requests: int = 2000,  # measured requests per run in the per-type table
         type_runs: int = 3,        # runs per type in the per-type table (their median is printed)
         zoo_only: store_true = False):  # print the per-type table only
    "Benchmark POST /analyze over HTTP and in-process."
    names = [] if model_types == 'none' else list(ZOO) if model_types == 'all' else \
        [n.strip() for n in model_types.split(',') if n.strip()]
    if bad := [n for n in names if n not in ZOO]:
        sys.exit(f"--model-types: unknown {', '.join(bad)} (known: all, none, {', '.join(ZOO)})")
    if names: zoo_table(names, type_requests, concurrency, warmup, windows, type_runs)
    if zoo_only: return
    data_dir = trained_data_dir(model_dir)
    payloads = bodies(windows)
    print(f"POST /analyze, 100 real BTCUSDT 1h candles ({len(payloads[0]):,} bytes), one uvicorn worker on 127.0.0.1, "
          f"concurrency {concurrency}, {os.cpu_count()} CPUs (client and server share them)\n")
    print(f"{'client':>6} {'cache':>5} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'req/s':>7} "
          f"{'server CPU ms/req':>17} {'client CPU ms/req':>17} {'hits':>6} {'misses':>6} {'windows/pass':>12}")
    row = lambda r: (f"{r['client']:>6} {r['cache']:>5} {r['requests']:>8} {r['errors']:>6} {r['p50']:>7.2f} {r['p90']:>7.2f} {r['p99']:>7.2f} "
                     f"{r['max']:>7.2f} {r['rps']:>7.1f} {r['server_cpu_ms']:>17.2f} {r['client_cpu_ms']:>17.2f} {r['hits']:>6} {r['misses']:>6} "
                     f"{r['per_pass']:>12.2f}" + (f"  first error: {r['first_error']}" if r['errors'] else ''))
    for client, (cache, sent) in ((c, run) for c in clients.split(',') for run in ((False, payloads), (True, payloads[:50]))):
        rs = http_run(data_dir, cache, sent, requests, concurrency, warmup, client, runs if (client, cache) == ('raw', False) else 1)
        for r in rs: print(row(r))
        if len(rs) > 1:
            print(row({k: (np.median([r[k] for r in rs]) if isinstance(v, (int, float, np.floating)) else v) for k, v in rs[0].items()}
                      | {'client': 'median', 'errors': sum(r['errors'] for r in rs)}))
    print("\nGoals: p50 <= 5 ms, p99 <= 20 ms, >= 300 req/s (cache off is the honest figure).\n")
    print("The server's floor: the same load on endpoints that do no work (lean client)")
    for name, p50, rps, cpu in floor_run(data_dir, payloads[0], requests, concurrency, warmup):
        print(f"  {name:<18} p50 {p50:5.2f} ms  {rps:7.1f} req/s  server CPU {cpu:.2f} ms/req")
    print("\nThe way in: the same requests, all cache hits, with and without an Origin header (lean client)")
    for name, p50, rps, cpu in ways_run(data_dir, payloads[:50], requests, concurrency):
        print(f"  {name:<38} p50 {p50:5.2f} ms  {rps:7.1f} req/s  server CPU {cpu:.2f} ms/req")
    print()
    print(f"Where the time goes: one request in-process, median of {repeat} repetitions")
    for name, ms in stages(data_dir, payloads[0], repeat):
        print(f"  {name:<58} {'' if np.isnan(ms) else f'{ms:8.3f} ms'}")
