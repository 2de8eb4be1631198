"""Throughput and memory of `botcore.data.features.feature_matrix` on about a million real candles.

Data: the real BTCUSDT-5m series (71,769 Binance candles, 2024-01-01 00:00 to 2024-09-06 04:40 UTC)
tiled `--copies` times (default 14) end to end, each copy shifted later by the series' whole span
(71,769 x 5 min), so the index stays an increasing, gap-free 5-minute grid: 1,004,766 candles.
Prices are not altered, so each of the 13 seams is one artificial price jump.

Measured:
- import: `import vectorbt` (botcore.data.features imports it lazily, on the first call).
- warm-up: the first `feature_matrix` call on the full data: numba loading vectorbt's compiled
  kernels from its on-disk cache or, on a cold cache, compiling them (`NUMBA_CACHE_DIR=$(mktemp -d)`
  forces a from-scratch compile), plus the computation itself.
- warm: the best (and the median) of `--repeat` further calls, as candles per second.
- small inputs: the median (and the best) of `--small-repeat` calls (default 1,000, after 100 untimed
  ones) on the last 100 and the last 300 candles of BTCUSDT-5m, the size of one AI-service request,
  where the fixed cost of a call rather than throughput is what counts.
- memory: the feature matrix's own size, the whole process's peak RSS, and the peak RSS of one
  warm call above the RSS just before it. glibc keeps freed arrays in its heap and hands them to
  the next call, which hides that call's temporaries (a warm call then seems to cost nothing). So
  the per-call figure comes from a child process started with MALLOC_MMAP_THRESHOLD_=131072, in
  which every array is its own mapping and returns to the OS when freed; there the garbage
  collector runs (vectorbt's indicator objects form reference cycles that keep arrays alive until
  a collection), the kernel's peak counter is reset (5 written to /proc/self/clear_refs, Linux)
  and one call's peak is read back as VmHWM from /proc/self/status. That is the counter behind
  `resource.getrusage(...).ru_maxrss`, which would not do here: ru_maxrss also keeps the peak
  inherited through fork and exec, i.e. this parent's RSS. Elsewhere the figure falls back to
  ru_maxrss. tracemalloc is not used: it does not see the arrays numba allocates.

Run: .venv/bin/python benchmarks/features_bench.py [--copies 14] [--repeat 5] [--small-repeat 1000]
"""
import gc, os, resource, subprocess, sys, time
from pathlib import Path

import pandas as pd
import psutil
from fastcore.script import call_parse, store_true

from botcore.data.candles import load_candles

MB = 2**20


def tiled_candles(copies: int) -> pd.DataFrame:
    "BTCUSDT-5m repeated `copies` times, each copy moved past the end of the one before."
    df = load_candles('BTCUSDT', '5m')
    span = df.index[-1] - df.index[0] + pd.Timedelta('5min')
    return pd.concat([df.set_axis(df.index + i * span) for i in range(copies)])


def peak_rss() -> int:
    "The process's peak RSS in bytes: VmHWM on Linux, else ru_maxrss (KiB on Linux, bytes on macOS)."
    status = Path('/proc/self/status')
    if status.exists():
        return next(int(l.split()[1]) for l in status.read_text().splitlines() if l.startswith('VmHWM:')) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


def reset_peak_rss() -> bool:
    "Reset the kernel's peak-RSS counter to the current RSS; False where that is not possible."
    try: Path('/proc/self/clear_refs').write_text('5')
    except OSError: return False
    return True


def time_calls(df: pd.DataFrame, repeat: int):
    "Print the import, the first call and the warm calls: times, throughput, process memory."
    proc, n = psutil.Process(), len(df)
    from botcore.data.features import feature_matrix
    rss0 = proc.memory_info().rss
    t = time.perf_counter()
    import vectorbt  # what feature_matrix's first call would import
    print(f'import vectorbt: {time.perf_counter() - t:.2f} s, RSS +{(proc.memory_info().rss - rss0) / MB:.0f} MiB')
    t = time.perf_counter()
    fm = feature_matrix(df)
    print(f'warm-up (first call: load or compile numba kernels, then compute): {time.perf_counter() - t:.2f} s')
    print(f'feature matrix: {fm.shape[0]:,} x {fm.shape[1]} float64 = {fm.memory_usage(index=False).sum() / MB:.0f} MiB')
    del fm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        feature_matrix(df)
        times.append(time.perf_counter() - t)
    best, median = min(times), sorted(times)[len(times) // 2]
    print(f'warm: best {best * 1e3:.0f} ms, median {median * 1e3:.0f} ms of {repeat} '
          f'-> {n / best / 1e6:.2f} M candles/s (median {n / median / 1e6:.2f} M)')
    print(f'process peak RSS {peak_rss() / MB:.0f} MiB ({rss0 / MB:.0f} MiB with the candles loaded, before vectorbt)')


def time_small_inputs(sizes=(100, 300), repeat: int = 1_000):
    "Print the median and best time of `feature_matrix` on the last `n` candles of BTCUSDT-5m, for each n in `sizes`."
    from botcore.data.features import feature_matrix
    df = load_candles('BTCUSDT', '5m')
    for n in sizes:
        tail = df.iloc[-n:]
        for _ in range(100): feature_matrix(tail)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            feature_matrix(tail)
            times.append(time.perf_counter() - t)
        times.sort()
        print(f'{n} candles: median {times[len(times) // 2] * 1e3:.3f} ms, best {times[0] * 1e3:.3f} ms '
              f'of {repeat} calls')


def one_call_peak(df: pd.DataFrame):
    "Print the peak RSS of one warm call above the RSS before it (run with MALLOC_MMAP_THRESHOLD_ set)."
    from botcore.data.features import feature_matrix
    feature_matrix(df)
    gc.collect()
    if not reset_peak_rss(): return print('peak RSS of one warm call: not measurable here (no /proc/self/clear_refs)')
    base = psutil.Process().memory_info().rss
    fm = feature_matrix(df)
    print(f'peak RSS of one warm call: +{(peak_rss() - base) / MB:.0f} MiB above the RSS before it, '
          f'the {fm.memory_usage(index=False).sum() / MB:.0f} MiB matrix included')


@call_parse
def main(copies: int = 14,           # copies of BTCUSDT-5m to tile (14 gives 1,004,766 candles)
         repeat: int = 5,            # timed warm calls; the best and the median are reported
         small_repeat: int = 1_000,  # timed calls on 100 and on 300 candles; the median and the best are reported
         memory: store_true = False):  # only measure one warm call's peak RSS (the child process)
    "Time `feature_matrix` on about a million candles and report candles/s and peak memory."
    df = tiled_candles(copies)
    if memory: return one_call_peak(df)
    assert df.index.is_monotonic_increasing and df.index.is_unique
    print(f'candles: {len(df):,} (BTCUSDT-5m x {copies}, {df.index[0]} .. {df.index[-1]}), '
          f'input {df.memory_usage(index=True).sum() / MB:.0f} MiB')
    time_calls(df, repeat)
    time_small_inputs(repeat=small_repeat)
    del df
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '131072'}
    subprocess.run([sys.executable, __file__, '--copies', str(copies), '--memory'], env=env, check=True)
