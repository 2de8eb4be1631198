"""Tests of botcore.research.sweep on real candles and real Dask clusters: a LocalCluster the sweep starts and closes, a
LocalCluster given by its address, and a `dask scheduler` + `dask worker` started as subprocesses on loopback.
Every row is the backtest of its parameters (equal to `botcore.research.backtest.backtest`), rows come best first, and a
grid the strategy cannot run is refused naming the key."""
import os, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from distributed import Client, LocalCluster

from botcore.research.backtest import backtest
from botcore.research.stats import portfolio_stats
from botcore.research.signals import rsi_macd_signals
from botcore.data.candles import load_candles
from botcore.strategy.params import StrategyParams
from botcore.research.grid import GridError, param_grid
from botcore.research.sweep import SWEEP_STATS, market_candles, sweep
from support import botcore_script, free_port

GRID = {'stop_loss_pct': [1, 3], 'take_profit_pct': [2, 6]}
SLICE = dict(start='2024-01-01', end='2024-02-29 23:00')
DASK = Path(sys.executable).with_name('dask')


def backtest_stats(symbol: str, timeframe: str, params: StrategyParams) -> pd.Series:
    "The statistics `backtest` + `portfolio_stats` give for one combination, under the sweep's column names."
    c = market_candles(symbol, timeframe, **SLICE)
    st = portfolio_stats(backtest(c, rsi_macd_signals(c), params).portfolio)
    return pd.Series({k: st[title] for k, title in SWEEP_STATS.items()}, dtype=float)


@pytest.fixture(scope='module')
def cluster():
    "A LocalCluster of two worker processes, shared by the tests that pass its address."
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=':0', host='127.0.0.1') as c:
        yield c


@pytest.fixture(scope='module')
def swept(cluster) -> pd.DataFrame:
    return sweep(GRID, ['BTCUSDT', 'ETHUSDT'], '1h', scheduler=cluster.scheduler_address, progress=False, **SLICE)


def test_rows_are_the_backtests_of_their_parameters(swept):
    assert len(swept) == 8 and swept.attrs['backtests'] == 8
    assert list(swept.columns) == ['combo', 'stop_loss_pct', 'take_profit_pct', 'symbol', 'timeframe', *SWEEP_STATS]
    assert sorted(map(tuple, swept[['symbol', 'stop_loss_pct', 'take_profit_pct']].values.tolist())) == sorted(
        (s, a, b) for s in ('BTCUSDT', 'ETHUSDT') for a in (1.0, 3.0) for b in (2.0, 6.0))
    for _, row in swept.iterrows():
        want = backtest_stats(row.symbol, row.timeframe, StrategyParams(stop_loss_pct=row.stop_loss_pct, take_profit_pct=row.take_profit_pct))
        np.testing.assert_allclose(row[list(SWEEP_STATS)].to_numpy(float), want.to_numpy(), rtol=1e-9, err_msg=f'{row.to_dict()}')
    assert (swept.trades > 5).all()


def test_best_first(swept, cluster):
    assert swept.sharpe_ratio.is_monotonic_decreasing and swept.index.tolist() == list(range(8))
    by_return = sweep(GRID, 'BTCUSDT', '1h', scheduler=cluster.scheduler_address, metric='total_return', progress=False, **SLICE)
    assert by_return.total_return_pct.is_monotonic_decreasing
    btc = swept[swept.symbol == 'BTCUSDT'].sort_values('combo').reset_index(drop=True)
    pd.testing.assert_frame_equal(by_return.sort_values('combo').reset_index(drop=True), btc)
    by_drawdown = sweep(GRID, 'BTCUSDT', '1h', scheduler=cluster.scheduler_address, metric='max_drawdown', progress=False, **SLICE)
    assert by_drawdown.max_drawdown_pct.is_monotonic_increasing   # the smallest drawdown is the best


def test_one_combination_with_every_rule_equals_backtest(cluster):
    "One parameter set with trailing stops, holding limit, reversals and cool-downs: the same statistics as backtest()."
    base = StrategyParams(trailing_activation_pct=1, trailing_distance_pct=1.5, max_holding_candles=48, reverse_on_opposite=True,
                          daily_loss_limit_pct=2, cooldown_losses=2, cooldown_minutes=240)
    res = sweep({'position_size_pct': [50]}, 'BTCUSDT', '1h', scheduler=cluster.scheduler_address, base=base, progress=False, **SLICE)
    assert len(res) == 1
    want = backtest_stats('BTCUSDT', '1h', base.model_copy(update=dict(position_size_pct=50)))
    np.testing.assert_allclose(res.iloc[0][list(SWEEP_STATS)].to_numpy(float), want.to_numpy(), rtol=1e-9)
    assert res.attrs['base']['trailing_distance_pct'] == 1.5 and res.iloc[0].trades > 10


def test_default_local_cluster_is_closed_afterwards(swept):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    res = sweep(GRID, 'BTCUSDT', '1h', n_workers=2, progress=False, **SLICE)
    pd.testing.assert_frame_equal(res, swept[swept.symbol == 'BTCUSDT'].reset_index(drop=True))
    deadline = time.monotonic() + 20
    while (left := [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
                    and p.status() != psutil.STATUS_ZOMBIE]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f'worker processes left running: {left}'


@pytest.fixture(scope='module')
def dask_processes(tmp_path_factory):
    "`dask scheduler` and one `dask worker` as subprocesses on loopback free ports; the scheduler's address."
    log_dir = tmp_path_factory.mktemp('dask')
    port = free_port()
    address = f'tcp://127.0.0.1:{port}'
    env = {k: v for k, v in os.environ.items() if not k.startswith('BOTCORE_')} | {'BOTCORE_DATA_DIR': str(log_dir)}
    procs = [subprocess.Popen([str(DASK), 'scheduler', '--host', '127.0.0.1', '--port', str(port), '--no-dashboard'],
                              stdout=open(log_dir / 'scheduler.log', 'wb'), stderr=subprocess.STDOUT, env=env, cwd=log_dir)]
    procs.append(subprocess.Popen([str(DASK), 'worker', address, '--host', '127.0.0.1', '--nthreads', '1', '--nworkers', '1',
                                   '--no-dashboard', '--local-directory', str(log_dir)],
                                  stdout=open(log_dir / 'worker.log', 'wb'), stderr=subprocess.STDOUT, env=env, cwd=log_dir))
    try:
        with Client(address, timeout=60) as c: c.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            try: p.wait(30)
            except subprocess.TimeoutExpired: p.kill(); p.wait()


def test_sweep_on_a_scheduler_given_by_address(dask_processes, swept):
    res = sweep(GRID, ['BTCUSDT', 'ETHUSDT'], '1h', scheduler=dask_processes, progress=False, **SLICE)
    pd.testing.assert_frame_equal(res, swept)
    with Client(dask_processes, timeout=30) as c: assert len(c.scheduler_info()['workers']) == 1   # still up: not ours to close


def test_botcore_sweep_command_on_that_scheduler(dask_processes, swept, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('BOTCORE_')} | {'BOTCORE_DATA_DIR': str(tmp_path / 'data')}
    r = subprocess.run([str(botcore_script()), 'sweep', '--grid', 'stop_loss_pct=1,3;take_profit_pct=2,6', '--symbols', 'BTCUSDT,ETHUSDT',
                        '--timeframes', '1h', '--start', SLICE['start'], '--end', SLICE['end'], '--scheduler', dask_processes,
                        '--top', '3', '--out', str(tmp_path / 'res.csv'), '--no-progress'],
                       env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '8 backtests' in r.stdout and 'best 3 by sharpe_ratio' in r.stdout
    rows = pd.read_csv(tmp_path / 'res.csv')
    assert len(rows) == 8
    # the command starts from the settings' trading rules, which by default are StrategyParams' defaults
    np.testing.assert_allclose(rows.sharpe_ratio, swept.sharpe_ratio, rtol=1e-9)
    best = rows.iloc[0]
    assert f"{best.sharpe_ratio:.4f}" in r.stdout.splitlines()[2]


def test_a_grid_the_strategy_cannot_run_is_refused_before_any_work():
    with pytest.raises(GridError, match='stop_los_pct: not a strategy parameter'): sweep({'stop_los_pct': [1]}, progress=False)
    with pytest.raises(GridError, match="position_size_pct: 150 refused"): sweep({'position_size_pct': [10, 150]}, progress=False)
    with pytest.raises(ValueError, match="signals='rsi'"): sweep(GRID, signals='rsi', progress=False)
    with pytest.raises(ValueError, match='no bundled candles for DOGEUSDT 1h'): sweep(GRID, symbols='DOGEUSDT', progress=False)
    assert len(param_grid({'stop_loss_pct': [1, 2, 3], 'market': ['spot', 'futures']})) == 6


def test_model_signals_from_the_registry(cluster, tmp_path):
    "signals='model:VERSION': the model is scored on a worker over the swept candles; rows equal backtest() with its signals."
    from botcore.research.signals import model_signals
    from botcore.model.registry import ModelRegistry
    from botcore.model.training import TrainConfig, train_model
    model = train_model(load_candles('BTCUSDT', '1h').loc[:'2023'].iloc[-1500:], TrainConfig(epochs=1, hidden_size=8, window=20),
                        'BTCUSDT', '1h', progress=False)
    ModelRegistry(tmp_path).promote(model, force=True)   # a tiny model: the sweep's path
    base = StrategyParams(confidence_threshold=0.5)
    res = sweep(GRID, 'BTCUSDT', '1h', signals=f'model:{model.version}', scheduler=cluster.scheduler_address, base=base, progress=False,
                model_dir=tmp_path, long_threshold=0.52, short_threshold=0.48, **SLICE)
    current = sweep(GRID, 'BTCUSDT', '1h', signals='model', scheduler=cluster.scheduler_address, base=base, progress=False,
                    model_dir=tmp_path, long_threshold=0.52, short_threshold=0.48, **SLICE)
    pd.testing.assert_frame_equal(res, current)
    c = market_candles('BTCUSDT', '1h', **SLICE)
    sig = model_signals(model, c, 0.52, 0.48)
    for _, row in res.iterrows():
        st = portfolio_stats(backtest(c, sig, base.model_copy(update=dict(stop_loss_pct=row.stop_loss_pct, take_profit_pct=row.take_profit_pct))).portfolio)
        np.testing.assert_allclose(row[list(SWEEP_STATS)].to_numpy(float), [st[t] for t in SWEEP_STATS.values()], rtol=1e-9)
    assert res.trades.min() > 0
    with pytest.raises(ValueError, match="version 'nope'"):
        sweep(GRID, signals='model:nope', model_dir=tmp_path, progress=False)
