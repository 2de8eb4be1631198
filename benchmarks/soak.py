"""Soak: the AI service and the engine under steady load for `--minutes`, their memory watched.

Set-up: two real uvicorn servers on loopback, in subprocesses, each with its own data directory:
- the AI service (`botcore.api.ai.app:app`) serving the default model type (LightGBM, barrier
  label) trained on the last 8,000 real ETHUSDT 5m candles (seconds) and promoted; its thresholds
  are 0.5 / 0.49 so that signals trade often; the prediction cache on, as by default;
- the engine (`botcore.api.engine:app`) replaying the real ETHUSDT 5m candles (all ~72k) and asking
  the AI service for every candle's signal; stop and target 0.5% so positions open and close often,
  SQLite in its data dir. `--speed 0` (the default) replays at the fastest pace whose candles last
  the whole run (about 19 candles/s for 60 minutes, 100 for 10; slower if the AI service cannot
  keep up): the engine trades to the end.
Load, from this process, for the whole run:
- `--clients` (20) WebSocket clients on /ws in churn: each connects, reads for a random 1-6 s,
  disconnects and connects again;
- `--pollers` (2) dashboards polling the REST API as the monitor page does: /api/status,
  /api/positions, /api/trades, /api/signals and /api/equity, every `--poll-seconds` (1).

Printed every minute (`--every`): each server's RSS and open file descriptors, the engine's SQLite
size (database and WAL), candles processed, trades, WebSocket connections and messages so far.
At the end: per server, RSS and descriptors at the end of the warm-up (the first minute, or half
of a shorter run) and at the end, the growth, the peak, the slope (MB/hour, least squares over the
samples after the warm-up); the verdict against the goal (issue 15): less than 50 MB of RSS
growth per process over the 60-minute run; the engine's growth per trade; then candles, trades,
WebSocket connections, messages, drops (close 1013) and errors, REST requests and errors, and
tracebacks in the servers' logs. Always exits 0.

Run: .venv/bin/python benchmarks/soak.py [--minutes 10] [--clients 20] [--pollers 2] [--speed 0]
     .venv/bin/python benchmarks/soak.py --minutes 60     # the long run the goal is stated for
     .venv/bin/python benchmarks/soak.py --minutes 0.5    # a smoke test of the script
"""
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil
import websockets
from fastcore.script import call_parse

sys.path.insert(0, str(Path(__file__).parents[1] / 'tests'))
from support import UvicornServer, clean_env    # noqa: E402  the integration tests' servers

INTER, ENGINE_KEY = 'inter-service-' + 'i' * 32, 'engine-key-' + 'e' * 32
AI_KEY = 'ai-key-' + 'a' * 32
SYMBOL, TIMEFRAME, HISTORY = 'ETHUSDT', '5m', 200
GOAL_MB, GOAL_MINUTES = 50, 60
POLLS = (('/api/status', {}), ('/api/positions', {}), ('/api/trades', {'limit': 25}),
         ('/api/signals', {'limit': 10}), ('/api/equity', {'limit': 2000}))


def trained_ai_dir(root: Path) -> Path:
    "A data dir with the default model type trained on real ETHUSDT 5m candles and promoted."
    from botcore.data.candles import load_candles
    from botcore.model.registry import ModelRegistry
    from botcore.model.training import default_config, train_model
    d = root / 'ai'
    d.mkdir()
    df = load_candles(SYMBOL, TIMEFRAME).iloc[-8000:]
    model = train_model(df, default_config(), SYMBOL, TIMEFRAME, progress=False)
    # the promotion gate judges skill; this is about memory
    ModelRegistry(d / 'models').promote(model, force=True)
    return d


def services(root: Path, speed: float, candles: int) -> tuple[UvicornServer, UvicornServer]:
    "The AI service and the engine replaying `candles` at `speed` candles/s against it."
    ai = UvicornServer('botcore.api.ai.app:app', trained_ai_dir(root), clean_env(
        INTER_SERVICE_TOKEN=INTER, AI_API_KEY=AI_KEY,
        BOTCORE_AI__LONG_THRESHOLD='0.5', BOTCORE_AI__SHORT_THRESHOLD='0.49'), name='ai')
    (root / 'engine').mkdir()
    engine = UvicornServer('botcore.api.engine:app', root / 'engine', clean_env(
        INTER_SERVICE_TOKEN=INTER, ENGINE_API_KEY=ENGINE_KEY, PYTHON_AI_SERVICE_URL=ai.url,
        BOTCORE_MARKET_DATA__SYMBOLS=f'["{SYMBOL}"]', BOTCORE_MARKET_DATA__TIMEFRAME=TIMEFRAME,
        BOTCORE_MARKET_DATA__REPLAY_SPEED=str(speed),
        BOTCORE_MARKET_DATA__REPLAY_CANDLES=str(candles),
        BOTCORE_MARKET_DATA__CONFIDENCE_THRESHOLD='0.5',
        BOTCORE_TRADING__STOP_LOSS_PCT='0.5', BOTCORE_TRADING__TAKE_PROFIT_PCT='0.5',
        BOTCORE_TRADING__COOLDOWN_LOSSES='0', BOTCORE_TRADING__DAILY_LOSS_LIMIT_PCT='0'),
        name='engine')
    return ai, engine


async def ws_client(url: str, until: float, counts: Counter, rng: random.Random):
    "Connect, read for a random 1-6 s, disconnect; again until `until`."
    while (left := until - time.monotonic()) > 0.2:
        try:
            async with websockets.connect(url, open_timeout=10) as ws:
                counts['ws connections'] += 1
                try:
                    async with asyncio.timeout(min(rng.uniform(1, 6), left)):
                        async for _ in ws: counts['ws messages'] += 1
                except TimeoutError: pass
        except websockets.ConnectionClosed as e:
            counts['ws dropped (1013)' if e.rcvd and e.rcvd.code == 1013 else 'ws errors'] += 1
        except (OSError, TimeoutError, websockets.InvalidHandshake):
            counts['ws errors'] += 1
            await asyncio.sleep(1)


async def poller(http: httpx.AsyncClient, until: float, pause: float, counts: Counter):
    "The monitor dashboard's REST calls, every `pause` s, until `until`."
    while time.monotonic() < until:
        for path, params in POLLS:
            try:
                r = await http.get(path, params=params)
                counts['REST requests'] += 1
                if r.status_code != 200: counts['REST errors'] += 1
            except httpx.HTTPError: counts['REST errors'] += 1
        await asyncio.sleep(pause)


def db_mb(engine_dir: Path) -> float:
    "The engine's SQLite database with its WAL, in MB."
    return sum(p.stat().st_size for p in engine_dir.glob('botcore.db*')) / 2**20


async def sample(t: float, procs: dict, engine: UvicornServer, http: httpx.AsyncClient,
                 counts: Counter) -> dict:
    "One row of figures at `t` seconds into the load; printed."
    row = dict(t=t, db=db_mb(engine.data_dir), candles=0, trades=0, finished=False)
    for name, p in procs.items():
        try: row[name] = dict(rss=p.memory_info().rss / 2**20, fds=p.num_fds())
        except psutil.Error: row[name] = dict(rss=float('nan'), fds=-1)    # it died: see its log
    try:
        st = (await http.get('/api/status')).json()
        row.update(candles=st['candles_processed'], trades=st['total_trades'],
                   finished=st['finished'])
    except (httpx.HTTPError, ValueError, KeyError): pass
    each = '   '.join(f"{n}: RSS {row[n]['rss']:7.1f} MB, {row[n]['fds']:3d} fds" for n in procs)
    print(f"  {t / 60:5.1f} min   {each}   db {row['db']:6.1f} MB   "
          f"candles {row['candles']:>7,}   trades {row['trades']:>5,}   "
          f"ws {counts['ws connections']:>6,} conns / {counts['ws messages']:>9,} msgs",
          flush=True)
    return row


COUNTS = ('ws connections', 'ws messages', 'ws dropped (1013)', 'ws errors', 'REST requests',
          'REST errors')


async def run_load(ai: UvicornServer, engine: UvicornServer, seconds: float, warmup: float,
                   every: float, clients: int, pollers: int,
                   poll_seconds: float) -> tuple[list[dict], Counter]:
    "The load for `seconds`, sampled at 0, the end of the warm-up, every `every` s and at the end."
    counts = Counter(dict.fromkeys(COUNTS, 0))
    rng = random.Random(0)
    procs = {'ai': psutil.Process(ai.proc.pid), 'engine': psutil.Process(engine.proc.pid)}
    url = engine.url.replace('http', 'ws') + f'/ws?token={ENGINE_KEY}'
    headers = {'Authorization': f'Bearer {ENGINE_KEY}'}
    async with httpx.AsyncClient(base_url=engine.url, headers=headers, timeout=30) as http:
        t0 = time.monotonic()
        until = t0 + seconds
        load = [asyncio.create_task(ws_client(url, until, counts, rng)) for _ in range(clients)]
        load += [asyncio.create_task(poller(http, until, poll_seconds, counts))
                 for _ in range(pollers)]
        at = sorted({0.0, warmup, seconds, *np.arange(every, seconds, every).tolist()})
        rows = []
        for t in at:
            await asyncio.sleep(max(0.0, t0 + t - time.monotonic()))
            rows.append(await sample(t, procs, engine, http, counts))
        await asyncio.gather(*load)
    return rows, counts


def verdict(name: str, rows: list[dict], warmup: float, minutes: float) -> str:
    "Growth of `name`'s RSS and descriptors after the warm-up, and how it stands against the goal."
    after = [r for r in rows if r['t'] >= warmup]
    first, last = after[0][name], after[-1][name]
    grown, peak = last['rss'] - first['rss'], max(r[name]['rss'] for r in rows)
    if len(after) >= 3:
        t = np.array([r['t'] for r in after]) / 3600
        slope = f"{np.polyfit(t, [r[name]['rss'] for r in after], 1)[0]:+7.1f} MB/h"
    else: slope = '    n/a   '
    ok = 'within' if grown < GOAL_MB else 'OVER'
    short = f' (the goal is for {GOAL_MINUTES} min; this run: {minutes:g} min)'
    return (f"  {name:<7} RSS {first['rss']:7.1f} -> {last['rss']:7.1f} MB: {grown:+6.1f} MB "
            f"(peak {peak:.1f}, slope {slope}); fds {first['fds']} -> {last['fds']}   "
            f"{ok} the goal of < {GOAL_MB} MB" + ('' if minutes >= GOAL_MINUTES else short))


@call_parse
def main(minutes: float = 10,        # how long the load runs
         clients: int = 20,          # WebSocket clients at any time, each reconnecting every 1-6 s
         pollers: int = 2,           # dashboards polling the REST API
         poll_seconds: float = 1,    # pause between two rounds of a poller's requests
         speed: float = 0,           # candles/s replayed (0: the fastest pace lasting the run)
         every: float = 60):         # seconds between two samples
    "Run the AI service and the engine under WebSocket and REST load; print their memory."
    from botcore.data.candles import load_candles
    seconds = minutes * 60
    warmup = min(60.0, seconds / 2)
    candles = len(load_candles(SYMBOL, TIMEFRAME)) - HISTORY
    pace = speed or round(candles / (seconds + 120), 1)  # +2 min: it starts with the engine
    root = Path(tempfile.mkdtemp(prefix='soak-'))
    print(f"Soak for {minutes:g} min: AI service + engine replaying {candles:,} real {SYMBOL} "
          f"{TIMEFRAME} candles at {pace:g} candles/s with AI signals; {clients} WebSocket "
          f"clients in churn, {pollers} REST pollers every {poll_seconds:g} s; "
          f"warm-up {warmup:g} s; data in {root}", flush=True)
    t = time.monotonic()
    ai, engine = services(root, pace, candles)
    print(f"  services up in {time.monotonic() - t:.0f} s (model trained and promoted, AI "
          "service, engine)\n", flush=True)
    try:
        rows, counts = asyncio.run(run_load(ai, engine, seconds, warmup, every, clients, pollers,
                                            poll_seconds))
    finally:
        t = time.monotonic()
        for s in (engine, ai): s.stop()
    print(f"  servers stopped (SIGTERM) in {time.monotonic() - t:.1f} s")
    print(f"\nGrowth after the warm-up (first {warmup:g} s excluded), per server process:")
    for name in ('ai', 'engine'): print(verdict(name, rows, warmup, minutes))
    after = [r for r in rows if r['t'] >= warmup]
    print(f"  SQLite  {after[0]['db']:.1f} -> {after[-1]['db']:.1f} MB (database and WAL)")
    if (n := after[-1]['trades'] - after[0]['trades']) > 0:     # what the engine keeps per trade
        kb = (after[-1]['engine']['rss'] - after[0]['engine']['rss']) * 1024 / n
        print(f"  engine  {kb:.1f} KB of RSS growth per trade after the warm-up ({n:,} trades)")
    last = rows[-1]
    done = next((r['t'] for r in rows if r['finished']), None)
    ended = f"; the replay ended at {done / 60:.1f} min" if done is not None else ''
    print(f"\nCandles processed {last['candles']:,}, trades {last['trades']:,}{ended}")
    print('  ' + ', '.join(f"{k} {v:,}" for k, v in counts.items()))
    for s in (ai, engine):
        n = s.logs().count('Traceback')
        print(f"  {s.name} log: {n} traceback(s)" + (f" (see {s.log_path})" if n else ''))
