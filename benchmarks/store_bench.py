"""Latency of the engine's per-decision transaction and batch insert rates of `botcore.store.store.Store`.

Data: the real BTCUSDT 1h candles (the last `--decisions` closes give the prices and times).

Measured, on an SQLite file (WAL, synchronous=NORMAL; in a fresh temporary folder unless `--dir`)
and on PostgreSQL at 127.0.0.1:5432 when reachable (in a schema of its own, dropped afterwards):
- decision: one transaction as the engine writes it after a fill, alternately
  an entry (add_order, add_fill, update_order FILLED, upsert_position with stop and target) and
  an exit (add_order, add_fill, update_order FILLED, delete_position, add_trade),
  timed from `store.transaction()` to the end of its commit; p50, p90, p99 and max in ms over
  `--decisions` transactions after `--warmup` untimed ones, and transactions per second. Beside the
  wall clock, the writing thread's CPU time: on a shared machine, wall-clock spikes that its CPU time
  does not show are time spent waiting for a CPU (the load average is printed first).
  SQLite's WAL checkpoints run in the store's background thread (botcore.store.database.WalCheckpointer),
  off the commit path, except when a WAL that never got a pause passes 1,000 pages.
- batches: `add_signals` and `add_equity` of `--rows` rows in batches of `--batch` (one transaction
  each), as rows per second.

Run: .venv/bin/python benchmarks/store_bench.py [--decisions 2000] [--warmup 200] [--rows 20000] [--batch 1000] [--dir PATH]
"""
import os, statistics, tempfile, time, uuid
from pathlib import Path

import sqlalchemy as sa
from fastcore.script import call_parse

from botcore.core import Fill, Order, OrderStatus, Position, Side, Trade
from botcore.data.candles import load_candles
from botcore.store.database import to_ms
from botcore.store.store import Store

PG_URL = 'postgresql+psycopg://postgres@127.0.0.1:5432/test'


def decision(store: Store, k: int, t, price: float, pos: Position | None) -> Position | None:
    "One engine decision in one transaction: an entry when flat, an exit when in a position."
    side = Side.BUY if pos is None else Side.SELL
    o = Order(symbol='BTCUSDT', side=side, quantity=0.01, created_at=t)
    fee = 0.001 * 0.01 * price
    with store.transaction() as tx:
        tx.add_order(o)
        tx.add_fill(Fill(client_order_id=o.client_order_id, symbol='BTCUSDT', side=side, quantity=0.01, price=price, fee=fee, timestamp=t))
        tx.update_order(o.client_order_id, OrderStatus.FILLED)
        if pos is None:
            pos = Position(symbol='BTCUSDT', side=side, size=0.01, entry_price=price, opened_at=t, entry_fee=fee)
            tx.upsert_position(pos, stop=price * 0.98, target=price * 1.04)
            return pos
        tx.delete_position('BTCUSDT')
        tx.add_trade(Trade.close(pos, price, t, fee, reason='signal'), exit_order_id=o.client_order_id)
        return None


def time_decisions(store: Store, btc, n: int, warmup: int) -> tuple[list[float], list[float]]:
    "Wall-clock and CPU milliseconds (this thread's) of each of `n` timed decisions."
    closes, times = btc.close.to_numpy()[-(n + warmup):], btc.index[-(n + warmup):]
    pos, wall, cpu = None, [], []
    for k in range(n + warmup):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        pos = decision(store, k, times[k].to_pydatetime(), float(closes[k]), pos)
        if k >= warmup: wall.append((time.perf_counter_ns() - t0) / 1e6); cpu.append((time.thread_time_ns() - c0) / 1e6)
    return wall, cpu


def batches(store: Store, btc, rows: int, batch: int) -> tuple[float, float]:
    "Rows per second of `add_signals` and of `add_equity`."
    times = [to_ms(t) for t in btc.index[-batch:]]
    sig = [dict(symbol='BTCUSDT', timeframe='1h', signal='long', confidence=70.0, probability=0.7, candle_ms=t,
                model_type='lstm', received_ms=t + 3_600_000) for t in times]
    eq = [(t, 10_000.0 + i, 9_000.0, float(i)) for i, t in enumerate(times)]
    rates = []
    for write, data in ((store.add_signals, sig), (store.add_equity, eq)):
        t0 = time.perf_counter()
        for _ in range(rows // batch): write(data)
        rates.append(rows // batch * batch / (time.perf_counter() - t0))
    return tuple(rates)


def report(name: str, store: Store, btc, n, warmup, rows, batch):
    ms, cpu = time_decisions(store, btc, n, warmup)
    q, qc = (statistics.quantiles(x, n=100, method='inclusive') for x in (ms, cpu))
    sig, eq = batches(store, btc, rows, batch)
    print(f"{name}: decision transaction over {n}: p50 {q[49]:.3f} ms, p90 {q[89]:.3f} ms, p99 {q[98]:.3f} ms, "
          f"max {max(ms):.3f} ms ({sum(m > 2 for m in ms)} over 2 ms), {n / (sum(ms) / 1000):,.0f} transactions/s; "
          f"CPU of the writing thread p50 {qc[49]:.3f} ms, p99 {qc[98]:.3f} ms")
    print(f"{name}: batches of {batch}: signals {sig:,.0f} rows/s, equity {eq:,.0f} rows/s")
    return q[98]


@call_parse
def main(decisions: int = 2000,   # timed decision transactions
         warmup: int = 200,       # untimed ones before them
         rows: int = 20_000,      # rows of signals and of equity to insert
         batch: int = 1000,       # rows per add_signals / add_equity call
         dir: str = None):        # folder for the SQLite file (default: a fresh temporary one)
    n = decisions
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes' load shows up as p99/max)")
    btc = load_candles('BTCUSDT', '1h')
    folder = Path(dir) if dir else Path(tempfile.mkdtemp(prefix='store_bench_'))
    with Store(f'sqlite:///{folder}/bench.db') as store:
        p99 = report('sqlite', store, btc, n, warmup, rows, batch)
    print(f"sqlite: target p99 <= 2 ms: {'met' if p99 <= 2 else 'MISSED'}")
    try:
        admin = sa.create_engine(PG_URL, connect_args={'connect_timeout': 3}, poolclass=sa.NullPool)
        with admin.connect() as c: c.exec_driver_sql('SELECT 1')
    except Exception as e:
        print(f"postgresql: skipped, {PG_URL} unreachable ({type(e).__name__})")
        return
    schema = f'bench_{uuid.uuid4().hex[:12]}'
    with admin.begin() as c: c.exec_driver_sql(f'CREATE SCHEMA {schema}')
    try:
        with Store(f'{PG_URL}?options=-csearch_path%3D{schema}') as store: report('postgresql', store, btc, n, warmup, rows, batch)
    finally:
        with admin.begin() as c: c.exec_driver_sql(f'DROP SCHEMA {schema} CASCADE')
