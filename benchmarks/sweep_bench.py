"""Speed and memory of `botcore.research.sweep.sweep`: a 1,000-combination parameter sweep over BTCUSDT 1h on Dask.

Data: the real BTCUSDT-1h series (58,419 Binance candles, 2017-08-17 04:00 to 2024-04-21 14:00 UTC) with the
RSI/MACD rule signals (`botcore.research.signals.rsi_macd_signals`). Grid: 10 stop losses (0.5 .. 5 %) x 10 take profits
(1 .. 10 %) x 10 position sizes (5 .. 50 % of equity) = 1,000 parameter sets, the other rules at their defaults.

Measured:
- cluster start: a `distributed.LocalCluster` of `--workers` single-threaded worker processes (default 2).
- warm-up (JIT), one time per worker process: a 2-combination sweep on the same cluster. Each worker imports
  vectorbt and loads the strategy's loop and vectorbt's simulator and statistics from numba's disk cache (run
  once with `NUMBA_CACHE_DIR=$(mktemp -d)` to see them compiled from scratch).
- the sweep: the 1,000 combinations on the warm cluster (grid validated, candles sent to the cluster, signals
  computed in a task, chunks of parameter sets run as tasks, each one vectorbt portfolio with a column per
  parameter set; the ranked frame back): combinations/s and candle-combinations/s (strategy steps booked by
  vectorbt per second).
- one at a time, for comparison: `backtest()` + `portfolio_stats()` per parameter set in this process, the
  median of `--single` calls, as combinations/s.
- peak memory: the largest resident set of this process (client and scheduler) and of each worker process
  (`getrusage`, since each process started, warm-up included).

Run: .venv/bin/python benchmarks/sweep_bench.py [--workers 2] [--single 10] [--scheduler tcp://host:8786]
"""
import logging
import os
import resource
import statistics
import time

import numpy as np
from fastcore.script import call_parse

GRID = {'stop_loss_pct': [round(x, 2) for x in np.linspace(0.5, 5, 10)],
        'take_profit_pct': [float(x) for x in range(1, 11)],
        'position_size_pct': [float(x) for x in range(5, 55, 5)]}


def peak_rss_mb() -> float:
    "Largest resident set of the calling process so far, in MB (Linux reports KB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@call_parse
def main(workers: int = 2,  # worker processes of the LocalCluster
         single: int = 10,  # backtest() calls timed one at a time for comparison
         scheduler: str = None):  # address of a running Dask scheduler instead of a LocalCluster
    "Time a 1,000-combination sweep over BTCUSDT 1h on Dask, after the workers' warm-up."
    from distributed import Client, LocalCluster
    from botcore.data.candles import load_candles
    from botcore.research.grid import param_grid
    from botcore.research.sweep import sweep
    candles = load_candles('BTCUSDT', '1h')
    n = int(np.prod([len(v) for v in GRID.values()]))
    print(f"grid: {' x '.join(f'{len(v)} {k}' for k, v in GRID.items())} = {n:,} combinations; "
          f"BTCUSDT 1h, {len(candles):,} candles {candles.index[0]:%Y-%m-%d} .. {candles.index[-1]:%Y-%m-%d}, rule signals")

    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} before the run (other jobs slow every figure)")
    t = time.perf_counter()
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=':0',
                                                  silence_logs=logging.ERROR, host='127.0.0.1')
    client = Client(scheduler or cluster)
    n_workers = len(client.scheduler_info()['workers'])
    print(f"cluster start: {time.perf_counter() - t:.2f} s ({n_workers} worker processes, 1 thread each"
          f"{'' if cluster else ', at ' + scheduler})")
    try:
        t = time.perf_counter()
        sweep({'stop_loss_pct': [1, 2]}, scheduler=client, progress=False, chunk_size=1)
        print(f"warm-up (JIT), first tasks on fresh workers: {time.perf_counter() - t:.2f} s")

        t = time.perf_counter()
        res = sweep(GRID, scheduler=client, progress=False)
        took = time.perf_counter() - t
        print(f"sweep of {n:,} combinations: {took:.2f} s -> {n / took:,.0f} combinations/s, "
              f"{n * len(candles) / took / 1e6:,.1f} M candle-combinations/s ({res.attrs['tasks']} tasks)")
        best = res.iloc[0]
        print(f"best by Sharpe: stop {best.stop_loss_pct} %, target {best.take_profit_pct} %, size {best.position_size_pct} %: "
              f"Sharpe {best.sharpe_ratio:.2f}, return {best.total_return_pct:.1f} %, max drawdown {best.max_drawdown_pct:.1f} %, "
              f"{best.trades} trades")
        worker_peaks = client.run(peak_rss_mb)
    finally:
        client.close()
        if cluster is not None: cluster.close()

    if single:
        from botcore.research.backtest import backtest
        from botcore.research.stats import portfolio_stats
        from botcore.research.signals import rsi_macd_signals
        sig, params = rsi_macd_signals(candles), param_grid(GRID)[:single + 1]
        backtest(candles, sig, params[0])  # compile/load once
        times = []
        for p in params[1:]:
            t = time.perf_counter(); portfolio_stats(backtest(candles, sig, p).portfolio); times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"one at a time (backtest + portfolio_stats in this process): median {med * 1e3:.0f} ms of {single} -> "
              f"{1 / med:,.1f} combinations/s")

    print(f"peak memory: this process (client{' and scheduler' if cluster else ''}) {peak_rss_mb():,.0f} MB; workers "
          + ', '.join(f'{v:,.0f} MB' for v in worker_peaks.values())
          + f"; total {peak_rss_mb() + sum(worker_peaks.values()):,.0f} MB")
