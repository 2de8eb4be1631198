"""Tests of botcore.research.backtest on the real bundled candles: vectorbt books the strategy's own trades, signals in
any supported form are read or refused with the offending value, statistics are vectorbt's and annualised over
365 days, later candles never change earlier trades, and walk-forward results are out of sample
(benchmarks/backtest_bench.py times it)."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from botcore.research.backtest import (BacktestResult, backtest, buy_and_hold, plot_drawdown, plot_equity, plot_trades)
from botcore.research.stats import stats_table
from botcore.research.signals import SignalError, model_signals, rsi_macd_signals, signal_frame
from botcore.research.walkforward import fold_windows, walk_forward
from botcore.data.candles import load_candles
from botcore.model.training import TrainConfig
from botcore.strategy.params import StrategyParams
from botcore.strategy.series import rsi_band_signals, run_strategy

FEE, SLIP = 0.001, 0.0005
EVERY_RULE = dict(trailing_activation_pct=1, trailing_distance_pct=1.5, max_holding_candles=48, reverse_on_opposite=True,
                  daily_loss_limit_pct=2, cooldown_losses=2, cooldown_minutes=240, position_size_pct=50)
TINY = TrainConfig(epochs=1, hidden_size=8, window=20)


@pytest.fixture(scope='module')
def eth_rules(eth_5m): return rsi_macd_signals(eth_5m)


@pytest.mark.parametrize('params', [{}, EVERY_RULE, dict(market='spot', risk_pct=1, max_position_value=3_000)])
def test_vectorbt_books_the_strategys_trades(eth_5m, params):
    "Same trades, prices, reasons and equity as the strategy's own array runner, on 72k candles."
    p, sig = StrategyParams(**params), rsi_band_signals(eth_5m)
    r = backtest(eth_5m, sig, p)
    ref, curve = run_strategy(eth_5m, sig, p)
    done = r.trades[r.trades.status == 'closed']
    assert len(done) > 100 and (r.trades.status == 'open').sum() <= 1
    assert done.entry_idx.tolist() == ref.entry_idx.tolist() and done.exit_idx.tolist() == ref.exit_idx.tolist()
    assert done.side.tolist() == ref.side.tolist() and done.exit_reason.tolist() == ref.reason.tolist()
    np.testing.assert_allclose(done.entry_price, ref.entry_price, rtol=1e-12)
    np.testing.assert_allclose(done.exit_price, ref.exit_price, rtol=1e-12)
    np.testing.assert_allclose(done.pnl, ref.pnl, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r.equity, curve, rtol=1e-9)
    np.testing.assert_allclose(done.fees, (done.entry_price + done.exit_price) * done['size'] * FEE, rtol=1e-9)
    assert (done.entry_time == eth_5m.index[done.entry_idx]).all() and (done.exit_time == eth_5m.index[done.exit_idx]).all()


def test_signals_in_every_form(btc_1h):
    c = btc_1h.iloc[-5:]
    words = pd.DataFrame({'signal': ['long', 'short', 'neutral'], 'confidence': [80.0, 70.0, 50.0]}, index=c.index[1:4])
    numbers = pd.DataFrame({'signal': [1, -1, 0], 'confidence': [80.0, 70.0, 50.0]}, index=c.index[1:4].tz_convert(None))
    for s in (words, numbers):
        f = signal_frame(s, c)
        assert f.code.tolist() == [0, 1, -1, 0, 0] and f.signal.astype(object).fillna('-').tolist() == ['-', 'long', 'short', 'neutral', '-']
        assert f.confidence.tolist() == [0.0, 80.0, 70.0, 50.0, 0.0]
    assert signal_frame(pd.Series(['long'], index=c.index[:1]), c).confidence.iloc[0] == 100.0


@pytest.mark.parametrize('signals, message', [
    (pd.DataFrame({'signal': ['long', 'up']}), "signals.signal at 2024-04-21 11:00:00+00:00: expected long, short, neutral, +1, -1 or 0 (got 'up')"),
    (pd.DataFrame({'signal': [2, 1]}), 'signals.signal at 2024-04-21 10:00:00+00:00'),
    (pd.DataFrame({'signal': ['long', 'short'], 'confidence': [65, 101]}), 'signals.confidence at 2024-04-21 11:00:00+00:00: must be in 0..100 (got 101.0)'),
    (pd.DataFrame({'signal': ['long', 'short'], 'confidence': [0.65, np.nan]}), 'signals.confidence at 2024-04-21 11:00:00+00:00: must be in 0..100 (got nan)'),
])
def test_bad_signals_are_named(btc_1h, signals, message):
    c = btc_1h.iloc[-5:]
    with pytest.raises(SignalError, match=re.escape(message)):
        signal_frame(signals.set_axis(c.index[:2]), c)


def test_signals_off_the_candles_are_refused(btc_1h):
    c = btc_1h.iloc[-5:]
    with pytest.raises(ValueError, match='signals.index at 2024-04-21 10:30:00\\+00:00: not an open time of the candles \\(1 such rows\\)'):
        signal_frame(pd.Series(['long'], index=[c.index[0] + pd.Timedelta('30min')]), c)
    with pytest.raises(ValueError, match='leverage=2.0'):
        backtest(c, pd.Series(['long'], index=c.index[:1]), StrategyParams(leverage=2, market='futures'))


def test_buy_and_hold_is_vectorbts_from_holding(btc_1h):
    import vectorbt as vbt
    c, p = btc_1h.loc['2022'], StrategyParams(taker_fee=0.002, slippage=0.001)
    held = vbt.Portfolio.from_holding(c.close.tz_convert(None), fees=p.taker_fee, slippage=p.slippage, init_cash=5_000.0, freq='1h')
    pd.testing.assert_series_equal(buy_and_hold(c, p, 5_000.0, '1h').value(), held.value())
    r = backtest(c, rsi_macd_signals(c), p, init_cash=5_000.0)
    np.testing.assert_allclose(r.curves['buy & hold'], held.value().to_numpy())


def test_stats_are_vectorbts_over_a_365_day_year(btc_1h):
    c = btc_1h.loc['2023']
    r = backtest(c, rsi_macd_signals(c))
    st = stats_table(r)
    assert list(st.columns) == ['strategy', 'buy & hold']
    for metric in ('Total Return [%]', 'Sharpe Ratio', 'Sortino Ratio', 'Max Drawdown [%]', 'Win Rate [%]', 'Profit Factor',
                   'Exposure Time [%]', 'Max Gross Exposure [%]', 'Total Trades'):
        assert metric in st.index
    rets = r.portfolio.returns()
    assert st.loc['Sharpe Ratio', 'strategy'] == pytest.approx(rets.mean() / rets.std() * math.sqrt(365 * 24))
    assert st.loc['Total Trades', 'strategy'] == len(r.trades) > 10
    done = r.trades[r.trades.status == 'closed']
    assert st.loc['Win Rate [%]', 'strategy'] == pytest.approx((done.pnl > 0).mean() * 100)
    assert st.loc['Profit Factor', 'strategy'] == pytest.approx(done.pnl[done.pnl > 0].sum() / -done.pnl[done.pnl < 0].sum())
    bh_total = c.close.iloc[-1] / (c.close.iloc[0] * (1 + SLIP)) * (1 - FEE / (1 + FEE)) - 1
    assert st.loc['Total Return [%]', 'buy & hold'] == pytest.approx(bh_total * 100, rel=1e-9)
    assert st.loc['Exposure Time [%]', 'buy & hold'] == 100.0 > st.loc['Exposure Time [%]', 'strategy']


@pytest.mark.parametrize('cut', [5_000, 33_333, 71_000])
def test_later_candles_do_not_change_earlier_trades(eth_5m, eth_rules, cut):
    p = StrategyParams(**EVERY_RULE)
    whole, part = backtest(eth_5m, eth_rules, p), backtest(eth_5m.iloc[:cut], rsi_macd_signals(eth_5m.iloc[:cut]), p)
    a, b = (t[(t.status == 'closed') & (t.exit_idx < cut)].reset_index(drop=True) for t in (part.trades, whole.trades))
    assert len(a) > 10
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_series_equal(part.equity, whole.equity.iloc[:cut])


def test_rsi_macd_signals_are_causal_and_follow_the_rule(eth_5m, eth_rules):
    from botcore.data.features import momentum_features
    pd.testing.assert_frame_equal(rsi_macd_signals(eth_5m.iloc[:10_000]), eth_rules.iloc[:10_000])
    m = momentum_features(eth_5m.close.to_numpy())
    rsi, hist = 100 * m['rsi_14'], m['macd_hist']
    longs = np.flatnonzero(eth_rules.signal == 'long')
    assert len(longs) > 100 and (rsi[longs] < 30).all() and (hist[longs] > hist[longs - 1]).all()
    shorts = np.flatnonzero(eth_rules.signal == 'short')
    assert len(shorts) > 100 and (rsi[shorts] > 70).all() and (hist[shorts] < hist[shorts - 1]).all()


def test_fold_windows():
    assert fold_windows(100, 50, 20) == [(range(10, 60), range(60, 80)), (range(30, 80), range(80, 100))]
    assert fold_windows(100, 50, 20, step=25) == [(range(5, 55), range(55, 75)), (range(30, 80), range(80, 100))]
    for args, message in (((100, 50, 20, 10), 'step=10'), ((100, 0, 20), 'train_size=0'), ((60, 50, 20), 'more than the 60 candles')):
        with pytest.raises(ValueError, match=message): fold_windows(*args)


def test_walk_forward_is_out_of_sample(btc_1h):
    c, p = btc_1h.iloc[-2_300:], StrategyParams(confidence_threshold=0.5)
    wf = walk_forward(c, 800, 400, step=500, config=TINY, params=p, long_threshold=0.52, short_threshold=0.48)
    windows = fold_windows(len(c), 800, 400, 500)
    assert len(wf.folds) == len(windows) == 3 and len(wf.models) == 3
    oos = np.concatenate([np.arange(t.start, t.stop) for _, t in windows])
    assert wf.ai.candles.index.equals(c.index[oos]) and wf.rules.candles.index.equals(c.index[oos])
    for (train, test), model, (_, row) in zip(windows, wf.models, wf.folds.iterrows()):
        assert model.meta['data']['candles'] == 800 and pd.Timestamp(model.meta['data']['first']) == c.index[train.start]
        assert pd.Timestamp(model.meta['data']['last']) == c.index[train.stop - 1] < c.index[test.start] == row.test_start
        context = model_signals(model, c.iloc[test.start - 99:test.stop]).probability.iloc[99:]   # what a live service sees
        pd.testing.assert_series_equal(wf.ai.signals.probability.loc[context.index], context)
        history = model_signals(model, c.iloc[:test.stop]).probability.iloc[test.start:]
        np.testing.assert_allclose(context, history, atol=1e-4)     # EWM indicators remember where they started, faintly
        solo = backtest(c.iloc[test.start:test.stop], rsi_macd_signals(c).iloc[test.start:test.stop], p)
        assert row.rules_return_pct == pytest.approx(solo.portfolio.total_return() * 100)
        assert row.bh_return_pct == pytest.approx(solo.benchmark.total_return() * 100)
    assert wf.ai.trades.entry_idx.size > 10
    st = stats_table(wf)
    assert list(st.columns) == ['AI strategy', 'rule strategy', 'buy & hold']
    assert st.loc['Start Value'].tolist() == [10_000.0] * 3 and st.loc['Period'].nunique() == 1


def test_a_model_is_a_signal_source(btc_1h):
    from botcore.model.training import train_model
    model = train_model(btc_1h.iloc[-3_000:-1_000], TINY, 'BTCUSDT', '1h', progress=False)
    test = btc_1h.iloc[-1_000:]
    r = backtest(test, model)
    assert r.signals.signal.iloc[:99].isna().all() and r.signals.signal.iloc[99:].notna().all()
    assert r.signals.code.tolist() == signal_frame(model_signals(model, test), test).code.tolist()


def test_plots_have_the_right_traces(btc_1h):
    c = btc_1h.loc['2024-02']
    r = backtest(c, rsi_band_signals(c))
    fig = plot_trades(r)
    names = [t.name for t in fig.data]
    assert names == ['candles', 'long entry', 'short entry', 'exit'] and len(fig.data[0].x) == len(c)
    assert len(fig.data[1].x) == (r.trades.side == 'BUY').sum() and len(fig.data[2].x) == (r.trades.side == 'SELL').sum()
    assert len(fig.data[3].x) == (r.trades.status == 'closed').sum() > 5
    week = plot_trades(r, '2024-02-05', '2024-02-11')
    assert len(week.data[0].x) == 7 * 24
    for fig in (plot_equity(r), plot_drawdown(r)):
        assert [(t.name, len(t.x), len(t.y)) for t in fig.data] == [('strategy', len(c), len(c)), ('buy & hold', len(c), len(c))]
    assert plot_drawdown(r).data[1].y.min() == pytest.approx(r.benchmark.max_drawdown() * 100)


def test_72k_candles_in_one_backtest():
    "The whole BTCUSDT 5m series in one call (benchmarks/backtest_bench.py times it against the 0.2 s goal)."
    b5 = load_candles('BTCUSDT', '5m')
    r = backtest(b5, rsi_band_signals(b5))
    assert isinstance(r, BacktestResult) and len(b5) > 70_000 and len(r.trades) > 1_000
    assert len(r.equity) == len(b5) and (r.trades.status == 'open').sum() <= 1


def test_both_simulation_routes_book_the_same_orders(eth_5m):
    "The fast route (decisions first, then `from_orders`) and vectorbt's callback route (`from_order_func`) agree."
    c = eth_5m.iloc[:20_000]
    sig, p = rsi_band_signals(c), StrategyParams(**EVERY_RULE)
    fast, slow = backtest(c, sig, p), backtest(c, sig, p, engine='order_func')
    np.testing.assert_array_equal(fast.portfolio.orders.values, slow.portfolio.orders.values)
    np.testing.assert_array_equal(fast.equity, slow.equity)
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
