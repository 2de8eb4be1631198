"""`botcore backtest` runs pipelines/backtest.ipynb with papermill, keeps the executed report under runs/ and prints the
statistics table (strategy beside buy-and-hold) that equals an in-process `backtest`; `botcore backtest` and
`botcore sweep` refuse a parameter that does not exist, or a value it cannot take, with exit status 2 naming the key."""
import base64
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from botcore.research.backtest import backtest
from botcore.research.stats import stats_table
from botcore.research.signals import rsi_macd_signals
from botcore.config import read_settings
from botcore.strategy.params import StrategyParams
from botcore.research.sweep import market_candles
from support import botcore_script


def run(args: list[str], tmp_path: Path, timeout: float = 300, **env_extra: str) -> subprocess.CompletedProcess:
    "`botcore ARGS` in `tmp_path`, with its own data dir and no botcore settings from this environment."
    env = {k: v for k, v in os.environ.items() if not k.startswith('BOTCORE_')} | {'BOTCORE_DATA_DIR': str(tmp_path / 'data')} | env_extra
    return subprocess.run([str(botcore_script()), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def test_botcore_backtest_runs_the_pipeline_and_prints_the_statistics(tmp_path):
    runs = tmp_path / 'runs'
    r = run(['backtest', '--symbol', 'BTCUSDT', '--timeframe', '1h', '--signals', 'rules', '--start', '2024-01-01',
             '--end', '2024-01-31 23:00', '--stop-loss-pct', '1.5', '--params', 'take_profit_pct=3;cooldown_losses=0',
             '--runs-dir', str(runs)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['strategy', 'buy', '&', 'hold']
    for metric in ('Total Return [%]', 'Sharpe Ratio', 'Sortino Ratio', 'Max Drawdown [%]', 'Win Rate [%]', 'Total Trades'):
        assert any(l.startswith(metric) for l in lines), metric
    [report] = runs.glob('backtest-BTCUSDT-1h-*.ipynb')
    [table] = runs.glob('backtest-BTCUSDT-1h-*.stats.csv')
    assert table.name == report.with_suffix('.stats.csv').name and f'report: {report}' in r.stdout

    # the printed figures are those of the same backtest run here
    c = market_candles('BTCUSDT', '1h', '2024-01-01', '2024-01-31 23:00')
    p = StrategyParams.from_settings(read_settings(env={})).model_copy(update=dict(stop_loss_pct=1.5, take_profit_pct=3.0, cooldown_losses=0))
    want = stats_table(backtest(c, rsi_macd_signals(c), p))
    got = pd.read_csv(table, index_col=0)
    for metric in ('Total Return [%]', 'Sharpe Ratio', 'Max Drawdown [%]', 'Total Trades', 'End Value'):
        for col in ('strategy', 'buy & hold'):
            assert float(got.loc[metric, col]) == pytest.approx(float(want.loc[metric, col]), abs=1e-4), (metric, col)
    row = next(l for l in lines if l.startswith('Total Return [%]'))
    assert row.split()[-2:] == pd.read_csv(table, index_col=0, dtype=str).loc['Total Return [%]'].tolist()

    # the executed notebook is the report: parameters, trades table and the three plotly figures
    nb = json.loads(report.read_text())
    outputs = [o for c in nb['cells'] for o in c.get('outputs', [])]
    assert sum('application/vnd.plotly.v1+json' in o.get('data', {}) for o in outputs) == 3
    text = ''.join(''.join(o.get('text', '')) for o in outputs)
    assert 'stop_loss_pct=1.5' in text and 'take_profit_pct=3.0' in text and 'trades; exits:' in text


def test_botcore_backtest_with_the_promoted_model(tmp_path):
    "--signals model: the registry's promoted model scores the candles with the settings' thresholds."
    from botcore.research.signals import model_signals
    from botcore.data.candles import load_candles
    from botcore.model.registry import ModelRegistry
    from botcore.model.training import TrainConfig, train_model
    model = train_model(load_candles('BTCUSDT', '1h').loc[:'2023'].iloc[-1500:], TrainConfig(epochs=1, hidden_size=8, window=20),
                        'BTCUSDT', '1h', progress=False)
    ModelRegistry(tmp_path / 'models').promote(model, force=True)   # a tiny model: the path, not its quality
    r = run(['backtest', '--signals', 'model', '--model-dir', str(tmp_path / 'models'), '--start', '2024-01-01', '--end', '2024-01-31 23:00',
             '--confidence-threshold', '0.5', '--runs-dir', str(tmp_path / 'runs')], tmp_path,
            BOTCORE_AI__LONG_THRESHOLD='0.52', BOTCORE_AI__SHORT_THRESHOLD='0.48')
    assert r.returncode == 0, r.stderr[-3000:]
    [table] = (tmp_path / 'runs').glob('backtest-BTCUSDT-1h-*.stats.csv')
    c = market_candles('BTCUSDT', '1h', '2024-01-01', '2024-01-31 23:00')
    want = stats_table(backtest(c, model_signals(model, c, 0.52, 0.48), StrategyParams(confidence_threshold=0.5)))
    got = pd.read_csv(table, index_col=0)
    assert int(got.loc['Total Trades', 'strategy']) == want.loc['Total Trades', 'strategy'] > 0
    assert float(got.loc['Total Return [%]', 'strategy']) == pytest.approx(want.loc['Total Return [%]', 'strategy'], abs=1e-4)


def values(array) -> np.ndarray:
    "A plotly figure's array: a list, or the typed-array form plotly writes numpy arrays in ({'dtype', 'bdata'})."
    if isinstance(array, dict): return np.frombuffer(base64.b64decode(array['bdata']), dtype=array['dtype'])
    return np.asarray(array)


def test_a_backtest_of_the_whole_series_leaves_a_small_report_and_no_warnings(tmp_path):
    """`botcore backtest` as a new user first runs it: the whole BTCUSDT 1h series (58k candles). papermill warns of
    no parameter (the pipeline declares every one the command passes), the kernel's log stays quiet, and the report
    stays under 1 MB: the equity and drawdown charts are cut to at most 2,000 points a line, the deepest drawdown
    kept (it equals the statistics' max drawdown)."""
    runs = tmp_path / 'runs'
    r = run(['backtest', '--runs-dir', str(runs)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Passed unknown parameter' not in r.stderr and 'Unable to parse' not in r.stderr, r.stderr[-3000:]
    assert 'WARNING' not in r.stderr and 'Traceback' not in r.stderr, r.stderr[-3000:]
    [report] = runs.glob('backtest-BTCUSDT-1h-*.ipynb')
    assert report.stat().st_size < 1_000_000, report.stat().st_size
    nb = json.loads(report.read_text())
    figures = {f['layout']['title']['text']: f for c in nb['cells'] for o in c.get('outputs', [])
               if (f := o.get('data', {}).get('application/vnd.plotly.v1+json'))}
    assert set(figures) == {'Trades', 'Equity', 'Drawdown'}, set(figures)
    for title in ('Equity', 'Drawdown'):
        sizes = [len(values(line['y'])) for line in figures[title]['data']]
        assert len(sizes) == 2 and all(1000 < n <= 2000 for n in sizes), (title, sizes)   # strategy, buy & hold
    stats = pd.read_csv(report.with_suffix('.stats.csv'), index_col=0)
    deepest = [-values(line['y']).min() for line in figures['Drawdown']['data']]
    assert deepest == pytest.approx(stats.loc['Max Drawdown [%]', ['strategy', 'buy & hold']].astype(float).tolist(),
                                    abs=1e-3)


@pytest.mark.parametrize('args, says', [
    (['--params', 'stop_loss=2'], 'stop_loss: not a strategy parameter'),
    (['--position-size-pct', '120'], 'position_size_pct: 120.0 refused'),
    (['--params', 'market=moon'], "market: 'moon' refused"),
    (['--signals', 'model:nope'], "signals='model:nope': version 'nope' in"),
])
def test_botcore_backtest_refuses_bad_parameters(tmp_path, args, says):
    r = run(['backtest', *args, '--runs-dir', str(tmp_path / 'runs')], tmp_path, timeout=60)
    assert r.returncode == 2 and says in r.stderr, (r.returncode, r.stderr[-2000:])
    assert not (tmp_path / 'runs').exists() or not list((tmp_path / 'runs').glob('*.ipynb'))


@pytest.mark.parametrize('grid, says', [
    ('stop_loss=1,2;take_profit_pct=2,4', 'botcore sweep: stop_loss: not a strategy parameter; expected one of taker_fee'),
    ('stop_loss_pct=1,abc', "botcore sweep: stop_loss_pct: 'abc' refused"),
    ('stop_loss_pct=1;take_profit_pct=-2', 'botcore sweep: take_profit_pct: -2 refused'),
    ('stop_loss_pct', 'botcore sweep: stop_loss_pct: expected name=value'),
])
def test_botcore_sweep_refuses_a_bad_grid(tmp_path, grid, says):
    r = run(['sweep', '--grid', grid, '--no-progress'], tmp_path, timeout=60)
    assert r.returncode == 2 and says in r.stderr, (r.returncode, r.stderr[-2000:])
    assert r.stdout == ''
