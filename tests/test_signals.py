"""Tests of botcore.model.signals on the real bundled candles: thresholds, refusals, causality, batch == single.
benchmarks/analyze_bench.py times an analysis."""
import numpy as np
import pandas as pd
import pytest

from botcore.core import Candle, Signal, SignalKind, Timeframe
from botcore.data.candles import candles_to_json
from botcore.data.features import WARMUP
from botcore.model.registry import ModelRegistry
from botcore.model.training import TrainConfig, train_model
from botcore.model.signals import MIN_CANDLES, Analyzer, NotEnoughCandles, analyze, signal_from_probability


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory, btc_1h):
    "A tiny model (one epoch on 3000 real hourly candles), promoted in a temporary model directory."
    d = tmp_path_factory.mktemp('models')
    ModelRegistry(d).promote(train_model(btc_1h.iloc[-3000:], TrainConfig(epochs=1), 'BTCUSDT', '1h', progress=False),
                           force=True)   # one epoch: the signal path, not the model's quality
    return d

@pytest.fixture(scope='module')
def analyzer(model_dir): return Analyzer(ModelRegistry(model_dir).load())

@pytest.fixture(scope='module')
def gap_end(btc_1h):
    "Position of the first candle after the 33-hour outage of 2018-02-08."
    i = btc_1h.index.get_loc(pd.Timestamp('2018-02-09 10:00', tz='UTC'))
    assert btc_1h.index[i] - btc_1h.index[i - 1] == pd.Timedelta(hours=34)
    return i


@pytest.mark.parametrize('p,kind,confidence', [
    (0.758, 'long', 75.8), (0.6, 'long', 60.0), (0.99, 'long', 99.0), (0.4, 'short', 60.0), (0.1, 'short', 90.0),
    (0.5, 'neutral', 100.0), (0.45, 'neutral', 90.0), (0.59, 'neutral', 82.0)])
def test_signal_from_probability(p, kind, confidence):
    assert signal_from_probability(p) == (SignalKind(kind), confidence)


def test_bad_probability_and_thresholds(analyzer):
    with pytest.raises(ValueError, match='probability'): signal_from_probability(1.5)
    with pytest.raises(ValueError, match='short_threshold'): Analyzer(analyzer.model, long_threshold=0.3, short_threshold=0.4)


def test_default_model_needs_at_most_min_candles(analyzer):
    assert WARMUP + TrainConfig().window <= MIN_CANDLES == 100
    assert analyzer.min_candles == 100


def test_seed_signal_shape(analyzer, btc_1h):
    candles = candles_to_json(btc_1h.iloc[-100:])
    sig = analyzer.analyze(candles, 'BTCUSDT', '1h')
    assert isinstance(sig, Signal) and (sig.symbol, sig.timeframe, sig.model_type) == ('BTCUSDT', Timeframe.H1, 'lstm')
    assert sig.model_dump(mode='json')['timestamp'] == '2024-04-21T15:00:00Z'   # close time of the 14:00 candle
    assert (sig.signal, sig.confidence) == signal_from_probability(sig.probability)
    assert analyzer.analyze([Candle(**c) for c in candles], 'BTCUSDT', '1h') == sig
    assert analyzer.analyze(btc_1h.iloc[-100:], 'BTCUSDT', Timeframe.H1) == sig


def test_not_enough_candles(analyzer, btc_1h, gap_end):
    with pytest.raises(NotEnoughCandles, match='candles: 99 given, at least 100 needed') as e:
        analyzer.analyze(candles_to_json(btc_1h.iloc[-99:]), 'BTCUSDT', '1h')
    assert (e.value.given, e.value.needed) == (99, 100) and isinstance(e.value, ValueError)
    with pytest.raises(NotEnoughCandles, match='only the last 60 follow the gap before 2018-02-09 10:00 UTC'):
        analyzer.analyze(btc_1h.iloc[gap_end - 40:gap_end + 60], 'BTCUSDT', '1h')


def test_batch_equals_one_call_per_candle(analyzer, btc_1h):
    df = btc_1h.iloc[-250:]
    p = analyzer.probabilities(df, '1h')
    assert p.iloc[:99].isna().all() and p.iloc[99:].notna().all()
    single = [analyzer.analyze(df.iloc[:k], 'BTCUSDT', '1h').probability for k in range(100, len(df) + 1)]
    np.testing.assert_allclose(single, p.iloc[99:], rtol=1e-5)


def test_later_candles_never_change_earlier_probabilities(analyzer, btc_1h, gap_end):
    df = btc_1h.iloc[gap_end - 300:gap_end + 400]                      # across the 2018-02-08 outage
    full, n = analyzer.probabilities(df, '1h'), analyzer.run_needed
    assert full.iloc[:99].isna().all() and full.iloc[99:300].notna().all()
    assert full.iloc[300:300 + n - 1].isna().all() and full.iloc[300 + n - 1:].notna().all()
    for k in (100, 250, 300, 300 + n, 555, 700):
        np.testing.assert_allclose(analyzer.probabilities(df.iloc[:k], '1h'), full.iloc[:k], rtol=1e-5)
        assert analyzer.analyze(df.iloc[:k], 'BTCUSDT', '1h').probability == pytest.approx(full.iloc[k - 1], rel=1e-5)


def test_signals_frame_matches_analyze(analyzer, btc_1h):
    df = btc_1h.iloc[-200:]
    sf = analyzer.signals(df)
    sig = analyzer.analyze(df, 'BTCUSDT', '1h')
    assert (sf.signal.iloc[-1], sf.confidence.iloc[-1]) == (sig.signal.value, sig.confidence)
    assert sf.signal.iloc[:99].isna().all() and sf.signal.iloc[99:].isin(['long', 'short', 'neutral']).all()


def test_one_off_analyze_loads_the_promoted_model(model_dir, analyzer, btc_1h, tmp_path):
    candles = candles_to_json(btc_1h.iloc[-100:])
    assert analyze(candles, 'BTCUSDT', '1h', model_dir=model_dir) == analyzer.analyze(candles, 'BTCUSDT', '1h')
    with pytest.raises(ValueError, match='no trained model'): analyze(candles, 'BTCUSDT', '1h', model_dir=tmp_path)
