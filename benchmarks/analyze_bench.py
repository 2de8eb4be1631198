"""Latency and throughput of `POST /analyze` with 100 real candles, and where the time goes.

Set-up: a model with the default architecture (`TrainConfig()`: LSTM, window 50, hidden 64; trained
for one epoch on the last 3,000 BTCUSDT 1h candles, since training length does not change the
cost of inference) is promoted into a temporary data directory, unless `--model-dir` names one.
The request bodies are real: distinct 100-candle windows of BTCUSDT 1h, serialised once up front.

1. HTTP: `python -m uvicorn botcore.api.ai:app` on 127.0.0.1, one worker, started twice: with the
   prediction cache off (every request runs features and the network) and on (all windows seen
   once during warm-up, then every request is a hit). `--concurrency` (8) coroutines of one
   `httpx.AsyncClient` send `--requests` (3,000) requests after `--warmup` (200). Printed: p50, p90,
   p99, max latency, requests/s, and the server's CPU time per request (from psutil), which says
   what the server costs whatever the client (on the same cores) takes.
2. In-process stages, each timed with `time.perf_counter` over `--repeat` (1,000) repetitions of
   one request: JSON parsing, pydantic validation, the series checks, and the `Analyzer`'s own
   steps (candles to a validated frame, gap split, features, network), then the response; on a
   worker thread with the service's torch settings, as FastAPI's thread pool runs the endpoint.

Goals (issue 3): p50 <= 5 ms, p99 <= 20 ms, >= 300 requests/s at concurrency 8.

Run: .venv/bin/python benchmarks/analyze_bench.py [--requests 3000] [--concurrency 8] [--repeat 1000]
"""
import asyncio, json, os, socket, subprocess, sys, tempfile, threading, time
from pathlib import Path

import httpx
import numpy as np
import psutil
from fastcore.script import call_parse

from botcore.config import ENV_VARS
from botcore.data import candles_to_json, load_candles

TOKEN = 'bench-token-' + 'b' * 32


def trained_data_dir(model_dir: str | None) -> Path:
    "A data dir whose model_dir holds a promoted model of the default architecture."
    from botcore.model import ModelRegistry, TrainConfig, train_model
    data_dir = Path(tempfile.mkdtemp(prefix='analyze-bench-'))
    if model_dir:
        (data_dir / 'models').symlink_to(Path(model_dir).resolve())
        return data_dir
    df = load_candles('BTCUSDT', '1h').iloc[-3000:]
    ModelRegistry(data_dir / 'models').promote(train_model(df, TrainConfig(epochs=1), 'BTCUSDT', '1h', progress=False))
    return data_dir


def bodies(n: int) -> list[bytes]:
    "`n` distinct real requests: consecutive 100-candle windows of BTCUSDT 1h."
    df = load_candles('BTCUSDT', '1h').iloc[-(n + 100):]
    return [json.dumps({'symbol': 'BTCUSDT', 'timeframe': '1h', 'candles': candles_to_json(df.iloc[i:i + 100])}).encode()
            for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, cache: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith('BOTCORE_') and k not in ENV_VARS}
    env.update(BOTCORE_DATA_DIR=str(data_dir), INTER_SERVICE_TOKEN=TOKEN, BOTCORE_AI__CACHE_PREDICTIONS=str(cache).lower())
    proc = subprocess.Popen([sys.executable, '-m', 'uvicorn', 'botcore.api.ai:app', '--host', '127.0.0.1', '--port', str(port),
                             '--workers', '1', '--log-level', 'warning', '--no-access-log'], cwd=data_dir, env=env)
    url = f'http://127.0.0.1:{port}'
    for _ in range(480):
        try:
            if httpx.get(f'{url}/health', timeout=2).json()['model_loaded']: return proc, url
        except (httpx.TransportError, ValueError, KeyError): pass
        if proc.poll() is not None: sys.exit(f'server exited with {proc.returncode}')
        time.sleep(0.25)
    proc.kill(); sys.exit('server did not become healthy')


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


def http_run(data_dir: Path, cache: bool, payloads: list[bytes], requests: int, concurrency: int, warmup: int) -> dict:
    proc, url = start_server(data_dir, cache)
    try:
        asyncio.run(load(url, payloads, max(warmup, len(payloads) if cache else 0), concurrency))
        server = psutil.Process(proc.pid)
        cpu0 = sum(server.cpu_times()[:2])
        lat, wall, client_cpu, bad = asyncio.run(load(url, payloads, requests, concurrency))
        cpu = sum(server.cpu_times()[:2]) - cpu0
        stats = httpx.get(f'{url}/cache/stats', headers={'Authorization': f'Bearer {TOKEN}'}).json()
    finally:
        proc.terminate(); proc.wait(15)
    ms = lat * 1e3
    return dict(cache='on' if cache else 'off', requests=len(lat), errors=len(bad), p50=np.percentile(ms, 50),
                p90=np.percentile(ms, 90), p99=np.percentile(ms, 99), max=ms.max(), rps=len(lat) / wall,
                server_cpu_ms=1e3 * cpu / len(lat), client_cpu_ms=1e3 * client_cpu / len(lat), hits=stats['hits'], misses=stats['misses'], first_error=bad[:1])


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
    "The time of each step of one /analyze request, in-process."
    import torch
    from botcore.api.ai import AnalysisResponse, AnalyzeRequest, SignalService, candle_errors, cache_key
    from botcore.config import load_settings
    from botcore.data import split_segments
    from botcore.model import segment_features
    from botcore.signals import candles_frame
    service = SignalService(load_settings(env={'BOTCORE_DATA_DIR': str(data_dir), 'INTER_SERVICE_TOKEN': TOKEN}))
    service.refresh()
    served = service.served   # as the service holds it, with its torch thread setting
    a, m = served.analyzer, served.analyzer.model
    raw = json.loads(payload)
    req = AnalyzeRequest.model_validate(raw)
    dicts = [c.model_dump() for c in req.candles]
    df = candles_frame(dicts, req.timeframe)
    run = split_segments(df, req.timeframe)[-1]
    feats = segment_features(run)
    last = feats.iloc[-m.window:]
    signal = a.analyze(dicts, req.symbol, req.timeframe)
    resp = AnalysisResponse(**signal.model_dump(), model_version=served.version)
    x = torch.from_numpy(np.ascontiguousarray(((m.feature_rows(last) - m.mean) / m.scale)[None]))
    def net_only():
        with torch.inference_mode(): m.net(x)
    rows = [
        ('json.loads of the body (FastAPI)', lambda: json.loads(payload)),
        ('pydantic: AnalyzeRequest validation (FastAPI)', lambda: AnalyzeRequest.model_validate(raw)),
        ('candle_errors: series checks', lambda: candle_errors(req.candles, req.timeframe, 100)),
        ('cache_key', lambda: cache_key(req, served.version)),
        ('candles to dicts (model_dump)', lambda: [c.model_dump() for c in req.candles]),
        ('Analyzer: candles_frame (DataFrame + validate_candles)', lambda: candles_frame(dicts, req.timeframe)),
        ('Analyzer: split_segments', lambda: split_segments(df, req.timeframe)),
        ('Analyzer: segment_features (feature_matrix)', lambda: segment_features(run)),
        ('Analyzer: predict_proba on the last window', lambda: m.predict_proba(last)),
        ('  of which the network forward alone', net_only),
        ('Analyzer.analyze, all of it', lambda: a.analyze(dicts, req.symbol, req.timeframe)),
        ('response: AnalysisResponse + JSON', lambda: AnalysisResponse(**signal.model_dump(), model_version=served.version).model_dump_json()),
    ]
    out = []   # timed on a worker thread, as FastAPI's thread pool runs /analyze
    worker = threading.Thread(target=lambda: out.extend((name, per_call_ms(f, repeat)) for name, f in rows))
    worker.start(); worker.join()
    out.append((f'(torch threads: {torch.get_num_threads()}, response {len(resp.model_dump_json())} bytes)', float('nan')))
    return out


@call_parse
def main(requests: int = 3000,      # measured requests per run
         concurrency: int = 8,      # requests in flight at once
         warmup: int = 200,         # unmeasured requests before each run
         repeat: int = 1000,        # repetitions of each in-process stage
         windows: int = 500,        # distinct 100-candle windows sent
         model_dir: str = None):    # use the promoted model of this model_dir instead of training one
    "Benchmark POST /analyze over HTTP and in-process."
    data_dir = trained_data_dir(model_dir)
    payloads = bodies(windows)
    print(f"POST /analyze, 100 real BTCUSDT 1h candles ({len(payloads[0]):,} bytes), one uvicorn worker on 127.0.0.1, "
          f"concurrency {concurrency}, {os.cpu_count()} CPUs (client and server share them)\n")
    print(f"{'cache':>5} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'req/s':>7} "
          f"{'server CPU ms/req':>17} {'client CPU ms/req':>17} {'hits':>6} {'misses':>6}")
    for cache, sent in ((False, payloads), (True, payloads[:50])):
        r = http_run(data_dir, cache, sent, requests, concurrency, warmup)
        print(f"{r['cache']:>5} {r['requests']:>8} {r['errors']:>6} {r['p50']:>7.2f} {r['p90']:>7.2f} {r['p99']:>7.2f} "
              f"{r['max']:>7.2f} {r['rps']:>7.1f} {r['server_cpu_ms']:>17.2f} {r['client_cpu_ms']:>17.2f} {r['hits']:>6} {r['misses']:>6}"
              + (f"  first error: {r['first_error']}" if r['errors'] else ''))
    print("\nGoals: p50 <= 5 ms, p99 <= 20 ms, >= 300 req/s (cache off is the honest figure).\n")
    print(f"Where the time goes: one request in-process, median of {repeat} repetitions")
    for name, ms in stages(data_dir, payloads[0], repeat):
        print(f"  {name:<58} {'' if np.isnan(ms) else f'{ms:8.3f} ms'}")
