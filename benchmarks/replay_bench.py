"""Speed of `botcore.exchange.replay` and `.paper`: replaying real candles at full speed, pacing at a set speed, and paper orders.

Data: the real bundled Binance series BTCUSDT 5m and ETHUSDT 5m (71,769 candles each, 2024-01-01 00:00 to
2024-09-06 04:40 UTC), replayed together (two symbols per time step); the goal is >= 200,000 candles/s with speed=0.

Measured:
- layout: building a `ReplayMarketData` (load the Parquet files, cut the window, lay the replay out in stream order).
- stream, speed=0: the best and the median of `--repeat` whole replays, each candle a validated `botcore.core.Candle`
  consumed by an `async for` that does nothing else (an engine's work per candle comes on top).
- event loop: the longest the replay kept a concurrent task (standing for the engine's HTTP server) waiting, i.e.
  the worst latency it adds to a request, while streaming at full speed; and the one-time setup of `stream()`
  (the replay's arrays turned into Python lists), which blocks the loop once when a stream starts.
- pacing: wall time of a short replay at `speed` 50 and 200 time steps per second against the ideal.
- paper orders: market orders per second through `PaperExchange.place_order` (a round trip per two orders), and
  the time to place an already-seen order id again (the idempotent path).

Run: .venv/bin/python benchmarks/replay_bench.py [--repeat 5]
"""
import asyncio
import time

from fastcore.script import call_parse

from botcore.core import Order
from botcore.exchange.paper import PaperExchange
from botcore.exchange.replay import ReplayMarketData


async def drain(md: ReplayMarketData, candles=None) -> int:
    "Stream `md` (or the iterator `candles`) to the end; the number of candles."
    n = 0
    async for _ in (candles or md.stream()): n += 1
    return n


async def worst_wait(md: ReplayMarketData) -> tuple[int, float]:
    "(candles, longest gap in seconds between two turns of a concurrent task) while `md` streams."
    candles = md.stream()          # its one-time setup (arrays to lists) is timed apart, in main
    gaps, stop = [0.0], False
    async def ticker():
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0)
            now = time.perf_counter(); gaps[0] = max(gaps[0], now - last); last = now
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    n = await drain(md, candles)
    stop = True
    await task
    return n, gaps[0]


async def paced(speed: float, steps: int) -> tuple[float, float]:
    "(seconds taken, ideal seconds) to stream `steps` time steps of two symbols at `speed`."
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=speed, candles=steps)
    t = time.perf_counter()
    await drain(md)
    return time.perf_counter() - t, (steps - 1) / speed


async def orders(n: int) -> tuple[float, float]:
    "(market orders per second, microseconds to re-place a seen id) on a paper exchange."
    ex = PaperExchange(1e9)
    placed = [Order(symbol='BTCUSDT', side='BUY' if i % 2 == 0 else 'SELL', quantity=0.01) for i in range(n)]
    t = time.perf_counter()
    for i, o in enumerate(placed): await ex.place_order(o, market_price=60_000.0 + i % 100)
    rate = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for o in placed: await ex.place_order(o)
    return rate, (time.perf_counter() - t) / n * 1e6


@call_parse
def main(repeat: int = 5):  # full-speed replays timed; the best and the median are reported
    "Time the replay of BTCUSDT 5m and ETHUSDT 5m at full speed, its pacing, and paper market orders."
    t = time.perf_counter()
    md = ReplayMarketData(['BTCUSDT', 'ETHUSDT'], '5m', speed=0, candles=1_000_000, history=200)
    print(f'layout: {time.perf_counter() - t:.2f} s for {len(md):,} candles ({md!r})')
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        n = asyncio.run(drain(md))
        times.append(time.perf_counter() - t)
    times.sort()
    best, median = times[0], times[len(times) // 2]
    print(f'stream, speed=0: best {n / best:,.0f} candles/s ({best:.3f} s), median {n / median:,.0f} candles/s '
          f'of {repeat}; goal >= 200,000: {"met" if n / best >= 200_000 else "NOT met"}')
    n, gap = asyncio.run(worst_wait(md))
    t = time.perf_counter(); md.stream(); setup = time.perf_counter() - t
    print(f'event loop during a full-speed replay of {n:,} candles: another task waited at most {gap * 1e3:.2f} ms; '
          f'stream() setup (once per stream) {setup * 1e3:.1f} ms')
    for speed, steps in ((50, 51), (200, 201)):
        took, ideal = asyncio.run(paced(speed, steps))
        print(f'pacing at speed={speed}: {steps} steps in {took:.3f} s (ideal {ideal:.3f} s, {100 * (took / ideal - 1):+.1f} %)')
    rate, again = asyncio.run(orders(20_000))
    print(f'paper market orders: {rate:,.0f} orders/s; an already-placed id again: {again:.2f} us')
