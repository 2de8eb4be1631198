"""botcore's backtest against the same strategy in backtesting.py (https://kernc.github.io/backtesting.py/): speed and trades.

Data and signals: the real BTCUSDT-5m series (71,769 candles, 2024-01-01 .. 2024-09-06) with
`botcore.strategy.series.rsi_band_signals` (14-candle RSI: long below 30, short above 70, confidence 100 - RSI / RSI).
Rules: `StrategyParams()` (2 % stop and 4 % target from the entry fill, 10 % of realised equity per trade,
0.1 % taker fee on each fill, confidence threshold 0.65, a 3 % daily loss limit, a 60-minute cool-down after 3
losses in a row), with slippage 0 (the `exact` run) and 0.05 % (the `default` run).

How backtesting.py is set up to follow the same rules, and what it cannot follow:
- Fills at the signal candle's close: `trade_on_close=True` (its default is the next candle's open). The order
  is placed in `next()` at candle i and filled when candle i+1 is processed, at candle i's close, booked on bar i.
- Stops and targets: `buy(sl=..., tp=...)` with the levels botcore sets (2 % / 4 % from the entry fill). Like
  botcore they are checked from the candle after the entry, a gap through a level fills at the open, and when
  both are inside one candle the stop wins (its stop order sits ahead of the target in the queue).
- Fees: `commission=taker_fee`, charged on entry and exit as a fraction of the fill value, as botcore does.
- Slippage: backtesting.py has only `spread`, applied to the entry fill (`price * (1 +- spread)`); exits fill
  at the unadjusted price. botcore moves both fills by `slippage`. So with slippage the two disagree by
  `slippage` on every exit; the `exact` run sets both to 0.
- Units: backtesting.py trades whole units; `FractionalBacktest` trades units of 1e-8 BTC (one satoshi), and
  the size is rounded down to a whole satoshi (botcore's size is unrounded): a difference below 1e-8 BTC.
- Sizing, the confidence threshold, no re-entry on the candle of an exit, the daily loss limit and the
  cool-down are not backtesting.py features; `BotcoreRules.next()` implements them in Python from the same
  `StrategyParams`, reading realised equity from backtesting.py's closed trades.
- An open trade at the end: both leave it open (`finalize_trades=False`); only closed trades are compared.

Measured: backtesting.py's `Backtest.run` (its loop, then its statistics) against botcore's warm `backtest`
(best of 5 against backtesting.py's best of 3, each timing from a collected heap; the strategy's orders decided and booked by vectorbt, the trades tabled; buy-and-hold is left to
first use) and against `backtest` + `stats_table` (buy-and-hold simulated and the statistics of both, the
closer match to what `run` does); the first call in the process is reported too. Then the closed trades side by
side, matched on the entry candle: count, exit candle, side, prices, size, PnL; trades found in one list only are
counted, and where the lists first part the PnL of the trades before shows why (with slippage, a trade that
botcore books as a small loss is a small win in backtesting.py, which skips the exit slippage, so the losing
streak, and with it the cool-down, differs from there on).

Run: .venv/bin/python benchmarks/peer_backtesting_py.py
"""
import gc, time
import warnings

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest
from fastcore.script import call_parse

from botcore.research.backtest import backtest
from botcore.research.signals import signal_frame
from botcore.data.candles import load_candles, open_times_ms
from botcore.strategy.params import StrategyParams
from botcore.strategy.series import rsi_band_signals

DAY_MS, UNIT = 86_400_000, 1e-8


class BotcoreRules(Strategy):
    "botcore's default rules in backtesting.py: signals at the close, stop and target, sizing, daily loss limit, cool-down."
    side = ts = None           # per candle: the signal's side after the confidence threshold (+1/-1/0); open time in ms
    params: StrategyParams = None

    def init(self):
        self.seen, self.realised = 0, self.equity
        self.day, self.day_start, self.streak, self.halted_until, self.cooldown_until = -1, self.equity, 0, -1, -1

    def book(self, trade):
        "The account rules on a closed trade: realised equity, loss streak and cool-down, daily loss limit."
        p, exit_ts = self.params, self.ts[trade.exit_bar]
        self.realised += trade.pl
        self.streak = self.streak + 1 if trade.pl < 0 else 0
        if p.cooldown_losses and self.streak >= p.cooldown_losses:
            self.cooldown_until, self.streak = exit_ts + p.cooldown_minutes * 60_000, 0
        if p.daily_loss_limit_pct and self.realised <= self.day_start * (1 - p.daily_loss_limit_pct / 100):
            self.halted_until = (exit_ts // DAY_MS + 1) * DAY_MS

    def next(self):
        i, p = len(self.data) - 1, self.params
        closed = self.closed_trades[self.seen:]
        self.seen += len(closed)
        for t in closed:                                   # a close ordered at the last candle's signal
            if t.exit_bar < i: self.book(t)
        if self.ts[i] // DAY_MS != self.day: self.day, self.day_start = self.ts[i] // DAY_MS, self.realised
        just_closed = False
        for t in closed:                                   # stops and targets inside this candle
            if t.exit_bar == i: self.book(t); just_closed = True
        side = self.side[i]
        if self.position:
            if side == -np.sign(self.position.size): self.position.close()
            return
        if (side == 0 or just_closed or (side < 0 and not p.allow_short) or i < p.warmup_candles or self.ts[i] < self.halted_until
                or self.ts[i] < self.cooldown_until or self.realised <= 0):
            return
        fill = self.data.Close[-1] * (1 + side * p.slippage)
        value = min(self.realised * p.position_size_pct / 100, p.max_position_value or np.inf, self.realised / (1 + p.taker_fee))
        size, sl, tp = int(value / fill), fill * (1 - side * p.stop_loss_pct / 100), fill * (1 + side * p.take_profit_pct / 100)
        (self.buy if side > 0 else self.sell)(size=size, sl=sl, tp=tp)


def peer_run(candles: pd.DataFrame, signals: pd.DataFrame, p: StrategyParams, cash: float = 10_000.0):
    "(seconds, trades) of backtesting.py's run of `BotcoreRules`."
    sig = signal_frame(signals, candles)
    side = np.where(sig.confidence / 100 >= p.confidence_threshold, sig.code, 0)
    data = candles.rename(columns=str.title).set_axis(candles.index.tz_convert(None))
    bt = FractionalBacktest(data, BotcoreRules, fractional_unit=UNIT, cash=cash, commission=p.taker_fee, spread=p.slippage,
                            trade_on_close=True, hedging=False, exclusive_orders=False, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t = time.perf_counter()
        stats = bt.run(side=side, ts=open_times_ms(candles), params=p)
        return time.perf_counter() - t, stats['_trades']


def first_divergence(ours: pd.DataFrame, peer: pd.DataFrame, index: pd.DatetimeIndex) -> str:
    "Where the two trade lists part, with the PnL of the trades just before (a sign flip there moves a cool-down)."
    a, b = ours.entry_idx.to_numpy(), peer.EntryBar.to_numpy()
    k = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), None)
    if k is None: return 'the trade lists never part'
    before = lambda pnl: ', '.join(f'{v:+.2f}' for v in pnl[max(k - 3, 0):k])
    return (f'first different trade: #{k}, entry {index[a[k]]} (botcore) vs {index[b[k]]} (backtesting.py); '
            f'PnL of the 3 trades before: botcore [{before(ours.pnl.to_numpy())}], backtesting.py [{before(peer.PnL.to_numpy())}]')


@call_parse
def main():
    "Speed ratio and trade-by-trade comparison of botcore and backtesting.py on BTCUSDT-5m."
    import backtesting
    from botcore.research.stats import stats_table
    candles = load_candles('BTCUSDT', '5m')
    signals = rsi_band_signals(candles)
    print(f'backtesting.py {backtesting.__version__}; {len(candles):,} BTCUSDT 5m candles, rsi_band_signals')
    for name, p in (('exact (slippage 0)', StrategyParams(slippage=0)), ('default (slippage 0.05 %)', StrategyParams())):
        first = time.perf_counter(); backtest(candles, signals, p); first = time.perf_counter() - first
        took, with_stats, peer_took = [], [], []
        for _ in range(10):                    # each timing starts from a collected heap, for both libraries
            gc.collect(); t = time.perf_counter(); ours = backtest(candles, signals, p); took.append(time.perf_counter() - t)
        for _ in range(10):
            gc.collect(); t = time.perf_counter(); stats_table(backtest(candles, signals, p)); with_stats.append(time.perf_counter() - t)
        for _ in range(3):
            gc.collect(); s, peer = peer_run(candles, signals, p); peer_took.append(s)
        peer_s, ours_s, ours_st = min(peer_took), min(took), min(with_stats)
        print(f'\n== {name}')
        print(f'time: backtesting.py run {peer_s:.2f} s; botcore backtest {ours_s * 1e3:.0f} ms warm -> {peer_s / ours_s:.0f}x faster '
              f'(with stats_table {ours_st * 1e3:.0f} ms -> {peer_s / ours_st:.0f}x; first call in the process {first:.2f} s)')
        print(f'backtest + stats_table against run (its statistics included): {peer_s / ours_st:.0f}x faster, '
              f'goal >= 50x: {"met" if peer_s / ours_st >= 50 else "not met"}')
        done = ours.trades[ours.trades.status == 'closed'].reset_index(drop=True)
        peer = peer.assign(peer_side=np.where(peer.Size > 0, 'BUY', 'SELL'))
        print(f'closed trades: botcore {len(done):,}, backtesting.py {len(peer):,}')
        a = done.set_index('entry_idx')[['exit_idx', 'side', 'size', 'entry_price', 'exit_price', 'pnl', 'exit_reason']]
        b = peer.set_index('EntryBar')[['ExitBar', 'peer_side', 'Size', 'EntryPrice', 'ExitPrice', 'PnL']]
        m = a.join(b, how='inner')
        same = m[(m.exit_idx == m.ExitBar) & (m.side == m.peer_side)]
        print(f'same entry candle: {len(m):,}; and same exit candle and side: {len(same):,} '
              f'({len(same) / max(len(done), len(peer)) * 100:.2f} % of the larger count)')
        rel = lambda x, y: (np.abs(x - y) / np.abs(y)).max()
        print(f'on those: max relative difference of entry price {rel(same.EntryPrice, same.entry_price):.1e}, exit price '
              f'{rel(same.ExitPrice, same.exit_price):.1e}, size {rel(same.Size.abs(), same["size"]):.1e}; PnL difference per trade '
              f'max {np.abs(same.PnL - same.pnl).max():.4f}, mean {(same.PnL - same.pnl).mean():+.4f}; '
              f'total PnL of all closed trades: botcore {done.pnl.sum():,.2f}, backtesting.py {peer.PnL.sum():,.2f}')
        only_ours, only_peer = a.index.difference(b.index), b.index.difference(a.index)
        print(f'differences: {len(only_ours)} trades only in botcore, {len(only_peer)} only in backtesting.py, '
              f'{len(m) - len(same)} with another exit candle or side')
        if len(only_ours) or len(only_peer): print(first_divergence(done, peer, candles.index))
