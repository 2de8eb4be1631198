"""Speed of `botcore.research.backtest.backtest` over BTCUSDT-5m: the one-time compile, then a warm backtest.

Data: the real BTCUSDT-5m series (71,769 Binance candles, 2024-01-01 00:00 to 2024-09-06 04:40 UTC) with
precomputed signals, `botcore.strategy.series.rsi_band_signals` (14-candle RSI: long below 30, short above 70), default
`StrategyParams` (2 % stop, 4 % target, 10 % of equity per trade, 0.1 % fee, 0.05 % slippage, daily loss limit,
cool-down). The goal is a warm backtest in 0.2 s or less.

Measured:
- import: `import vectorbt` (botcore.research.backtest imports it on first use).
- JIT, one time per process: the first `backtest` call on 1,000 candles. The strategy's decision loop, vectorbt's
  `from_orders` simulator and its trade records come from numba's disk cache (run once with
  `NUMBA_CACHE_DIR=$(mktemp -d)` to see them compiled from scratch). The callback route
  (`engine='order_func'`) is timed too: there numba compiles vectorbt's simulator for the strategy's order
  function in every new process (its function arguments are compiled in, so it cannot be cached).
- warm: the best and the median of `--repeat` whole `backtest` calls on the 71,769 candles (signals checked,
  the strategy's decisions made and booked by vectorbt, trades tabled; buy-and-hold is simulated on first use),
  and where that time goes, with `from_order_func` (the callback route) beside it; and the strategy's own array
  runner `run_strategy_nb` with every rule on (trailing stop, holding limit, reversals, daily limit, cool-down),
  the figure tests/test_strategy.py no longer asserts (goal: 0.2 s or less).
- statistics: `stats_table` (buy-and-hold simulated, vectorbt's `stats()` of both portfolios): its first call
  (more compiling), then warm on fresh results (vectorbt caches a portfolio's statistics).

Run: .venv/bin/python benchmarks/backtest_bench.py [--repeat 7]
"""
import time

from fastcore.script import call_parse

from botcore.data.candles import load_candles, open_times_ms
from botcore.strategy.params import StrategyParams
from botcore.strategy.rules import run_strategy_nb
from botcore.strategy.series import rsi_band_signals


def timed(f, *args, **kwargs):
    "(seconds, result) of one call."
    t = time.perf_counter()
    out = f(*args, **kwargs)
    return time.perf_counter() - t, out


def best_and_median(f, repeat: int) -> tuple[float, float]:
    "Best and median seconds of `repeat` calls of `f`."
    times = sorted(timed(f)[0] for _ in range(repeat))
    return times[0], times[len(times) // 2]


@call_parse
def main(repeat: int = 7):  # warm calls timed; the best and the median are reported
    "Time a backtest of the strategy over BTCUSDT-5m, after its one-time compile."
    took, _ = timed(__import__, 'vectorbt')
    print(f'import vectorbt: {took:.2f} s')
    from botcore.research.backtest import backtest, buy_and_hold, decide_orders_nb, simulate, trades_table
    from botcore.research.stats import stats_table
    from botcore.research.signals import signal_frame
    candles = load_candles('BTCUSDT', '5m')
    signals = rsi_band_signals(candles)
    p = StrategyParams()
    print(f'candles: {len(candles):,} BTCUSDT 5m, {candles.index[0]} .. {candles.index[-1]}; '
          f'signals: {(signals.signal != "neutral").sum():,} long/short (rsi_band_signals)')

    took, _ = timed(backtest, candles.iloc[:1_000], signals.iloc[:1_000], p)
    print(f'JIT (first backtest in this process, 1,000 candles): {took:.2f} s')

    best, median = best_and_median(lambda: backtest(candles, signals, p), repeat)
    r = backtest(candles, signals, p)
    print(f'warm backtest: best {best * 1e3:.0f} ms, median {median * 1e3:.0f} ms of {repeat} '
          f'({len(candles) / best / 1e6:.2f} M candles/s), {len(r.trades):,} trades, goal <= 200 ms: {"met" if best <= 0.2 else "NOT met"}')

    sig = signal_frame(signals, candles)
    code, conf = sig.code.to_numpy(), sig.confidence.to_numpy()
    _, (pf, reasons) = timed(simulate, candles, code, conf, p, 10_000.0, '5min')
    took, _ = timed(simulate, candles.iloc[:1_000], code[:1_000], conf[:1_000], p, 10_000.0, '5min', 'order_func')
    print(f'JIT of the callback route (engine="order_func"), first call: {took:.2f} s')
    arrays = (*(candles[k].to_numpy() for k in ('open', 'high', 'low', 'close')), open_times_ms(candles), code, conf, p.nb(), 10_000.0)
    parts = {'signal_frame': lambda: signal_frame(signals, candles),
             'decide_orders_nb (the strategy\'s decisions alone)': lambda: decide_orders_nb(*arrays),
             'simulate (decide_orders_nb + from_orders)': lambda: simulate(candles, code, conf, p, 10_000.0, '5min'),
             'simulate, callback route (from_order_func)': lambda: simulate(candles, code, conf, p, 10_000.0, '5min', 'order_func'),
             'buy_and_hold (portfolio_from_orders), on first use': lambda: buy_and_hold(candles, p, 10_000.0, '5min'),
             'trades_table': lambda: trades_table(pf, reasons, candles.index)}
    for name, f in parts.items():
        print(f'  {name}: best {best_and_median(f, repeat)[0] * 1e3:.1f} ms')
    every_rule = StrategyParams(trailing_activation_pct=1, trailing_distance_pct=1.5, max_holding_candles=48,
                                reverse_on_opposite=True, daily_loss_limit_pct=2, cooldown_losses=2,
                                cooldown_minutes=240, position_size_pct=50)
    rule_arrays = (*arrays[:7], every_rule.nb(), 10_000.0)
    run_strategy_nb(*rule_arrays)                                           # compile, or load from numba's cache
    best, median = best_and_median(lambda: run_strategy_nb(*rule_arrays), repeat)
    print(f'run_strategy_nb, every rule on: best {best * 1e3:.1f} ms, median {median * 1e3:.1f} ms, '
          f'goal <= 200 ms: {"met" if best <= 0.2 else "NOT met"}')

    took, _ = timed(stats_table, r)
    best, _ = best_and_median(lambda: stats_table(backtest(candles, signals, p)), repeat)
    print(f'backtest + stats_table (buy-and-hold simulated, the statistics of both): first call {took:.2f} s '
          f'(loads the statistics kernels), warm {best * 1e3:.0f} ms')
