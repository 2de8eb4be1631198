"""The fixtures the test files share: the real bundled candles, a small trained LSTM, and an AI
data dir with that model promoted. Helpers that are not fixtures (ports, environments, servers)
are in support.py."""
import pytest

from botcore.data.candles import load_candles


@pytest.fixture(scope='session')
def btc_1h():
    "The real BTCUSDT 1h series (2017-08 to 2024-04, 58k candles). Copy it before changing it."
    return load_candles('BTCUSDT', '1h')


@pytest.fixture(scope='session')
def eth_5m():
    "The real ETHUSDT 5m series (72k candles of 2024). Shared: copy it before changing it."
    return load_candles('ETHUSDT', '5m')


@pytest.fixture(scope='session')
def small_lstm(btc_1h):
    "A real but small LSTM: 1 epoch on the last 2,500 BTCUSDT 1h candles (seconds to train)."
    from botcore.model.training import TrainConfig, train_model
    return train_model(btc_1h.iloc[-2500:], TrainConfig(epochs=1), 'BTCUSDT', '1h', progress=False)


@pytest.fixture(scope='module')
def ai_dir(tmp_path_factory, small_lstm):
    "A fresh data dir with `small_lstm` promoted in its model dir (a module may promote more)."
    from botcore.model.registry import ModelRegistry
    d = tmp_path_factory.mktemp('ai')
    # force: this one-epoch model tests the serving path, not the model; the gate has its own tests
    ModelRegistry(d / 'models').promote(small_lstm, force=True)
    return d
