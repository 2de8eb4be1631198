"""Tests of botcore.research.leaderboard and .selection on real candles: small real boards (logistic,
LightGBM and a tiny LSTM on a short BTCUSDT 1h slice), in this process and on a real LocalCluster of
two workers; the fold geometry; a pick that never looks at the held-out folds; the intervals and the
verdict on hand-made fold tables with a known answer; and `botcore evaluate` on a tiny run."""
import subprocess

import numpy as np
import pandas as pd
import pytest

from botcore.research.leaderboard import Leaderboard, fold_bounds, leaderboard
from botcore.research.selection import select, summarize, t_interval
from support import botcore_script, clean_env

SMALL = {'logistic': dict(model_type='logistic'), 'lightgbm': dict(model_type='lightgbm'),
         'lstm': dict(model_type='lstm', window=16, hidden_size=8, epochs=1)}
TRAIN, TEST, FOLDS = 900, 400, 3


@pytest.fixture(scope='module')
def series(btc_1h):
    return {('BTCUSDT', '1h'): btc_1h.iloc[-(TRAIN + FOLDS * TEST + 50):].copy()}


@pytest.fixture(scope='module')
def board(series):
    return leaderboard(SMALL, series, TRAIN, TEST, FOLDS, holdout=1, n_workers=0, progress=False)


def numbers(b: Leaderboard) -> pd.DataFrame:
    "The per-fold numbers, without the wall times."
    return b.folds.drop(columns='seconds').sort_values(
        ['candidate', 'policy', 'fold']).reset_index(drop=True)


def test_no_test_candle_is_in_a_train_window(board, series):
    candles = next(iter(series.values()))
    f = board.folds
    assert (f.train_end < f.test_start).all()
    windows = f.drop_duplicates('fold').sort_values('fold')
    assert len(windows) == FOLDS
    for w in windows.itertuples():
        train = candles.loc[w.train_start:w.train_end].index
        test = candles.loc[w.test_start:w.test_end].index
        assert (len(train), len(test)) == (TRAIN, TEST)
        assert train.intersection(test).empty and train[-1] < test[0]
    # the test windows tile the end of the series: each starts right after the one before
    assert (windows.test_start.iloc[1:].to_numpy() > windows.test_end.iloc[:-1].to_numpy()).all()
    assert windows.test_end.iloc[-1] == candles.index[-1]     # the last candles
    for tr, te in fold_bounds(len(candles), TRAIN, TEST, FOLDS):
        assert tr.stop == te.start and len(set(tr) & set(te)) == 0


def test_every_row_is_out_of_sample_and_complete(board):
    f = board.folds
    models = f[f.candidate.isin(SMALL)]
    assert set(models.policy) == {'fixed 0.6/0.4', 'adaptive k=0.5', 'adaptive k=1'}
    assert len(models) == len(SMALL) * FOLDS * 3
    assert models.coverage.eq(1.0).all()              # every test candle scored
    assert models[['auc', 'log_loss', 'brier', 'accuracy', 'ic']].notna().all().all()
    majority = f[f.candidate == 'majority']
    assert majority.auc.eq(0.5).all() and majority.ic.eq(0).all()
    assert majority.trades.eq(0).all() and majority.return_pct.eq(0).all()    # stays in cash
    assert f[f.candidate == 'buy & hold'].trades.eq(1).all()
    assert board.pick['candidate'] in SMALL


def test_held_out_folds_do_not_move_the_pick(board):
    held = board.folds.heldout
    assert held.sum() > 0 and set(board.folds[held].fold) == {FOLDS - 1}
    changed = board.folds.copy()
    rng = np.random.default_rng(1)
    for col in ('log_loss', 'auc', 'sharpe', 'return_pct'):
        changed.loc[held, col] = rng.uniform(0, 5, held.sum())
    # the pick's candidate made much better and every other one much worse on held-out folds
    pick = board.pick['candidate']
    changed.loc[held & (changed.candidate != pick), 'log_loss'] = 0.01
    assert select(changed) == select(board.folds) == board.pick


def test_an_existing_dask_scheduler_gives_the_same_numbers(board, series):
    from distributed import LocalCluster
    # a scheduler started elsewhere (here: two worker processes), reached by its address only
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        dask = leaderboard(SMALL, series, TRAIN, TEST, FOLDS, holdout=1,
                           scheduler=cluster.scheduler_address, progress=False)
        pd.testing.assert_frame_equal(numbers(dask), numbers(board))
        assert dask.pick == board.pick and dask.verdict == board.verdict


def hand_made(gain: float, n: int = 10, seed: int = 0) -> pd.DataFrame:
    "Fold rows of one series with a known answer: `model` beats the baselines by `gain`."
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        w = dict(symbol='X', timeframe='1h', fold=k)
        ll, sharpe = 0.693 + rng.normal(0, 0.004), rng.normal(0, 1)
        rows += [w | dict(candidate='majority', policy='-', log_loss=ll, auc=0.5),
                 w | dict(candidate='buy & hold', policy='-', sharpe=sharpe, return_pct=sharpe),
                 w | dict(candidate='rules', policy='-', sharpe=sharpe - 0.5, return_pct=0.0)]
        for name, g in (('logistic', 0.0), ('model', gain)):
            m = dict(log_loss=ll + 0.002 - g + rng.normal(0, 0.002), auc=0.5 + g + rng.normal(0, 0.01))
            rows += [w | dict(candidate=name, policy=p, **m, sharpe=sharpe + s + rng.normal(0, 0.3),
                              return_pct=sharpe) for p, s in (('fixed', 30 * g), ('adaptive', 0))]
    return pd.DataFrame(rows)


def test_intervals():
    m, lo, hi = t_interval([0.0, 1.0, 2.0, 3.0])
    assert m == 1.5 and hi - m == pytest.approx(3.182446 * np.std([0, 1, 2, 3], ddof=1) / 2)


def test_a_clear_winner_beats_the_baselines():
    b = Leaderboard.from_folds(hand_made(gain=0.03), holdout=2)
    t = b.table.set_index(['candidate', 'policy', 'metric'])
    assert t.loc[('model', '-', 'log_loss'), 'beats']
    assert t.loc[('model', '-', 'log_loss'), 'baseline'] == 'majority'
    assert t.loc[('model', 'fixed', 'sharpe'), 'beats']
    assert not t.loc[('logistic', '-', 'log_loss'), 'beats']       # a baseline never "beats"
    assert 'model on log loss' in b.verdict and 'Nothing here beats' not in b.verdict
    assert (b.pick['candidate'], b.pick['policy']) == ('model', 'fixed')


def test_noise_beats_nothing():
    b = Leaderboard.from_folds(hand_made(gain=0.0), holdout=2)
    assert not b.table.beats.any()
    assert 'Nothing here beats the baselines' in b.verdict
    # the pick is still made (on the selection folds) and checked on the held-out ones
    assert "On the 2 held-out windows" in b.verdict


def test_summarize_pairs_windows():
    "A model 0.01 better in every window beats even when the windows themselves vary a lot."
    f = hand_made(gain=0.0)
    f = f[f.candidate.isin(['majority'])].copy()
    f['log_loss'] = 0.6 + np.arange(len(f)) * 0.05            # large spread between windows
    better = f.assign(candidate='model', log_loss=f.log_loss - 0.01)
    t = summarize(pd.concat([f, better])).set_index(['candidate', 'metric'])
    assert t.loc[('model', 'log_loss'), 'lo'] < t.loc[('majority', 'log_loss'), 'mean']
    assert t.loc[('model', 'log_loss'), 'beats']
    assert t.loc[('model', 'log_loss'), 'diff'] == pytest.approx(0.01)


def test_botcore_evaluate_writes_the_tables(tmp_path):
    out = tmp_path / 'eval'
    cmd = [str(botcore_script()), 'evaluate', '--symbols', 'BTCUSDT', '--timeframes', '1h',
           '--models', 'lightgbm', '--folds', '2', '--train-size', '600', '--test-size', '200',
           '--holdout', '1', '--workers', '0', '--out', str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=clean_env(BOTCORE_DATA_DIR=str(tmp_path / 'data')), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {'leaderboard.csv', 'folds.csv', 'leaderboard.md', 'verdict.txt'} <= names
    assert any(n.startswith('evaluate-') and n.endswith('.ipynb') for n in names)
    folds = pd.read_csv(out / 'folds.csv')
    assert set(folds.candidate) == {'lightgbm', 'logistic', 'majority', 'buy & hold', 'rules'}
    assert (out / 'verdict.txt').read_text().strip() in done.stdout
