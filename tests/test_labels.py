"""Tests of botcore.model.labels: hand-made paths with known answers, the strategy's convention,
a slow reference loop, and the balance of the labels on the real bundled candles."""
import math

import numpy as np
import pytest

from botcore.model.labels import (LABELS, barrier_labels, direction_labels, make_labels,
                                  trailing_sigma, volatility_labels)

eq = np.testing.assert_array_equal   # NaN (no label) equals NaN


def path(*candles):
    "high, low, close: an entry candle closing at 100, then `candles` as (high, low, close)."
    return tuple(np.array([100.0, *x]) for x in zip(*candles))


QUIET = (101.0, 99.0, 100.0)
TARGET = (105.0, 101.0, 104.5)     # touches 104, the 4 % target of an entry at 100
STOP = (100.0, 97.0, 97.5)         # touches 98, the 2 % stop


def first(*candles, max_hold=5):
    return barrier_labels(*path(*candles), 2.0, 4.0, max_hold)[0]


def test_barrier_first_touch_decides():
    assert first(QUIET, QUIET, TARGET, QUIET, STOP, QUIET) == 1.0   # target on 3, stop on 5
    assert first(QUIET, STOP, TARGET, QUIET, QUIET, QUIET) == 0.0   # stop on 2, target on 3
    assert first(STOP, TARGET, QUIET, QUIET, QUIET, QUIET, max_hold=1) == 0.0
    assert first(QUIET, TARGET, QUIET, QUIET, QUIET, QUIET, max_hold=1) == 0.0  # too late: time
    assert first(QUIET, TARGET, QUIET, QUIET, QUIET, QUIET, max_hold=2) == 1.0


def test_same_candle_touching_both_is_the_strategys_stop():
    from botcore.strategy.rules import ExitReason, intrabar_exit_nb   # a test may look up a layer
    both = (105.0, 97.0, 100.0)
    assert intrabar_exit_nb(1, 98.0, np.nan, 104.0, 100.0, *both[:2])[0] == ExitReason.STOP_LOSS
    assert first(QUIET, both, TARGET, QUIET, QUIET, QUIET) == 0.0
    assert first(QUIET, (104.0, 98.0, 100.0), QUIET, QUIET, QUIET, QUIET) == 0.0  # levels exactly


def test_barrier_time_limit_up_and_down():
    assert first(QUIET, QUIET, QUIET, QUIET, (102.0, 99.0, 100.5), QUIET) == 1.0
    assert first(QUIET, QUIET, QUIET, QUIET, (102.0, 99.0, 99.5), QUIET) == 0.0
    assert first(QUIET, QUIET, QUIET, QUIET, (102.0, 99.0, 100.0), QUIET) == 0.0   # flat: 0
    assert first(QUIET, QUIET, QUIET, QUIET, QUIET, (110.0, 90.0, 100.0)) == 0.0  # after: no


def test_barrier_nan_where_the_future_is_unknown():
    h, l, c = path(QUIET, TARGET, QUIET, QUIET)
    eq(barrier_labels(h, l, c, 2.0, 4.0, 2), [1.0, 1.0, 0.0, np.nan, np.nan])
    eq(barrier_labels(h, l, c, 2.0, 4.0, 5), [np.nan] * 5)


def test_direction_by_hand():
    c = np.array([1.0, 2.0, 1.0, 1.0, 3.0])
    eq(direction_labels(c, 1), [1.0, 0.0, 0.0, 1.0, np.nan])
    eq(direction_labels(c, 3), [0.0, 1.0, np.nan, np.nan, np.nan])


def calm_then(*moves, a=0.01):
    "Closes: four 1 % moves up and down (sample std a * sqrt(4/3)), then `moves` (log returns)."
    return np.exp(np.cumsum([0.0, a, -a, a, -a, *moves]))


def test_volatility_drops_small_moves():
    lab = lambda c, h=1: volatility_labels(c, h, k=1.0, vol_window=4)[4]   # noqa: E731
    assert lab(calm_then(0.02)) == 1.0
    assert lab(calm_then(-0.02)) == 0.0
    assert np.isnan(lab(calm_then(0.011)))          # below k * sigma = 1.155 %
    assert np.isnan(lab(calm_then(-0.011)))
    assert lab(calm_then(0.012)) == 1.0
    assert np.isnan(lab(calm_then(0.01, 0.005), 2))   # 1.5 % < 1.155 % * sqrt(2)
    assert lab(calm_then(0.01, 0.007), 2) == 1.0      # 1.7 % > 1.633 %
    y = volatility_labels(calm_then(0.02, 0.0), 1, k=1.0, vol_window=4)
    assert np.isnan(y[:4]).all() and np.isnan(y[-1])  # sigma unknown; future unknown


def test_sigma_uses_only_the_past():
    rng = np.random.default_rng(1)
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    for j in (100, 333, 500):
        changed = walk.copy()
        changed[j:] *= np.exp(rng.normal(0, 0.05, 600 - j))
        eq(trailing_sigma(changed)[:j], trailing_sigma(walk)[:j])
        eq(volatility_labels(changed, 6, 0.5)[:j - 6], volatility_labels(walk, 6, 0.5)[:j - 6])
        assert not np.isclose(trailing_sigma(changed)[j + 1:], trailing_sigma(walk)[j + 1:]).any()


@pytest.mark.parametrize('k', [0.25, 0.5, 1.0])
def test_gaussian_walk_drops_the_normal_share(k):
    "With normal returns a share of about 2 Phi(k) - 1 = erf(k / sqrt 2) of the moves is dropped."
    c = 100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 40_000)))
    y = volatility_labels(c, 4, k)[24:-4]
    assert abs(np.isnan(y).mean() - math.erf(k / math.sqrt(2))) < 0.03
    assert 0.45 < np.nanmean(y) < 0.55


def test_direction_equals_the_samples_targets(btc_1h):
    from botcore.model.samples import make_samples
    recent = btc_1h.iloc[-3000:]
    s = make_samples(recent, '1h', 60, 4)
    eq(direction_labels(recent['close'].to_numpy(), 4)[s.at], s.y)


def test_label_balance_on_real_candles(btc_1h):
    hi, lo, cl = (btc_1h[x].to_numpy() for x in ('high', 'low', 'close'))
    for kind in LABELS:
        y, ahead = make_labels(kind, hi, lo, cl, 4)
        assert ahead == 4 and len(y) == len(cl) and np.isnan(y[-4:]).all()
        assert 0.3 < np.nanmean(y) < 0.7, kind                  # both classes, neither rare
        if kind != 'volatility': assert np.isnan(y).sum() == 4  # only the unknown future
    shares = [np.isnan(volatility_labels(cl, 4, k)[24:-4]).mean() for k in (0.0, 0.5, 1.0, 2.0)]
    assert shares[0] < 0.01 and shares == sorted(shares)
    for k, share in zip((0.5, 1.0, 2.0), shares[1:]):
        normal = math.erf(k / math.sqrt(2))   # fat tails put more moves near 0: a bit more
        assert normal - 0.05 < share < normal + 0.2, (k, share, normal)


def slow_barrier(high, low, close, stop_pct, target_pct, max_hold):
    "The triple barrier, one entry and one candle at a time."
    y = []
    for t in range(len(close)):
        if t + max_hold >= len(close):
            y.append(math.nan)
            continue
        stop, target = close[t] * (1 - stop_pct / 100), close[t] * (1 + target_pct / 100)
        label = 1.0 if close[t + max_hold] > close[t] else 0.0
        for j in range(t + 1, t + max_hold + 1):
            if low[j] <= stop:
                label = 0.0
                break
            if high[j] >= target:
                label = 1.0
                break
        y.append(label)
    return np.array(y)


@pytest.mark.parametrize('start, stop_pct, target_pct, max_hold',
                         [(8000, 1.0, 2.0, 24), (40000, 2.0, 4.0, 48), (-500, 0.5, 0.5, 6)])
def test_barrier_matches_a_slow_loop(btc_1h, start, stop_pct, target_pct, max_hold):
    part = btc_1h.iloc[start:start + 500] if start >= 0 else btc_1h.iloc[start:]
    hi, lo, cl = (part[x].to_numpy() for x in ('high', 'low', 'close'))
    want = slow_barrier(hi, lo, cl, stop_pct, target_pct, max_hold)
    eq(barrier_labels(hi, lo, cl, stop_pct, target_pct, max_hold), want)
    # not vacuous: target first, stop first and the time limit all decide some labels
    fast = barrier_labels(hi, lo, cl, 99.0, 1e9, max_hold)   # no barrier can be touched
    eq(np.isnan(fast), np.isnan(want))
    assert (want[:-max_hold] != fast[:-max_hold]).any()
    assert 0 < np.nanmean(want) < 1


def test_make_labels_names_the_allowed_kinds():
    c = np.arange(1.0, 11.0)
    with pytest.raises(ValueError, match=r"label: .*'trend'.*direction, volatility, barrier"):
        make_labels('trend', c, c, c, 2)
    for bad in (dict(horizon=0), dict(horizon=1.5)):
        with pytest.raises(ValueError, match='horizon'): make_labels('direction', c, c, c, **bad)
    with pytest.raises(ValueError, match='stop_pct'):
        make_labels('barrier', c, c, c, 2, stop_pct=0.0)
    eq(make_labels('barrier', c, c, c, 3)[0], barrier_labels(c, c, c, 2.0, 4.0, 3))
    assert make_labels('volatility', c, c, c, 7)[1] == 7
