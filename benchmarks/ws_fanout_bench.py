"""WebSocket fan-out: 200 clients on the engine's /ws, latency from an event's publication to its receipt.

The engine API runs in its own process (`uvicorn` on 127.0.0.1, one worker) replaying the real
BTCUSDT 1h candles at `--speed` candles/s with the RSI rules' signals precomputed, so it publishes
`AISignalReceived`, `PositionUpdate`, `TradeExecuted` and `BotStatusUpdate` events continuously. This
process opens `--clients` (200) WebSocket connections with the `websockets` library, all in one event
loop, and for every message received computes receipt time minus the message's `sent` stamp (the wall
clock when the engine published it; both processes read the same clock). Printed: messages per client,
p50 / p99 / max latency over all messages of all clients, and how many clients were dropped as laggards.
Goal (issue 5): p99 <= 50 ms with 200 clients.

Run: .venv/bin/python benchmarks/ws_fanout_bench.py [--clients 200] [--seconds 20] [--speed 20]
"""
import asyncio, json, os, socket, subprocess, sys, tempfile, time
from pathlib import Path

import httpx
import numpy as np
import websockets
from fastcore.script import call_parse

KEY = 'bench-engine-key-' + 'k' * 32


def serve(port: int, speed: float):
    "The server side: the engine API with precomputed RSI signals, on uvicorn."
    import uvicorn
    from botcore.api.engine import create_app
    from botcore.config import Settings
    from botcore.data.candles import load_candles
    from botcore.engine.engine import Engine
    from botcore.engine.signal_sources import PrecomputedSignals
    from botcore.strategy.series import rsi_band_signals
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix='ws-bench-')), auth=dict(engine_api_key=KEY),
                        market_data=dict(symbols=['BTCUSDT'], timeframe='1h', replay_speed=speed, replay_candles=20_000),
                        trading=dict(cooldown_losses=0, daily_loss_limit_pct=0))
    rules = rsi_band_signals(load_candles('BTCUSDT', '1h'))
    factory = lambda s, store: Engine.create(s, store, signals=PrecomputedSignals({'BTCUSDT': rules}, '1h', 'rsi'))
    uvicorn.run(create_app(settings, factory), host='127.0.0.1', port=port, log_level='warning', ws_max_queue=1024)


async def client(url: str, until: float, lat: list, counts: list, dropped: list):
    n = 0
    async with websockets.connect(url, max_queue=None) as ws:
        try:
            async with asyncio.timeout(until - time.time()):      # one deadline, not a timer per message
                async for msg in ws:
                    now = time.time()
                    at = msg.rfind('"sent":')          # the stamp only: parsing the whole JSON would time this client, not the server
                    if at >= 0: lat.append(now - float(msg[at + 7:-1])); n += 1
        except TimeoutError: pass
        except websockets.ConnectionClosed as e:
            if e.rcvd and e.rcvd.code == 1013: dropped.append(1)
    counts.append(n)


async def load(port: int, clients: int, seconds: float):
    url = f'ws://127.0.0.1:{port}/ws?token={KEY}'
    lat, counts, dropped = [], [], []
    until = time.time() + seconds
    await asyncio.gather(*(client(url, until, lat, counts, dropped) for _ in range(clients)))
    return np.array(lat) * 1e3, counts, dropped


@call_parse
def main(clients: int = 200,      # WebSocket clients
         seconds: float = 20,     # how long they listen
         speed: float = 20,       # candles per second the engine replays
         serve_port: int = 0):    # internal: run the server on this port
    if serve_port: return serve(serve_port, speed)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, '--serve-port', str(port), '--speed', str(speed)])
    try:
        for _ in range(600):
            try:
                if httpx.get(f'http://127.0.0.1:{port}/health', timeout=1).json()['engine'] == 'running': break
            except (httpx.TransportError, ValueError): pass
            time.sleep(0.1)
        ms, counts, dropped = asyncio.run(load(port, clients, seconds))
    finally:
        proc.terminate(); proc.wait(30)
    print(f"{clients} WebSocket clients for {seconds:.0f} s, engine replaying {speed:g} candles/s:")
    print(f"  {len(ms):,} messages received, {np.mean(counts):.0f} per client (min {min(counts)}, max {max(counts)}); "
          f"{len(dropped)} clients dropped as too slow")
    print(f"  latency publish -> receipt: p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
          f"max {ms.max():.1f} ms   [goal p99 <= 50 ms]")
