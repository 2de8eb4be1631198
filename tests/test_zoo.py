"""Every member of the model zoo, trained, promoted and served by a real AI service.

For each model type (lstm, gru, transformer, mlp, lightgbm, logistic, and lightgbm on the
multi-timeframe features) a quick real model is trained on the last 3,000 BTCUSDT 1h candles,
promoted into the model dir of ONE running `uvicorn botcore.api.ai.app:app`, and called over HTTP:
the service must answer with that type, that version, and the very probability the model gives
in-process for the same candles. Also: the promotion gate refuses a model worse than the
majority class and the service keeps serving the previous one; every type survives a save/load
round trip bit for bit; a multi-timeframe model asks for (and enforces) more candles.
"""
import math
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from botcore.data.candles import candles_to_json, open_times_ms
from support import UvicornServer, clean_env, wait_until

TOKEN = 'zoo-engine-token-' + 'z' * 30
AUTH = {'Authorization': f'Bearer {TOKEN}'}
CANDLES = 3000              # the training slice: the last 3,000 real BTCUSDT 1h candles
SENT = 250                  # candles per /analyze call: enough for every member (mtf needs ~193)

# Quick configurations: a couple of epochs of a small network, or a few dozen trees.
NET = dict(epochs=2, hidden_size=16)
ZOO = {
    'lstm': dict(model_type='lstm', **NET),
    'gru': dict(model_type='gru', **NET),
    'transformer': dict(model_type='transformer', **NET),
    'mlp': dict(model_type='mlp', **NET),
    'lightgbm': dict(model_type='lightgbm', n_estimators=50),
    'logistic': dict(model_type='logistic'),
    'lightgbm-mtf': dict(model_type='lightgbm', n_estimators=50, features='mtf'),
}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope='module')
def zoo(btc_1h) -> dict:
    "One quick real model of each member, trained on the same slice (about 20 s in all)."
    from botcore.model.training import TrainConfig, train_model
    df = btc_1h.iloc[-CANDLES:]
    return {name: train_model(df, TrainConfig(**kw), 'BTCUSDT', '1h', progress=False)
            for name, kw in ZOO.items()}


def promote(registry, model) -> str:
    """Promote `model`; the version.
    The gate may honestly refuse a quick model (its test log loss a hair above the majority
    class's): these tests are about serving every type, not about this tiny model's skill, so
    ONLY in that case is it promoted with `force=True`. The gate itself is tested below."""
    from botcore.model.evaluation import promotion_refusal
    return registry.promote(model, force=promotion_refusal(model.meta) is not None)


class Service(UvicornServer):
    "`uvicorn botcore.api.ai.app:app` on a free loopback port, the token from the environment."
    def __init__(self, data_dir):
        super().__init__('botcore.api.ai.app:app', data_dir, clean_env(INTER_SERVICE_TOKEN=TOKEN),
                         name='zoo-server', health_timeout=120)


@pytest.fixture(scope='module')
def service(tmp_path_factory, zoo):
    "A running AI service over a fresh data dir whose model dir starts with the LSTM promoted."
    from botcore.model.registry import ModelRegistry
    data_dir = tmp_path_factory.mktemp('zoo')
    registry = ModelRegistry(data_dir / 'models')
    promote(registry, zoo['lstm'])
    server = Service(data_dir)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.registry = registry
            yield client
    finally:
        server.stop()
    assert 'Traceback' not in server.logs(), server.logs()[-5000:]


def info(client) -> dict:
    r = client.get('/model/info', headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def serve(client, model) -> dict:
    """Promote `model` in the running service's model dir and wait until the service serves it
    (`GET /model/info` looks at the registry's CURRENT; a background watcher also does, every
    2 s); its /model/info."""
    version = promote(client.registry, model)
    return wait_until(lambda: (i := info(client))['version'] == version and i, timeout=30,
                      every=0.2, what=f'the service serving {version}')


def analyze(client, candles):
    body = {'symbol': 'BTCUSDT', 'timeframe': '1h', 'candles': candles_to_json(candles)}
    return client.post('/analyze', json=body, headers=AUTH)


# ---------------------------------------------------------------- every member, served

@pytest.mark.parametrize('name', list(ZOO))
def test_service_serves_each_member_with_its_in_process_probability(service, zoo, btc_1h, name):
    from botcore.model.signals import Analyzer
    model = zoo[name]
    got = serve(service, model)
    assert got['model_loaded'] is True
    assert got['model_type'] == model.model_type == ZOO[name]['model_type']
    assert got['version'] == model.version and got['features'] == model.features
    assert got['window'] == model.window and got['min_candles'] <= SENT
    assert got['calibration'] == model.meta['calibration']      # served calibrated, as trained

    candles = btc_1h.iloc[-SENT:]
    r = analyze(service, candles)
    assert r.status_code == 200, r.text
    answer = r.json()
    mine = Analyzer(model).analyze(candles, 'BTCUSDT', '1h')
    assert answer['model_type'] == model.model_type and answer['model_version'] == model.version
    assert 0 < answer['probability'] < 1
    assert answer['probability'] == pytest.approx(mine.probability, abs=1e-6)
    # the same number from the model's own scoring of the analyzer's window of features
    cols = [candles[c].to_numpy(np.float64) for c in ('high', 'low', 'close', 'volume')]
    rows = Analyzer(model).window_rows(open_times_ms(candles), *cols, '1h')
    assert answer['probability'] == pytest.approx(model.predict_last(rows), abs=1e-6)
    assert pd.Timestamp(answer['timestamp']) == candles.index[-1] + pd.Timedelta(hours=1)


def test_members_differ(zoo, btc_1h):
    "A sanity check on the fixture: seven distinct models, not one served seven times."
    from botcore.model.signals import Analyzer
    candles = btc_1h.iloc[-SENT:]
    ps = {name: Analyzer(m).analyze(candles, 'BTCUSDT', '1h').probability for name, m in zoo.items()}
    assert len({round(p, 9) for p in ps.values()}) == len(ZOO), ps
    assert len({m.version for m in zoo.values()}) == len(ZOO)


# ---------------------------------------------------------------- the promotion gate

def overfit_model(btc_1h):
    """A logistic regression honestly made to overfit: 1,200 candles (about 800 training samples),
    21 feature rows of lags (over 400 inputs), weak regularisation (C=10) and no calibration:
    it fits its training split well and its confident probabilities mislead on unseen candles."""
    from botcore.model.training import TrainConfig, train_model
    cfg = TrainConfig(model_type='logistic', lags=20, C=10.0, calibration='none')
    return train_model(btc_1h.iloc[-1200:], cfg, 'BTCUSDT', '1h', progress=False)


def test_refused_model_is_kept_but_not_served(service, zoo, btc_1h):
    from botcore.model.registry import PromotionRefused
    before = serve(service, zoo['logistic'])
    bad = overfit_model(btc_1h)
    m = bad.meta['metrics']
    mine, majority = m['test']['log_loss'], m['baselines']['majority class']['log_loss']
    assert m['train']['log_loss'] < majority < mine     # overfit: worse than a constant on test
    with pytest.raises(PromotionRefused, match='worse than the majority class') as e:
        service.registry.promote(bad)
    assert f'{mine:.5f}' in str(e.value) and f'{majority:.5f}' in str(e.value)
    assert isinstance(e.value, ValueError)
    assert bad.version in service.registry.versions()          # saved, for a look
    assert service.registry.current() == before['version']     # but not promoted
    time.sleep(2.5)                                            # the service's watcher looks
    after = info(service)
    assert after['version'] == before['version'] and after['model_type'] == 'logistic'
    r = analyze(service, btc_1h.iloc[-SENT:])
    assert r.status_code == 200 and r.json()['model_version'] == before['version']


# ---------------------------------------------------------------- save and load

@pytest.mark.parametrize('name', list(ZOO))
def test_save_load_round_trip_gives_identical_probabilities(tmp_path, zoo, btc_1h, name):
    from botcore.core import Timeframe
    from botcore.model.registry import ModelRegistry
    from botcore.model.samples import segment_features
    model = zoo[name]
    registry = ModelRegistry(tmp_path / 'models')
    registry.save(model)
    loaded = registry.load(model.version)
    assert loaded.model_type == model.model_type and loaded.meta == model.meta
    f = segment_features(btc_1h.iloc[-600:], Timeframe.parse('1h'), model.features)
    p = model.predict_proba(f)
    assert np.isfinite(p).sum() >= 600 - model.warmup - model.window
    np.testing.assert_array_equal(loaded.predict_proba(f), p)
    np.testing.assert_array_equal(loaded.predict_proba(f, raw=True), model.predict_proba(f, raw=True))


# ---------------------------------------------------------------- a multi-timeframe model's candles

def test_mtf_model_needs_more_candles(service, zoo, btc_1h):
    model = zoo['lightgbm-mtf']
    base = serve(service, zoo['lightgbm'])['min_candles']
    needed = serve(service, model)['min_candles']
    assert needed > base            # the higher timeframes' features need a longer history
    r = analyze(service, btc_1h.iloc[-(needed - 1):])
    assert r.status_code == 422, r.text
    detail = r.json()['detail']
    assert detail[0]['loc'] == ['body', 'candles'] and str(needed) in detail[0]['msg']
    r = analyze(service, btc_1h.iloc[-base:])        # enough for the base model: not for this one
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'candles']
    r = analyze(service, btc_1h.iloc[-needed:])
    assert r.status_code == 200, r.text
    assert r.json()['model_type'] == 'lightgbm' and r.json()['model_version'] == model.version
    assert math.isfinite(r.json()['probability'])


def test_every_entry_point_offers_the_whole_zoo():
    "The service's /train, the dashboard's training form: every type, the default model's first."
    import typing
    from botcore.api.ai.schemas import TrainRequest
    from botcore.dashboard.monitor_page import MODEL_TYPES as offered
    from botcore.model.training import DEFAULT_MODEL, MODEL_TYPES
    (literal,) = [a for a in typing.get_args(TrainRequest.model_fields['model_type'].annotation) if a is not type(None)]
    assert set(typing.get_args(literal)) == set(MODEL_TYPES) == set(offered)
    assert offered[0] == DEFAULT_MODEL['model_type']
