"""Tests of botcore.data.context on the real bundled candles: prefix causality of every column,
rewriting the future, warm-up, the numpy path against the frame path and against pandas."""
import numpy as np
import pandas as pd
import pytest

from botcore.core import Timeframe
from botcore.data.candles import index_ms, load_candles, resample_candles, split_segments
from botcore.data.context import (HIGHER_TIMEFRAMES, PAIR_WARMUP, higher_names,
                                  higher_timeframe_array, higher_timeframe_features,
                                  higher_warmup, pair_features, pair_names)


@pytest.fixture(scope='module')
def btc_5m():
    return load_candles('BTCUSDT', '5m')


def _columns(df):
    return (index_ms(df.index), *(df[c].to_numpy() for c in ('high', 'low', 'close', 'volume')))


def _cuts(df, minute_of_day):
    "Row counts that end a prefix in the middle of a higher candle (and of a day)."
    at = np.flatnonzero((df.index.hour * 60 + df.index.minute) == minute_of_day)
    return at[[1, 5, len(at) // 3, len(at) // 2, -2]].tolist()


def test_names_and_table():
    for base, highers in HIGHER_TIMEFRAMES.items():
        for h in highers:
            b, hi = Timeframe(base).ms, Timeframe(h).ms
            assert hi % b == 0 and hi > b
    assert higher_names('1h') == [f'h{h}_{f}' for h in ('4h', '1d') for f in (
        'log_ret_1', 'log_ret_3', 'realized_vol_6', 'rsi_6', 'ema_gap_6', 'range_pos')]
    assert 'h4h_log_ret_1' in higher_names('5m') and 'h1h_rsi_6' in higher_names('5m')
    assert pair_names() == ['pair_log_ret_1', 'pair_log_ret_6', 'pair_log_ret_24',
                            'pair_realized_vol_24', 'pair_corr_24']


@pytest.mark.parametrize('fixture,tf,minute', [('btc_1h', '1h', 13 * 60),
                                               ('eth_5m', '5m', 13 * 60 + 35)])
def test_mtf_prefix_causal(request, fixture, tf, minute):
    "Every mtf column of a prefix equals, bit for bit, the same rows computed on the whole series."
    df = request.getfixturevalue(fixture)
    full, w = higher_timeframe_features(df, tf), higher_warmup(tf)
    for n in [1, 10, w - 1, w, w + 1, *_cuts(df, minute), len(df) - 1]:
        pd.testing.assert_frame_equal(higher_timeframe_features(df.iloc[:n], tf), full.iloc[:n],
                                      check_exact=True)


@pytest.mark.parametrize('fixture', ['btc_1h', 'eth_5m'])
def test_mtf_rewriting_the_future_leaves_the_past(request, fixture):
    df = request.getfixturevalue(fixture)
    cut = _cuts(df, 13 * 60 + 35 if fixture == 'eth_5m' else 13 * 60)[2]   # mid 4h, mid day
    later = df.copy()
    later.iloc[cut:, :4] *= 3
    before, after = higher_timeframe_features(df), higher_timeframe_features(later)
    pd.testing.assert_frame_equal(after.iloc[:cut], before.iloc[:cut], check_exact=True)
    # the first higher candle to close after the cut changes every column's value
    diff = ~np.isclose(after.to_numpy(), before.to_numpy(), equal_nan=True)
    assert not diff[:cut].any() and diff[cut:].any(axis=0).all()


@pytest.mark.parametrize('symbol,timeframe',
                         [('BTCUSDT', '1h'), ('ETHUSDT', '5m'), ('BTCUSDT', '15m')])
def test_mtf_finite_after_warmup_in_every_run(symbol, timeframe):
    df = load_candles(symbol, timeframe)
    f, w = higher_timeframe_features(df).to_numpy(), higher_warmup(timeframe)
    a = checked = 0
    for run in split_segments(df, timeframe):
        part = f[a:a + len(run)]
        assert np.isnan(part[0]).all()                       # a gap restarts the warm-up
        assert np.isfinite(part[w:]).all()
        checked += len(run) > w
        a += len(run)
    assert checked >= 1


def test_warmup_is_tight(eth_5m):
    "A run that starts one candle after a 4h boundary first has every column at `higher_warmup`."
    start = np.flatnonzero((eth_5m.index.hour % 4 == 0) & (eth_5m.index.minute == 5))[3]
    f = higher_timeframe_features(eth_5m.iloc[start:start + 1000]).to_numpy()
    w = higher_warmup('5m')
    assert np.isnan(f[w - 1]).any() and np.isfinite(f[w:]).all()


@pytest.mark.parametrize('fixture,starts', [('btc_1h', [40_001, 40_013, 40_100]),
                                            ('eth_5m', [7, 1_000, 33_333])])
def test_mtf_rows_depend_only_on_the_last_warmup_candles(request, fixture, starts):
    "What the service computes from its few hundred candles is, bit for bit, what training saw."
    df = request.getfixturevalue(fixture)
    tf = '1h' if fixture == 'btc_1h' else '5m'
    w, stop = higher_warmup(tf), starts[-1] + 3_000
    full = higher_timeframe_features(df.iloc[:stop])
    assert len(split_segments(df.iloc[starts[0]:stop], tf)) == 1
    for a in starts:
        part = higher_timeframe_features(df.iloc[a:stop])
        np.testing.assert_array_equal(part.to_numpy()[w:], full.to_numpy()[a + w:])


def test_array_equals_frame_path(btc_1h):
    run = max(split_segments(btc_1h, '1h'), key=len).iloc[:5_000]
    arr = higher_timeframe_array(*_columns(run), '1h')
    assert arr.dtype == np.float64 and arr.shape == (len(run), 12)
    np.testing.assert_array_equal(arr, higher_timeframe_features(run).to_numpy())
    np.testing.assert_array_equal(arr, higher_timeframe_features(btc_1h).loc[run.index].to_numpy())


def _pandas_reference(run, tf, h):
    "The features of `h` by pandas: resample, rolling windows, merge_asof on close times."
    H = resample_candles(run, h, source=tf)
    c, lc = H.close, np.log(H.close)
    d = c.diff()
    weights = (5 / 7) ** np.arange(5, -1, -1)
    ref = pd.DataFrame({
        'log_ret_1': lc.diff(), 'log_ret_3': lc.diff(3),
        'realized_vol_6': lc.diff().rolling(6).std(ddof=0),
        'rsi_6': d.clip(lower=0).rolling(6).sum() / d.abs().rolling(6).sum(),
        'ema_gap_6': c / c.rolling(6).apply(lambda v: v @ weights / weights.sum(), raw=True) - 1,
        'range_pos': (c - H.low) / (H.high - H.low)}).add_prefix(f'h{h}_')
    ref['closes'] = H.index + Timeframe(h).timedelta
    rows = pd.DataFrame({'closes': run.index + Timeframe(tf).timedelta})
    return pd.merge_asof(rows, ref, on='closes', direction='backward').drop(columns='closes')


@pytest.mark.parametrize('fixture,tf', [('btc_1h', '1h'), ('eth_5m', '5m')])
def test_mtf_matches_pandas_reference(request, fixture, tf):
    run = request.getfixturevalue(fixture).iloc[-9_003:]
    assert len(split_segments(run, tf)) == 1
    got = higher_timeframe_features(run)
    for h in HIGHER_TIMEFRAMES[tf]:
        ref = _pandas_reference(run, tf, h)
        np.testing.assert_allclose(got[ref.columns].to_numpy(), ref.to_numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=h)


def test_pair_prefix_causal(eth_5m, btc_5m):
    full = pair_features(eth_5m, btc_5m)
    for n in [1, PAIR_WARMUP, PAIR_WARMUP + 1, 777, 10_001, 50_000, len(eth_5m) - 1]:
        pd.testing.assert_frame_equal(pair_features(eth_5m.iloc[:n], btc_5m, '5m'), full.iloc[:n],
                                      check_exact=True)
        # the other series cut at the same time changes nothing either
        pd.testing.assert_frame_equal(pair_features(eth_5m.iloc[:n], btc_5m.iloc[:n], '5m'),
                                      full.iloc[:n], check_exact=True)
    assert np.isfinite(full.iloc[PAIR_WARMUP:].to_numpy()).all()
    assert full.iloc[:PAIR_WARMUP].isna().any(axis=1).all()


def test_pair_rewriting_the_future(eth_5m, btc_5m):
    cut = 30_000
    eth2, btc2 = eth_5m.copy(), btc_5m.copy()
    eth2.iloc[cut:, :4] *= 3
    btc2.iloc[cut:, :4] *= 0.5
    before, after = pair_features(eth_5m, btc_5m), pair_features(eth2, btc2)
    pd.testing.assert_frame_equal(after.iloc[:cut], before.iloc[:cut], check_exact=True)
    a, b = after.iloc[cut:cut + 24].to_numpy(), before.iloc[cut:cut + 24].to_numpy()
    assert not np.allclose(a, b)


def test_pair_matches_pandas_and_missing_candles_are_not_filled(eth_5m, btc_5m):
    eth, gone = eth_5m.iloc[:3_000], [1_000, 2_000]
    btc = btc_5m.drop(btc_5m.index[gone])
    got = pair_features(eth, btc)
    other = np.log(btc.close.reindex(eth.index))     # NaN at the missing candles
    r_eth, r_btc = np.log(eth.close).diff(), other.diff()
    ref = pd.DataFrame({'pair_log_ret_1': r_btc, 'pair_log_ret_6': other.diff(6),
                        'pair_log_ret_24': other.diff(24),
                        'pair_realized_vol_24': r_btc.rolling(24).std(ddof=0),
                        'pair_corr_24': r_eth.rolling(24).corr(r_btc)})
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-9, atol=1e-12)
    for g in gone:      # a window that holds a missing candle is NaN; the next ones are not
        assert got.pair_corr_24.iloc[g:g + 25].isna().all()
        assert got.pair_log_ret_1.iloc[[g, g + 1]].isna().all()
        assert np.isfinite(got.iloc[g + 25]).all()


def test_pair_bad_input_is_named(eth_5m, btc_1h, btc_5m):
    with pytest.raises(ValueError, match='other'): pair_features(eth_5m, btc_1h)
    with pytest.raises(ValueError, match='other.*no candle'):
        pair_features(eth_5m.iloc[:100], btc_5m.iloc[200:300])
    with pytest.raises(ValueError, match='df'): pair_features(eth_5m.iloc[::2], btc_5m, '5m')
    with pytest.raises(ValueError, match='df'): pair_features(eth_5m.tz_localize(None), btc_5m)
