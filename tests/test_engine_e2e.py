"""The engine end to end over real HTTP on loopback: the AI service, the engine and its paper exchange.

Two real uvicorn servers run as subprocesses: `botcore.api.ai.app:app` serving a small LSTM trained by the
fixture on real BTCUSDT 1h candles, and `botcore.api.engine:app` replaying real BTCUSDT 1h candles at
20 candles/s, asking that service for every signal over HTTP with the inter-service token.

The AI service's thresholds are set to 0.5 / 0.49 and the engine's confidence threshold to 0.5, so that
the small model's signals trade often; stop-loss and take-profit are 0.5% so positions close within a
few candles. What is checked is what a user of the dashboard would check:
- a signal leads to a trade, the trade shows in /api/positions, WebSocket clients receive
  `TradeExecuted` and `PositionUpdate`, and `/close` closes it with the right PnL;
- with the AI service stopped the engine reports `degraded` and opens nothing, and recovers when it returns;
- SIGKILL and restart lose nothing: every trade recorded before the kill is there after it, unchanged,
  the restarted engine carries on, and no order was sent twice.
"""
import asyncio, json, sqlite3, time
from collections import Counter

import httpx
import pytest
import websockets

from botcore.core import Side
from botcore.strategy.rules import fill
from support import UvicornServer, clean_env, wait_until

INTER, ENGINE_KEY = 'inter-service-' + 'i' * 32, 'engine-key-' + 'e' * 32
AUTH = {'Authorization': f'Bearer {ENGINE_KEY}'}
FEE, SLIP = 0.001, 0.0005
pytestmark = pytest.mark.timeout(600)


def ai_env():
    return clean_env(INTER_SERVICE_TOKEN=INTER, AI_API_KEY='ai-key-' + 'a' * 32,
                     BOTCORE_AI__LONG_THRESHOLD='0.5', BOTCORE_AI__SHORT_THRESHOLD='0.49', BOTCORE_AI__CACHE_PREDICTIONS='false')


def engine_env(ai_url: str, speed: float = 20):
    return clean_env(INTER_SERVICE_TOKEN=INTER, ENGINE_API_KEY=ENGINE_KEY, PYTHON_AI_SERVICE_URL=ai_url,
                     BOTCORE_MARKET_DATA__SYMBOLS='["BTCUSDT"]', BOTCORE_MARKET_DATA__TIMEFRAME='1h', BOTCORE_MARKET_DATA__REPLAY_SPEED=str(speed), BOTCORE_MARKET_DATA__REPLAY_CANDLES='3000',
                     BOTCORE_MARKET_DATA__CONFIDENCE_THRESHOLD='0.5',
                     BOTCORE_TRADING__STOP_LOSS_PCT='0.5', BOTCORE_TRADING__TAKE_PROFIT_PCT='0.5',
                     BOTCORE_TRADING__COOLDOWN_LOSSES='0', BOTCORE_TRADING__DAILY_LOSS_LIMIT_PCT='0',
                     BOTCORE_TRADING__HEALTH_CHECK_SECONDS='0.3', BOTCORE_TRADING__SIGNAL_RETRIES='1',
                     BOTCORE_TRADING__SIGNAL_RETRY_DELAY_SECONDS='0.1', BOTCORE_TRADING__SIGNAL_TIMEOUT_SECONDS='5',
                     BOTCORE_TRADING__CHECKPOINT_SECONDS='0.2')


@pytest.fixture(scope='module')
def ai(ai_dir):
    "The AI service serving conftest's small LSTM from `ai_dir`."
    server = UvicornServer('botcore.api.ai.app:app', ai_dir, ai_env(), name='ai')
    yield server
    server.stop()
    assert 'Traceback' not in server.logs(), server.logs()[-3000:]


@pytest.fixture(scope='module')
def engine(ai, tmp_path_factory):
    d = tmp_path_factory.mktemp('engine')
    server = UvicornServer('botcore.api.engine:app', d, engine_env(ai.url), name='engine')
    server.http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    yield server
    server.http.close()
    server.stop()


async def collect(url: str, until, timeout: float = 60) -> list[dict]:
    "WebSocket messages from /ws until `until(messages)` holds."
    got = []
    async with websockets.connect(url.replace('http', 'ws') + f'/ws?token={ENGINE_KEY}') as ws:
        deadline = time.monotonic() + timeout
        while not until(got):
            got.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))))
    return got


# ---------------------------------------------------------------- a signal leads to a trade

def test_running_with_the_ai_service(engine):
    st = wait_until(lambda: (s := engine.http.get('/api/status').json())['candles_processed'] > 0 and s, what='first candle')
    assert st['status'] == 'running' and st['ai_service'] == 'up' and st['mode'] == 'paper'
    assert set(st) >= {'status', 'uptime', 'active_positions', 'total_trades', 'total_pnl'}
    sig = wait_until(lambda: engine.http.get('/api/signals').json(), what='an AI signal')[0]
    assert sig['model_type'] == 'lstm' and sig['signal'] in ('long', 'short', 'neutral') and 0 <= sig['probability'] <= 1


def test_signal_trade_position_websocket_and_close(engine):
    # WebSocket clients see the trade and the position it opened
    msgs = asyncio.run(collect(engine.url, lambda m: any(x['type'] == 'TradeExecuted' and x['data']['action'] == 'open' for x in m)
                                                     and any(x['type'] == 'PositionUpdate' for x in m)))
    types = Counter(m['type'] for m in msgs)
    assert types['BotStatusUpdate'] >= 1 and types['AISignalReceived'] >= 1
    opened = next(m['data'] for m in msgs if m['type'] == 'TradeExecuted' and m['data']['action'] == 'open')
    assert set(opened) >= {'symbol', 'side', 'quantity', 'price', 'timestamp'} and opened['symbol'] == 'BTCUSDT'

    # an open position shows in /api/positions; close it by hand; the PnL is the fills' PnL net of both fees
    for _ in range(20):
        pos = wait_until(lambda: engine.http.get('/api/positions').json(), what='an open position')[0]
        assert set(pos) >= {'symbol', 'side', 'size', 'entry_price', 'current_price', 'unrealized_pnl', 'timestamp'}
        r = engine.http.post('/api/positions/BTCUSDT/close')
        if r.status_code == 404: continue            # the stop or target closed it first: take the next one
        assert r.status_code == 200, r.text
        closed = r.json()
        break
    else: pytest.fail('never managed to close a position by hand')
    assert closed['message'] == 'Position closed'
    recent = engine.http.get('/api/trades', params={'limit': 50}).json()['trades']     # the replay goes on: others may follow
    [trade] = [t for t in recent if t['exit_reason'] == 'manual' and t['exit_price'] == pytest.approx(closed['exit_price'])]
    side = Side(trade['side'])
    gross = side.sign * (trade['exit_price'] - trade['entry_price']) * trade['size']
    entry_fee = fill(trade['entry_price'] / (1 + side.sign * SLIP), side, trade['size'])[1]   # the fee of that fill
    exit_fee = trade['exit_price'] * trade['size'] * FEE
    assert closed['pnl'] == pytest.approx(gross - entry_fee - exit_fee, rel=1e-9)
    assert trade['pnl'] == pytest.approx(closed['pnl'], rel=1e-12)
    r = engine.http.post('/api/positions/ETHUSDT/close')                 # a symbol the engine holds nothing in
    assert r.status_code == 404 and 'ETHUSDT' in r.json()['message'], r.text


def test_bad_input_gets_a_4xx_naming_the_field(engine):
    r = engine.http.put('/api/config', json={'take_profit_pct': 'lots'})
    assert r.status_code == 422 and 'take_profit_pct' in r.json()['message']
    r = engine.http.put('/api/config', json={'max_positions': 2})
    assert r.status_code == 422 and 'max_positions' in r.json()['message']
    assert engine.http.get('/api/trades', params={'limit': 0}).status_code == 422
    assert engine.http.post('/api/positions/not-a-symbol!/close').status_code == 422
    assert httpx.get(f'{engine.url}/api/status').status_code == 401
    assert httpx.get(f'{engine.url}/api/status', headers={'Authorization': 'Bearer wrong'}).status_code == 401
    assert engine.http.put('/api/config', json={'max_open_positions': 2}).json()['max_open_positions'] == 2
    assert engine.http.get('/api/config').json()['max_open_positions'] == 2


# ---------------------------------------------------------------- what a trader's screen reads

def test_candles_thresholds_and_a_model_swap_reach_the_feed(engine, ai, ai_dir, small_lstm):
    "CandleClosed for each candle, signals with the AI service's own thresholds, a model swap as an event."
    msgs = asyncio.run(collect(engine.url, lambda m: {'CandleClosed', 'AISignalReceived'} <= {x['type'] for x in m}))
    candle = next(m['data'] for m in msgs if m['type'] == 'CandleClosed')
    assert candle['symbol'] == 'BTCUSDT' and candle['low'] <= candle['close'] <= candle['high']
    window = engine.http.get('/api/candles', params={'symbol': 'BTCUSDT', 'limit': 1000}).json()
    assert len(window) == 200 and window[-1]['timestamp'] >= window[0]['timestamp']
    sig = next(m['data'] for m in msgs if m['type'] == 'AISignalReceived')
    # the service's thresholds (0.5 / 0.49 in its settings), not the engine's defaults; the engine's gate
    assert (sig['long_threshold'], sig['short_threshold'], sig['confidence_threshold']) == (0.5, 0.49, 0.5)
    stored = engine.http.get('/api/signals', params={'limit': 1}).json()[0]
    assert (stored['long_threshold'], stored['short_threshold']) == (0.5, 0.49)
    assert engine.http.get('/api/candles', params={'symbol': 'ETHUSDT'}).status_code == 404

    from botcore.model.registry import ModelRegistry
    from botcore.model.trained import TrainedModel
    served = httpx.get(f'{ai.url}/health').json()['model_version']
    other = TrainedModel(small_lstm.net, small_lstm.meta | {'version': served + '-b'})
    ModelRegistry(ai_dir / 'models').promote(other, force=True)       # the service serves it within a look
    swap = wait_until(lambda: [e for e in engine.http.get('/api/events', params={'limit': 200}).json()
                               if e['kind'] == 'model_swap'], timeout=60, what='a model_swap event')[0]
    assert served + '-b' in swap['message'] and swap['data']['previous'] == served


# ---------------------------------------------------------------- the AI service goes away and comes back

def test_degraded_without_the_ai_service_then_recovers(engine, ai):
    ai.stop()
    try:
        wait_until(lambda: engine.http.get('/api/status').json()['status'] == 'degraded', timeout=30, what='degraded')
        opens_before = sum(1 for _ in orders(engine, 'o'))
        candles = engine.http.get('/api/status').json()['candles_processed']
        wait_until(lambda: engine.http.get('/api/status').json()['candles_processed'] >= candles + 20, what='20 more candles')
        assert engine.http.get('/api/status').json()['status'] == 'degraded'
        assert sum(1 for _ in orders(engine, 'o')) == opens_before       # nothing new opened while degraded
        events = engine.http.get('/api/events', params={'limit': 100}).json()
        assert any(e['kind'] == 'status' and e['message'].startswith('degraded') for e in events)
    finally:
        ai.start()
    wait_until(lambda: engine.http.get('/api/status').json()['status'] == 'running', timeout=30, what='running again')
    n = engine.http.get('/api/signals', params={'limit': 1}).json()[0]['received_at']
    wait_until(lambda: engine.http.get('/api/signals', params={'limit': 1}).json()[0]['received_at'] > n, what='signals again')


def orders(engine, kind: str):
    "Client order ids of one kind ('o' opens, 'c' closes, 'm' manual) in the engine's SQLite store."
    with sqlite3.connect(engine.data_dir / 'botcore.db') as db:
        for (cid,) in db.execute('select client_order_id from orders'):
            if cid.endswith('-' + kind): yield cid


# ---------------------------------------------------------------- SIGKILL and restart

def test_sigkill_and_restart_lose_nothing(engine):
    wait_until(lambda: engine.http.get('/api/trades').json()['total'] >= 3, what='three trades')
    before = engine.http.get('/api/trades', params={'limit': 1000}).json()['trades']
    engine.http.close()
    engine.kill()
    with sqlite3.connect(engine.data_dir / 'botcore.db') as db:
        stored_after_kill = db.execute('select count(*) from trades').fetchone()[0]
        last_candle = json.loads(db.execute("select state from engine_state where key='engine'").fetchone()[0])['symbols']['BTCUSDT']['last_candle_ms']
    assert stored_after_kill >= len(before)
    engine.start()                                          # same port, same data dir
    engine.http = httpx.Client(base_url=engine.url, headers=AUTH, timeout=30)
    st = wait_until(lambda: (s := engine.http.get('/api/status').json())['candles_processed'] > 0 and s, what='resumed')
    assert st['total_trades'] >= stored_after_kill
    after = {t['id']: t for t in engine.http.get('/api/trades', params={'limit': 1000}).json()['trades']}
    for t in before: assert after[t['id']] == t             # nothing lost, nothing changed
    wait_until(lambda: engine.http.get('/api/trades').json()['total'] > stored_after_kill, timeout=90, what='a trade after the restart')
    with sqlite3.connect(engine.data_dir / 'botcore.db') as db:
        fills = Counter(cid for (cid,) in db.execute('select client_order_id from fills'))
        signal_candles = Counter(ms for (ms,) in db.execute('select candle_ms from signals'))
        first_after = db.execute('select min(candle_ms) from signals where candle_ms > ?', (last_candle,)).fetchone()[0]
    assert max(fills.values()) == 1                         # no order filled twice
    assert max(signal_candles.values()) == 1                # no candle's signal recorded twice
    assert first_after == last_candle + 3_600_000           # the replay resumed right after the checkpoint
