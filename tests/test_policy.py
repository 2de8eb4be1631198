"""The signal policy on a realistic probability series: a small LSTM's probabilities over real
BTCUSDT 1h candles (conftest's `small_lstm`, 1 epoch), which sit close to 0.5 as a trained
model's do. Fixed thresholds, adaptive ones (FreqAI's mean +- k * std of the predictions before
t), causality, and the service's one-candle-at-a-time thresholds against the series'."""
import numpy as np
import pytest

from botcore.model.policy import (ServingThresholds, SignalPolicy, adaptive_thresholds,
                                  policy_codes, policy_thresholds)
from botcore.model.signals import Analyzer, signal_from_probability

ADAPTIVE = SignalPolicy(kind='adaptive', lookback=500, k=1.0, min_history=50)


@pytest.fixture(scope='module')
def probabilities(small_lstm, btc_1h):
    "P(up) for each of the last 5,000 real candles (NaN for the first 99), with open times in ms."
    p = Analyzer(small_lstm).probabilities(btc_1h.iloc[-5000:], '1h')
    return p.to_numpy(), p.index.as_unit('ms').asi8


def by_definition(p, t, lookback, k, min_history):
    "The thresholds at t as stated: from the finite predictions among the `lookback` before t."
    h = p[max(0, t - lookback):t]
    h = h[np.isfinite(h)]
    if len(h) < min_history or h.std() <= 1e-12: return np.nan, np.nan
    return h.mean() + k * h.std(), h.mean() - k * h.std()


def test_the_series_is_realistic(probabilities):
    p, _ = probabilities
    assert np.isnan(p[:99]).all() and np.isfinite(p[99:]).all()
    assert 0.3 < np.median(p[99:]) < 0.7 and p[99:].std() < 0.1      # near 0.5, as models are


def test_adaptive_thresholds_are_the_definition(probabilities):
    p, _ = probabilities
    for lookback, k, min_history in ((500, 1.0, 50), (60, 0.5, 10), (2000, 2.0, 1000)):
        long, short = adaptive_thresholds(p, lookback, k, min_history)
        edges = [0, 98, 99, 100, 148, 149, 150, 151, 1099, 1100, len(p) - 1]
        for t in [*edges, *range(7, len(p), 97)]:
            want = by_definition(p, t, lookback, k, min_history)
            np.testing.assert_allclose((long[t], short[t]), want, rtol=0, atol=1e-9,
                                       err_msg=f't={t}, lookback={lookback}')


def test_thresholds_at_t_ignore_t_and_later(probabilities):
    p, _ = probabilities
    long, short = adaptive_thresholds(p, 500, 1.0, 50)
    rng = np.random.default_rng(7)
    for t0 in (150, 777, 3000, len(p) - 1):
        changed = p.copy()
        changed[t0:] = rng.uniform(0, 1, len(p) - t0)
        l2, s2 = adaptive_thresholds(changed, 500, 1.0, 50)
        np.testing.assert_array_equal(l2[:t0 + 1], long[:t0 + 1])
        np.testing.assert_array_equal(s2[:t0 + 1], short[:t0 + 1])
        if t0 + 1 < len(p): assert not np.array_equal(l2[t0 + 1:], long[t0 + 1:])


def test_adaptive_fires_where_fixed_thresholds_do_not(probabilities):
    p, _ = probabilities
    fixed, adaptive = policy_codes(p, SignalPolicy()), policy_codes(p, ADAPTIVE)
    scored = np.isfinite(p)
    assert (fixed[~scored] == 0).all() and (adaptive[~scored] == 0).all()
    long, short = policy_thresholds(p, ADAPTIVE)
    fires = (p >= long) | (p <= short)
    assert (adaptive[scored] != 0).mean() == fires[scored].mean()
    # mean +- 1 std leaves out some of every distribution, and never most of it
    assert 0.05 < (adaptive[scored] != 0).mean() < 0.6
    assert (adaptive == 1).any() and (adaptive == -1).any()
    # where the fixed thresholds say neutral, the adaptive ones still call the strong moves
    assert ((fixed == 0) & (adaptive != 0)).sum() > 0


def test_codes_agree_with_the_one_at_a_time_signal(probabilities):
    p, _ = probabilities
    long, short = policy_thresholds(p, ADAPTIVE)
    codes = policy_codes(p, ADAPTIVE)
    names = {1: 'long', -1: 'short', 0: 'neutral'}
    for t in range(99, len(p), 13):
        assert names[codes[t]] == signal_from_probability(p[t], long[t], short[t])[0].value


def test_history_continues_the_series(probabilities):
    p, _ = probabilities
    k = 1500
    whole = policy_thresholds(p, ADAPTIVE)
    later = policy_thresholds(p[k:], ADAPTIVE, history=p[:k])
    np.testing.assert_allclose(later, (whole[0][k:], whole[1][k:]), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(policy_codes(p[k:], ADAPTIVE, history=p[:k]),
                                  policy_codes(p, ADAPTIVE)[k:])
    # without history the series starts on the fixed thresholds until min_history predictions
    cold = policy_thresholds(p[k:], ADAPTIVE)
    np.testing.assert_array_equal(cold[0][:50], 0.6)
    np.testing.assert_allclose(cold[0][50], by_definition(p[k:], 50, 500, 1.0, 50)[0], atol=1e-9)


def test_the_service_gives_the_series_thresholds(probabilities):
    "Candle by candle, read then record, seeded with earlier predictions: the series' thresholds."
    p, ms = probabilities
    seed, start = p[99:800], 800
    served = ServingThresholds(ADAPTIVE, seed=seed)
    got = []
    for t in range(start, len(p)):
        got.append(served.thresholds('BTCUSDT', '1h', int(ms[t])))
        served.record('BTCUSDT', '1h', int(ms[t]), float(p[t]))
        if t % 10 == 0:                    # the engine asks again about the candle: nothing moves
            assert served.record('BTCUSDT', '1h', int(ms[t]), float(p[t])) is False
            assert served.thresholds('BTCUSDT', '1h', int(ms[t])) == got[-1]
    long, short = policy_thresholds(p[start:], ADAPTIVE, history=seed)
    np.testing.assert_allclose([g[0] for g in got], long, rtol=0, atol=1e-9)
    np.testing.assert_allclose([g[1] for g in got], short, rtol=0, atol=1e-9)
    assert {g[2] for g in got} == {'adaptive'}


def test_a_fixed_policy_is_the_seeds_thresholds(probabilities):
    p, ms = probabilities
    long, short = policy_thresholds(p, SignalPolicy())
    assert (long == 0.6).all() and (short == 0.4).all()
    served = ServingThresholds(SignalPolicy(), seed=p[99:])
    assert served.thresholds('BTCUSDT', '1h', int(ms[-1])) == (0.6, 0.4, 'fixed')
