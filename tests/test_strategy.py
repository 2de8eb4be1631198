"""Tests of botcore.strategy on the real bundled candles: the rules hold over whole series, the engine's
path and the array path agree, vectorbt books the same trades, and a 72k-candle run works in one call
(benchmarks/backtest_bench.py times it)."""
import numpy as np
import pandas as pd
import pytest

from botcore.config import Settings
from botcore.core import Candle, Side, Signal
from botcore.data.candles import load_candles, open_times_ms
from botcore.strategy.params import StrategyParams
from botcore.strategy.rules import (DECISION_DT, EntryBlock, fill, new_account_state,
                                    new_position_state, run_strategy_nb, signal_codes)
from botcore.strategy.live import Strategy, StrategyState, step
from botcore.strategy.series import rsi_band_signals, run_strategy, vectorbt_order_func

SLIP, FEE = 0.0005, 0.001
EVERY_RULE = dict(trailing_activation_pct=1, trailing_distance_pct=1.5, max_holding_candles=48, reverse_on_opposite=True,
                  daily_loss_limit_pct=2, cooldown_losses=2, cooldown_minutes=240, position_size_pct=50)


@pytest.fixture(scope='module')
def eth_sig(eth_5m): return rsi_band_signals(eth_5m)

@pytest.fixture(scope='module')
def btc_2021_22(btc_1h): return btc_1h.loc['2021':'2022']

@pytest.fixture(scope='module')
def btc_sig(btc_2021_22): return rsi_band_signals(btc_2021_22)


def fills_inside_candles(trades, candles):
    "Entry fills are the entry candle's close, exit fills lie in the exit candle's range (slippage removed)."
    sign = np.where(trades.side == 'BUY', 1, -1)
    entry, exit_ = trades.entry_price / (1 + sign * SLIP), trades.exit_price / (1 - sign * SLIP)
    np.testing.assert_allclose(entry, candles.close.to_numpy()[trades.entry_idx], rtol=1e-12)
    lo, hi = candles.low.to_numpy()[trades.exit_idx], candles.high.to_numpy()[trades.exit_idx]
    assert ((exit_ >= lo * (1 - 1e-12)) & (exit_ <= hi * (1 + 1e-12))).all()


@pytest.mark.parametrize('params', [{}, EVERY_RULE, dict(market='spot', risk_pct=1, max_position_value=3_000)])
def test_fills_are_real_prices(eth_5m, eth_sig, params):
    trades, _ = run_strategy(eth_5m, eth_sig, StrategyParams(**params))
    assert len(trades) > 100
    fills_inside_candles(trades, eth_5m)
    np.testing.assert_allclose(trades.fees, (trades.entry_price + trades.exit_price) * trades.qty * FEE, rtol=1e-9)


def test_the_stop_wins(btc_2021_22, btc_sig):
    "No take-profit exit happened on a candle that also reached the stop."
    trades, _ = run_strategy(btc_2021_22, btc_sig, StrategyParams(stop_loss_pct=1, take_profit_pct=1))
    tp = trades[trades.reason == 'take_profit']
    long = tp.side == 'BUY'
    stop = tp.entry_price * np.where(long, 0.99, 1.01)
    adverse = np.where(long, btc_2021_22.low.to_numpy()[tp.exit_idx], btc_2021_22.high.to_numpy()[tp.exit_idx])
    assert len(tp) > 50 and (np.where(long, adverse > stop, adverse < stop)).all()
    assert (trades.reason == 'stop_loss').sum() > 50


def test_spot_is_long_only_and_holding_is_limited(eth_5m, eth_sig):
    trades, _ = run_strategy(eth_5m, eth_sig, StrategyParams(market='spot', max_holding_candles=6, warmup_candles=500))
    assert (trades.side == 'BUY').all() and (trades.exit_idx - trades.entry_idx <= 6).all()
    assert trades.entry_idx.min() >= 500 and 'max_holding' in set(trades.reason)


def test_cooldown_and_daily_limit_hold_over_a_series(eth_5m, eth_sig):
    p = StrategyParams(cooldown_losses=2, cooldown_minutes=120, daily_loss_limit_pct=0.5, position_size_pct=100)
    trades, _ = run_strategy(eth_5m, eth_sig, p)
    ts = open_times_ms(eth_5m)
    entry_ts, exit_ts = ts[trades.entry_idx], ts[trades.exit_idx]
    losses = cooldowns = 0
    for k in range(len(trades) - 1):
        losses = losses + 1 if trades.pnl.iat[k] < 0 else 0
        if losses == 2:
            assert entry_ts[k + 1] >= exit_ts[k] + 120 * 60_000
            losses = 0; cooldowns += 1
    assert cooldowns > 10
    DAY = 86_400_000
    equity = 10_000 + trades.pnl.cumsum().to_numpy()                   # realised, after each exit
    halted = 0
    for k, (e, t) in enumerate(zip(equity, exit_ts)):
        day_start = 10_000 + trades.pnl[exit_ts < t // DAY * DAY].sum()   # realised at the day's first candle
        if e <= day_start * 0.995: halted += 1; assert not ((entry_ts > t) & (entry_ts // DAY == t // DAY)).any()
    assert halted > 10


def test_engine_path_equals_array_path(btc_2021_22, btc_sig):
    p = StrategyParams(**EVERY_RULE)
    trades, curve = run_strategy(btc_2021_22, btc_sig, p)
    d = Strategy(p).replay(btc_2021_22, btc_sig)
    closes = d[d.action == 'close']
    assert len(trades) > 100 and trades.exit_idx.tolist() == closes.row.tolist()
    np.testing.assert_allclose(trades.pnl, closes.pnl, rtol=1e-12)
    assert trades.reason.tolist() == closes.reason.tolist()
    again, curve2 = run_strategy(btc_2021_22, btc_sig, p)
    pd.testing.assert_frame_equal(trades, again); pd.testing.assert_series_equal(curve, curve2)


def test_step_is_pure(btc_2021_22):
    c = btc_2021_22.iloc[0]
    candle = Candle(int(open_times_ms(btc_2021_22)[0]), c.open, c.high, c.low, c.close, c.volume)
    sig = Signal(signal='short', confidence=90, probability=0.1, timestamp=btc_2021_22.index[0], model_type='lstm', symbol='BTCUSDT', timeframe='1h')
    s0 = StrategyState(new_position_state(), new_account_state(1_000.0))
    before = s0.position.tobytes() + s0.account.tobytes()
    (s1, d1), (s2, d2) = step(s0, candle, sig, StrategyParams()), step(s0, candle, sig, StrategyParams())
    assert d1 == d2 and d1[0].side == Side.SELL and s1.position.tobytes() == s2.position.tobytes()
    assert s0.position.tobytes() + s0.account.tobytes() == before


def test_engine_sees_blocks_and_levels(btc_2021_22):
    c = btc_2021_22.iloc[:2]
    s = Strategy(StrategyParams(warmup_candles=1))
    sig = pd.DataFrame({'signal': ['long', 'long'], 'confidence': [80.0, 80.0]}, index=c.index)
    d = s.replay(c.iloc[:1], sig)
    assert d.empty and s.blocked == EntryBlock.WARMING_UP
    d = s.replay(c.iloc[1:], sig)
    assert d.action.tolist() == ['open'] and s.position.side == Side.BUY
    assert s.levels['stop'] == pytest.approx(d.price.iat[0] * 0.98)


def test_fill_is_vectorbts_arithmetic():
    price, fee = fill(50_000.0, 'BUY', 0.2)
    assert price == pytest.approx(50_000 * (1 + SLIP)) and fee == pytest.approx(0.2 * price * FEE)
    assert fill(50_000.0, 'SELL', 0.2)[0] == pytest.approx(50_000 * (1 - SLIP))


def test_params_from_settings():
    assert StrategyParams.from_settings(Settings()) == StrategyParams()
    p = StrategyParams.from_settings({'stop_loss_pct': 0, 'market': 'spot', 'confidence_threshold': 0.7})
    assert (p.stop_loss_pct, p.allow_short, p.confidence_threshold) == (None, False, 0.7)
    with pytest.raises(ValueError, match='risk_pct=2.0: risk-based sizing needs stop_loss_pct'):
        StrategyParams(risk_pct=2, stop_loss_pct=0)


def test_72k_candles_in_one_run():
    "The array runner over the whole BTCUSDT 5m series with every rule on (timed by benchmarks/backtest_bench.py)."
    b5 = load_candles('BTCUSDT', '5m')
    s5 = rsi_band_signals(b5)
    args = (*(b5[k].to_numpy() for k in ('open', 'high', 'low', 'close')), open_times_ms(b5), signal_codes(s5.signal),
            s5.confidence.to_numpy(), StrategyParams(**EVERY_RULE).nb(), 10_000.0)
    trades, curve = run_strategy_nb(*args)
    assert len(b5) > 70_000 and len(curve) == len(b5) and np.isfinite(curve).all()
    assert len(trades) > 100 and (trades['entry_idx'] < trades['exit_idx']).all()


@pytest.mark.slow
def test_vectorbt_books_the_same_trades(eth_5m, eth_sig):
    import vectorbt as vbt
    df, sig = eth_5m.iloc[:20_000], eth_sig.iloc[:20_000]
    p = StrategyParams(**EVERY_RULE)
    trades, curve = run_strategy(df, sig, p)
    col = lambda a: np.asarray(a)[:, None]
    pos, acct, out = new_position_state(), new_account_state(10_000.0), np.empty(2, DECISION_DT)
    pf = vbt.Portfolio.from_order_func(df.close.tz_convert(None), vectorbt_order_func(), pos, acct, p.nb(), col(df.open), col(df.high),
                                       col(df.low), open_times_ms(df), col(signal_codes(sig.signal)), col(sig.confidence), out,
                                       init_cash=10_000.0, freq='5min')
    vt = pf.trades.records
    closed = vt[vt.status == 1]
    assert closed.exit_idx.tolist() == trades.exit_idx.tolist() and closed.entry_idx.tolist() == trades.entry_idx.tolist()
    np.testing.assert_allclose(closed.pnl, trades.pnl, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pf.value().to_numpy(), curve.to_numpy(), rtol=1e-9)
