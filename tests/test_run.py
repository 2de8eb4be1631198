"""`botcore run`, the main job: the AI service, then the engine once the AI answers, then the dashboard once the engine does; one Ctrl-C stops all.

Runs the real console script in a subprocess with its own data dir and free loopback ports. The first test
promotes a small model there first and replays BTCUSDT 1h at 5 candles a second (the services' start and stop,
not the model); the second is `make run` as a new user meets it: the embedded defaults (BTCUSDT and ETHUSDT 5m
replayed at 10 candles a second, the default model trained on them, paper trading, SQLite) and a first trade
within a minute.
"""
import json
import signal
import socket
import sqlite3
import subprocess
import time
from contextlib import contextmanager

import httpx
import pytest

from support import botcore_script, clean_env, free_port
pytestmark = pytest.mark.timeout(600)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(('127.0.0.1', port)) != 0


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (got := check()): return got
        except (httpx.HTTPError, OSError, ValueError): pass   # not up yet, file not written yet
        time.sleep(0.3)
    raise TimeoutError(f'{what} not reached in {timeout}s')


@contextmanager
def botcore_run(tmp_path, env: dict, *args: str):
    "`botcore run` in `tmp_path`, its output in run.log; killed at the end if it still runs."
    log = open(tmp_path / 'run.log', 'wb')
    proc = subprocess.Popen([str(botcore_script()), 'run', *args], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def ctrl_c(proc):
    "Stop `botcore run` as Ctrl-C in its terminal does; it must exit cleanly."
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0


def test_botcore_run_starts_the_services_in_order_and_ctrl_c_stops_them(tmp_path, small_lstm):
    from botcore.model.registry import ModelRegistry
    model = small_lstm
    ModelRegistry(tmp_path / 'models').promote(model, force=True)   # the services' start, not the model
    ai_port, api_port, dash_port = free_port(), free_port(), free_port()
    env = clean_env(BOTCORE_DATA_DIR=str(tmp_path), HOME=str(tmp_path), BOTCORE_AI__PORT=str(ai_port),
                    BOTCORE_API__PORT=str(api_port), BOTCORE_DASHBOARD__PORT=str(dash_port),
                    BOTCORE_MARKET_DATA__SYMBOLS='["BTCUSDT"]', BOTCORE_MARKET_DATA__TIMEFRAME='1h', BOTCORE_MARKET_DATA__REPLAY_SPEED='5')
    with botcore_run(tmp_path, env) as proc:
        tokens = wait_for(lambda: json.loads((tmp_path / 'secrets.json').read_text()), 30, 'generated tokens')
        engine = httpx.Client(base_url=f'http://127.0.0.1:{api_port}', headers={'Authorization': f"Bearer {tokens['engine_api_key']}"})
        st = wait_for(lambda: (s := engine.get('/api/status').json())['candles_processed'] > 3 and s, 180, 'engine processing candles')
        assert st['status'] == 'running' and st['ai_service'] == 'up' and st['mode'] == 'paper' and st['source'] == 'replay'
        assert httpx.get(f'http://127.0.0.1:{ai_port}/health').json()['model_version'] == model.version
        signals = wait_for(lambda: engine.get('/api/signals').json(), 60, 'AI signals reaching the engine')
        assert signals[0]['model_type'] == 'lstm'
        wait_for(lambda: httpx.get(f'http://127.0.0.1:{dash_port}/health').status_code == 200, 120, 'the dashboard')
        page = httpx.get(f'http://127.0.0.1:{dash_port}/', params={'token': tokens['dashboard_session_secret']}, follow_redirects=True)
        assert page.status_code == 200 and 'voila' in page.text.lower()
        assert httpx.get(f'http://127.0.0.1:{dash_port}/voila/render/monitor.ipynb').status_code in (401, 403, 302)   # no token, no page
        seen = engine.get('/api/status').json()['candles_processed']
        engine.close()
        ctrl_c(proc)
    out = (tmp_path / 'run.log').read_text(errors='replace')
    assert 'Traceback' not in out, out[-3000:]
    assert out.index('AI signal service:') < out.index('trading engine:') < out.index('dashboard:') < out.index('stopped:')
    assert all(port_free(p) for p in (ai_port, api_port, dash_port)), 'a service is still listening'
    with sqlite3.connect(tmp_path / 'botcore.db') as db:    # the engine saved its checkpoint on the way out
        state = json.loads(db.execute("select state from engine_state where key='engine'").fetchone()[0])
        recorded = db.execute('select count(*) from signals').fetchone()[0]
    assert state['symbols']['BTCUSDT']['last_candle_ms'] > 0
    assert recorded >= seen - 1                              # every candle's signal up to the stop is kept


def test_a_fresh_make_run_trades_within_a_minute(tmp_path):
    """`make run` on a fresh data directory and nothing else: it trains the default model on the two
    symbols it trades (BTCUSDT and ETHUSDT 5m, pooled), replays candles after that model's validation
    data with the selected policy (fixed 0.6 / 0.4, thresholds untouched), and fills a first order
    within 60 s of the engine answering."""
    from support import ARTIFACTS
    ai_port, api_port = free_port(), free_port()
    env = clean_env(BOTCORE_DATA_DIR=str(tmp_path), HOME=str(tmp_path), BOTCORE_AI__PORT=str(ai_port),
                    BOTCORE_API__PORT=str(api_port))
    with botcore_run(tmp_path, env, '--no-dashboard') as proc:
        wait_for(lambda: httpx.get(f'http://127.0.0.1:{api_port}/health').status_code == 200, 420, 'the engine')
        up = time.monotonic()
        tokens = json.loads((tmp_path / 'secrets.json').read_text())
        engine = httpx.Client(base_url=f'http://127.0.0.1:{api_port}', headers={'Authorization': f"Bearer {tokens['engine_api_key']}"})
        st = engine.get('/api/status').json()
        assert (st['symbols'], st['timeframe'], st['source']) == (['BTCUSDT', 'ETHUSDT'], '5m', 'replay')
        assert engine.get('/api/config').json()['confidence_threshold'] == 0.6   # the policy's own line
        filled = wait_for(lambda: (s := engine.get('/api/status').json())['active_positions'] + s['total_trades'] and s,
                          75, 'a first trade')
        first = time.monotonic() - up
        signal_ = engine.get('/api/signals', params={'limit': 1}).json()[0]
        engine.close()
        ctrl_c(proc)
    out = (tmp_path / 'run.log').read_text(errors='replace')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / 'run-first-trade.json').write_text(json.dumps(dict(seconds=round(first, 1), status=filled)))
    assert 'Traceback' not in out, out[-3000:]
    assert 'training the default model (model_type=lightgbm, label=barrier) on BTCUSDT + ETHUSDT 5m' in out
    assert 'on candles it never learned from' in out                          # out of sample
    assert (signal_['long_threshold'], signal_['short_threshold']) == (0.6, 0.4)
    assert first <= 60, f'the first trade came {first:.0f} s after the engine was up'
