"""One definition of every performance metric: the win rate, profit factor, expectancy, Sharpe and Sortino ratios and
maximum drawdown of one real backtest (the bundled BTCUSDT 1h series, the RSI/MACD rule) are the same number through every path that
reports them: `botcore.research.metrics`, the backtest's statistics table, the sweep's row, the engine's
`/api/performance` (`performance`), and vectorbt's own `stats()`."""
import math

import numpy as np
import pytest

from botcore.data.candles import load_candles
from botcore.engine.status import performance
from botcore.research.backtest import backtest
from botcore.research.stats import YEAR_FREQ, stats_table
from botcore.research.metrics import equity_metrics, periods_per_year, trade_metrics
from botcore.research.signals import rsi_macd_signals
from botcore.research.sweep import run_params
from botcore.strategy.params import StrategyParams

HOUR_MS, CASH = 3_600_000, 10_000.0


@pytest.fixture(scope='module')
def run():
    "The backtest, its closed trades' PnL, its equity, and what the metrics module says of them."
    candles = load_candles('BTCUSDT', '1h')
    signals, params = rsi_macd_signals(candles), StrategyParams(position_size_pct=50)
    r = backtest(candles, signals, params, init_cash=CASH)
    closed = r.trades[r.trades.status == 'closed']
    pnl = closed.pnl.to_numpy()
    exits = (closed.exit_time.astype('int64') // 1_000_000).to_numpy()   # epoch ms, as the store keeps them
    value = r.equity.to_numpy()
    ppy = periods_per_year(HOUR_MS)
    ours = trade_metrics(pnl) | equity_metrics(value, ppy, start=CASH)
    return dict(candles=candles, signals=signals, params=params, result=r, pnl=pnl, exits=exits, value=value, ppy=ppy,
                ours=ours)


def test_the_backtest_is_real(run):
    m = run['ours']
    assert m['total_trades'] > 50 and 0 < m['win_rate'] < 1
    assert m['profit_factor'] > 0 and m['max_drawdown_pct'] > 1
    assert m['sharpe_ratio'] is not None and m['sortino_ratio'] is not None


def test_statistics_table_agrees(run):
    st, m = stats_table(run['result'])['strategy'], run['ours']
    assert st['Total Closed Trades'] == m['total_trades']
    for row, key, scale in (('Win Rate [%]', 'win_rate', 100), ('Profit Factor', 'profit_factor', 1),
                            ('Expectancy', 'expectancy', 1), ('Sharpe Ratio', 'sharpe_ratio', 1),
                            ('Sortino Ratio', 'sortino_ratio', 1), ('Max Drawdown [%]', 'max_drawdown_pct', 1)):
        assert st[row] == pytest.approx(m[key] * scale, rel=1e-12), row


def test_sweep_row_agrees(run):
    row, m = run_params(run['candles'], run['signals'], [run['params']], init_cash=CASH).iloc[0], run['ours']
    assert row.win_rate_pct == pytest.approx(m['win_rate'] * 100, rel=1e-12)
    for col in ('profit_factor', 'sharpe_ratio', 'sortino_ratio', 'max_drawdown_pct'):
        assert row[col] == pytest.approx(m[col], rel=1e-9), col


def test_engine_performance_agrees(run):
    "The engine's trades are dicts with 'pnl' and 'exit_ms', its equity points dicts with 'equity' (the initial cash first)."
    trades = [dict(pnl=float(p), exit_ms=int(t)) for p, t in zip(run['pnl'], run['exits'])]
    equity = [dict(equity=float(v)) for v in np.r_[CASH, run['value']]]
    got, m = performance(trades, equity, run['ppy']), run['ours']
    for key in ('total_trades', 'win_rate', 'profit_factor', 'expectancy', 'total_pnl', 'average_pnl', 'best_trade',
                'worst_trade', 'sharpe_ratio', 'sortino_ratio', 'max_drawdown_pct'):
        if key in got: assert got[key] == pytest.approx(m[key], rel=1e-9), key
    assert {'win_rate', 'profit_factor', 'sharpe_ratio', 'max_drawdown_pct'} <= set(got)
    # the daily PnL bars add up to the total, a day for each UTC date that closed a trade
    days = got['daily_pnl']
    assert sum(d['trades'] for d in days) == m['total_trades'] and sum(d['pnl'] for d in days) == pytest.approx(m['total_pnl'])
    dates = run['result'].trades.exit_time[run['result'].trades.status == 'closed'].dt.strftime('%Y-%m-%d')
    assert [d['date'] for d in days] == sorted(set(dates))


def test_vectorbt_agrees(run):
    "vectorbt's own figures of the same portfolio, annualised over the same 365-day year."
    pf, m = run['result'].portfolio, run['ours']
    closed, ra = pf.trades.closed, pf.returns_acc(year_freq=YEAR_FREQ)
    assert m['win_rate'] == pytest.approx(closed.win_rate(), rel=1e-12)
    assert m['profit_factor'] == pytest.approx(closed.profit_factor(), rel=1e-9)
    assert m['expectancy'] == pytest.approx(closed.expectancy(), rel=1e-9)
    assert m['sharpe_ratio'] == pytest.approx(ra.sharpe_ratio(), rel=1e-9)
    assert m['sortino_ratio'] == pytest.approx(ra.sortino_ratio(), rel=1e-9)
    assert m['max_drawdown_pct'] == pytest.approx(-pf.drawdowns.max_drawdown() * 100, rel=1e-9)


def test_undefined_figures_are_none():
    "No trade, no losing trade, a flat equity: figures that do not exist are None, ready for JSON."
    assert trade_metrics([])['win_rate'] is None and trade_metrics([5.0, 1.0])['profit_factor'] is None
    flat = equity_metrics([CASH] * 5, 8760)
    assert flat['sharpe_ratio'] is None and flat['max_drawdown_pct'] == 0.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in trade_metrics([]).values())
