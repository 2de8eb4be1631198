"""Tests of botcore.data.features on the real bundled candles: shape, warm-up, causality, scale."""
import subprocess, sys

import numpy as np
import pandas as pd
import pytest

from botcore.data.candles import bundled_series, load_candles
from botcore.data.features import FEATURE_NAMES, WARMUP, feature_matrix


def test_names_and_warmup_constants():
    assert len(FEATURE_NAMES) >= 15 and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    # a 60-candle model window plus the warm-up must fit in the seed's minimum request of 100 candles
    assert WARMUP + 60 <= 100


@pytest.mark.parametrize('symbol,timeframe', bundled_series())
def test_every_series_is_finite_after_warmup(symbol, timeframe):
    df = load_candles(symbol, timeframe)
    fm = feature_matrix(df)
    assert list(fm.columns) == FEATURE_NAMES and fm.index.equals(df.index)
    assert (fm.dtypes == np.float64).all()
    has_nan = fm.isna().any(axis=1).to_numpy()
    assert has_nan[:WARMUP].all() and not has_nan[WARMUP:].any()
    assert np.isfinite(fm.iloc[WARMUP:].to_numpy()).all()


@pytest.mark.parametrize('cuts', [[1, 10, WARMUP, WARMUP + 1, 100, 4_321, 20_000, 45_678, 58_418]])
def test_causal_btc_1h(btc_1h, cuts):
    "Every feature of a prefix equals, bit for bit, the same rows computed on the whole series."
    full = feature_matrix(btc_1h)
    for n in cuts:
        pd.testing.assert_frame_equal(feature_matrix(btc_1h.iloc[:n]), full.iloc[:n], check_exact=True)


@pytest.mark.parametrize('cuts', [[WARMUP, 777, 10_000, 50_000, 71_768]])
def test_causal_eth_5m(eth_5m, cuts):
    full = feature_matrix(eth_5m)
    for n in cuts:
        pd.testing.assert_frame_equal(feature_matrix(eth_5m.iloc[:n]), full.iloc[:n], check_exact=True)


def test_rewriting_the_future_leaves_the_past(btc_1h):
    later = btc_1h.copy()
    later.iloc[30_000:] *= 3
    before, after = feature_matrix(btc_1h), feature_matrix(later)
    pd.testing.assert_frame_equal(after.iloc[:30_000], before.iloc[:30_000], check_exact=True)
    assert not np.array_equal(after.iloc[30_000:].to_numpy(), before.iloc[30_000:].to_numpy())


def test_scale_free(eth_5m):
    "Prices 1,024 times higher (exact in binary) give the same features up to the last bits of a log."
    scaled = eth_5m.copy()
    scaled[['open', 'high', 'low', 'close']] *= 1_024
    np.testing.assert_allclose(feature_matrix(scaled).to_numpy(), feature_matrix(eth_5m).to_numpy(), rtol=1e-12, atol=1e-14)


def test_zero_volume_candles_have_finite_ratio(btc_1h):
    zero = btc_1h.volume.to_numpy() == 0
    assert zero.sum() == 4
    assert (feature_matrix(btc_1h)['volume_ratio_20'].to_numpy()[zero] == 0).all()


@pytest.mark.parametrize('symbol,timeframe', [('BTCUSDT', '1h'), ('ETHUSDT', '5m')])
def test_kernels_match_vectorbt_indicator_classes(symbol, timeframe):
    "The features built on vectorbt's kernels equal, bit for bit, those from its `vbt.*.run` indicator classes."
    import vectorbt as vbt
    df = load_candles(symbol, timeframe)
    high, low, close, volume = (df[c].to_numpy() for c in ('high', 'low', 'close', 'volume'))
    fm = feature_matrix(df)
    macd = vbt.MACD.run(close, 12, 26, 9, macd_ewm=True, signal_ewm=True)
    line, signal = macd.macd.to_numpy(), macd.signal.to_numpy()
    bb = vbt.BBANDS.run(close, window=20, alpha=2)
    lower, width = bb.lower.to_numpy(), bb.upper.to_numpy() - bb.lower.to_numpy()
    emas = vbt.MA.run(close, [9, 21, 34], ewm=True).ma.to_numpy()
    with np.errstate(invalid='ignore', divide='ignore'):
        expected = {
            'rsi_14': vbt.RSI.run(close, window=27, ewm=True).rsi.to_numpy() / 100,
            'macd': line / close, 'macd_signal': signal / close, 'macd_hist': (line - signal) / close,
            'bb_position': np.where(width == 0, 0.5, (close - lower) / width),
            'bb_width': width / bb.middle.to_numpy(),
            'atr_14': vbt.ATR.run(high, low, close, window=27, ewm=True).atr.to_numpy() / close,
            'realized_vol_24': vbt.MSTD.run(fm['log_ret_1'].to_numpy(), window=24).mstd.to_numpy(),
            **{f'ema_gap_{n}': close / emas[:, i] - 1 for i, n in enumerate([9, 21, 34])},
            'volume_ratio_20': np.where((mean := vbt.MA.run(volume, window=20).ma.to_numpy()) == 0, 1.0, volume / mean)}
    for name, values in expected.items():
        np.testing.assert_array_equal(fm[name].to_numpy(), values, err_msg=name)


@pytest.mark.parametrize('unit', ['s', 'ms', 'us'])
def test_index_unit_does_not_matter(btc_1h, unit):
    other = btc_1h.set_axis(btc_1h.index.as_unit(unit))
    np.testing.assert_array_equal(feature_matrix(other).to_numpy(), feature_matrix(btc_1h).to_numpy())


def test_read_only_and_strided_inputs(btc_1h):
    "pandas' read-only views and every-other-row slices give the same features as fresh arrays."
    every_other = btc_1h.iloc[::2]
    fresh = every_other.copy()
    np.testing.assert_array_equal(feature_matrix(every_other).to_numpy(), feature_matrix(fresh).to_numpy())


def test_bad_input_is_named(btc_1h):
    with pytest.raises(ValueError, match=r'lack column\(s\) close'): feature_matrix(btc_1h.drop(columns='close'))
    with pytest.raises(ValueError, match='tz-aware DatetimeIndex'): feature_matrix(btc_1h.tz_localize(None))


def test_import_does_not_load_vectorbt():
    code = 'import sys, botcore.data.features; print("vectorbt" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'
