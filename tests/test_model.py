"""Tests of botcore.model on the real bundled candles: honest splits, reproducibility, the registry."""
import json, os

import numpy as np
import pytest
import torch

from botcore.data.candles import find_gaps
from botcore.data.features import WARMUP
from botcore.model.samples import chronological_split, make_samples, segment_features
from botcore.model.trained import TrainedModel
from botcore.model.evaluation import evaluation_report
from botcore.model.registry import ModelNotFoundError, ModelRegistry
from botcore.model.training import TrainConfig, train_model

QUICK = TrainConfig(epochs=1)


@pytest.fixture(scope='module')
def recent(btc_1h):
    df = btc_1h.iloc[-3000:]
    assert len(find_gaps(df, '1h')) == 0
    return df

@pytest.fixture(scope='module')
def tiny(recent): return train_model(recent, QUICK, 'BTCUSDT', '1h', progress=False)


def test_default_model_fits_in_a_seed_request():
    "The default model needs at most the seed's 100 candles."
    assert WARMUP + TrainConfig().window <= 100


def test_config_names_bad_fields():
    for bad in (dict(model_type='rnn'), dict(horizon=0), dict(window=1), dict(val_frac=0.7), dict(hidden=8)):
        with pytest.raises(ValueError, match=next(iter(bad))): TrainConfig(**bad)


def test_windows_never_span_a_gap_or_the_warmup(btc_1h):
    w, h = 50, 4
    s = make_samples(btc_1h, '1h', w, h)
    assert len(find_gaps(btc_1h, '1h')) == 28
    ms = btc_1h.index.as_unit('ms').asi8
    assert ((ms[s.at + h] - ms[s.at - (w - 1)]) == (w - 1 + h) * 3_600_000).all()
    assert ((ms[s.at - (w - 1)] - ms[s.at - (w - 1) - WARMUP]) == WARMUP * 3_600_000).all()
    close = btc_1h.close.to_numpy()
    np.testing.assert_array_equal(s.y, (close[s.at + h] > close[s.at]).astype(np.float32))
    assert np.isfinite(s.rows).all() and len(s) > 55_000


@pytest.mark.parametrize('window,horizon', [(50, 4), (60, 1), (10, 24)])
def test_splits_are_chronological_and_apart(btc_1h, window, horizon):
    s = make_samples(btc_1h, '1h', window, horizon)
    train, val, test = chronological_split(s.at, window, horizon)
    spans = [(s.at[i].min() - window + 1, s.at[i].max() + horizon) for i in (train, val, test)]   # candles read
    assert spans[0][1] < spans[1][0] and spans[1][1] < spans[2][0]
    assert s.at[val].min() - s.at[train].max() == window + horizon
    assert s.at[test].min() - s.at[val].max() == window + horizon
    assert (np.diff(np.concatenate([train, val, test])) > 0).all()


def test_scaler_is_fitted_on_the_training_split_only(recent, tiny):
    s = make_samples(recent, '1h', tiny.window, tiny.horizon)
    train, val, test = chronological_split(s.at, tiny.window, tiny.horizon)
    train_rows = s.rows[:s.ends[train[-1]] + 1]
    np.testing.assert_allclose(tiny.mean, train_rows.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tiny.scale, train_rows.std(0), rtol=1e-4, atol=1e-6)
    assert np.abs(tiny.mean - s.rows.mean(0)).max() > 1e-3
    assert tiny.meta['samples'] == dict(train=len(train), val=len(val), test=len(test))


def test_same_seed_and_data_give_identical_weights(recent, tiny):
    again = train_model(recent, QUICK, 'BTCUSDT', '1h', progress=False)
    for (name, a), b in zip(tiny.net.state_dict().items(), again.net.state_dict().values()):
        assert torch.equal(a, b), name
    other = train_model(recent, QUICK.model_copy(update={'seed': 7}), 'BTCUSDT', '1h', progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(tiny.net.parameters(), other.net.parameters()))


def test_gru_shares_the_code_path(recent):
    epochs = []
    gru = train_model(recent, QUICK.model_copy(update={'model_type': 'gru'}), 'BTCUSDT', '1h', progress=False,
                      on_epoch=lambda *a: epochs.append(a))
    assert gru.model_type == 'gru' and isinstance(gru.net.rnn, torch.nn.GRU) and len(epochs) == 1


def test_metadata_is_complete_json(tiny):
    meta = json.loads(json.dumps(tiny.meta))
    for key in ('model_type', 'version', 'feature_names', 'window', 'horizon', 'scaler', 'hyperparameters', 'symbols',
                'timeframe', 'data', 'samples', 'metrics', 'training_accuracy', 'training_seconds', 'created_at',
                'library_versions'):
        assert key in meta, key
    assert set(meta['library_versions']) >= {'torch', 'numpy', 'pandas', 'sklearn', 'botcore'}
    assert set(meta['metrics']['baselines']) == {'majority class', 'logistic regression', 'last candle direction'}
    assert meta['created_at'].endswith('Z') and meta['data']['first'].endswith('Z')


def test_evaluation_report(tiny):
    r = evaluation_report(tiny)
    assert list(r.columns) == ['accuracy', 'roc_auc', 'log_loss', 'brier']
    assert list(r.index) == ['lstm', 'majority class', 'logistic regression', 'last candle direction']
    assert r.loc['majority class', 'roc_auc'] == 0.5
    assert r.attrs['verdict'].startswith('The LSTM ') and 'log loss' in r.attrs['verdict']


def test_predict_proba_matches_the_evaluation(recent, tiny):
    s = make_samples(recent, '1h', tiny.window, tiny.horizon)
    _, _, test = chronological_split(s.at, tiny.window, tiny.horizon)
    p = tiny.predict_proba(segment_features(recent))
    assert np.isnan(p[:WARMUP + tiny.window - 1]).all() and np.isfinite(p[WARMUP + tiny.window - 1:]).all()
    from sklearn.metrics import log_loss
    assert log_loss(s.y[test], p[s.at[test]]) == pytest.approx(tiny.meta['metrics']['test']['log_loss'], rel=1e-5)


def test_registry_list_load_promote(tmp_path, recent, tiny):
    reg = ModelRegistry(tmp_path)
    assert (reg.versions(), reg.latest(), reg.current()) == ([], None, None)
    with pytest.raises(ModelNotFoundError, match='no trained model'): reg.load()
    second = train_model(recent, QUICK.model_copy(update={'seed': 3}), 'BTCUSDT', '1h', progress=False)
    # force: one-epoch models; this test is about versions and pointers (the gate: test_zoo.py)
    assert reg.promote(tiny, force=True) == tiny.version
    assert reg.promote(second, force=True) == second.version
    assert reg.versions() == sorted([tiny.version, second.version]) and reg.current() == second.version
    assert reg.promote(tiny.version, force=True) == tiny.version                        # roll back to a saved version
    assert (tmp_path / 'CURRENT').read_text() == tiny.version + '\n'
    loaded = reg.load()
    assert isinstance(loaded, TrainedModel) and loaded.version == tiny.version
    f = segment_features(recent)
    np.testing.assert_array_equal(loaded.predict_proba(f), tiny.predict_proba(f))
    assert reg.load(second.version).version == second.version
    with pytest.raises(ModelNotFoundError, match="version '../x'"): reg.load('../x')


def test_half_written_versions_are_invisible(tmp_path, tiny, monkeypatch):
    reg = ModelRegistry(tmp_path)
    reg.promote(tiny, force=True)
    crashed = tmp_path / '.tmp-20991231T000000Z-lstm-abcdef-1234'
    crashed.mkdir(); (crashed / 'weights.pt').write_bytes(b'half')
    (tmp_path / '20991231T000000Z-lstm-000000').mkdir()                    # empty: not a version either
    assert reg.versions() == [tiny.version] and reg.latest() == tiny.version

    def fail(*a): raise OSError('disk full')
    other = TrainedModel(tiny.net, {**tiny.meta, 'version': '20991231T235959Z-lstm-ffffff'})
    monkeypatch.setattr(os, 'rename', fail)
    with pytest.raises(OSError, match='disk full'): reg.promote(other, force=True)
    monkeypatch.undo()
    assert reg.versions() == [tiny.version] and reg.current() == tiny.version   # nothing half-done is visible
    assert not any(p.name.startswith('.tmp-20991231T235959Z') for p in tmp_path.iterdir())
    assert not any(p.name.startswith('.CURRENT') for p in tmp_path.iterdir())
