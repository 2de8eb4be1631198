"""`botcore run`, the main job: the AI service, then the engine once the AI answers, then the dashboard once the engine does; one Ctrl-C stops all.

Runs the real console script in a subprocess with its own data dir (a small model promoted there first,
so that the run does not spend minutes training the default one), free loopback ports, and the embedded
defaults otherwise: the replayed BTCUSDT 1h candles at about one a second, paper trading, SQLite.
"""
import json
import signal
import socket
import sqlite3
import subprocess
import time

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


def test_botcore_run_starts_the_services_in_order_and_ctrl_c_stops_them(tmp_path, small_lstm):
    from botcore.model.registry import ModelRegistry
    model = small_lstm
    ModelRegistry(tmp_path / 'models').promote(model, force=True)   # the services' start, not the model
    ai_port, api_port, dash_port = free_port(), free_port(), free_port()
    env = clean_env(BOTCORE_DATA_DIR=str(tmp_path), HOME=str(tmp_path), BOTCORE_AI__PORT=str(ai_port),
                    BOTCORE_API__PORT=str(api_port), BOTCORE_DASHBOARD__PORT=str(dash_port),
                    BOTCORE_MARKET_DATA__REPLAY_SPEED='5')
    log = open(tmp_path / 'run.log', 'wb')
    proc = subprocess.Popen([str(botcore_script()), 'run'], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
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
        proc.send_signal(signal.SIGINT)                       # what Ctrl-C in the terminal sends
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    out = (tmp_path / 'run.log').read_text(errors='replace')
    assert 'Traceback' not in out, out[-3000:]
    assert out.index('AI signal service:') < out.index('trading engine:') < out.index('dashboard:') < out.index('stopped:')
    assert all(port_free(p) for p in (ai_port, api_port, dash_port)), 'a service is still listening'
    with sqlite3.connect(tmp_path / 'botcore.db') as db:    # the engine saved its checkpoint on the way out
        state = json.loads(db.execute("select state from engine_state where key='engine'").fetchone()[0])
        recorded = db.execute('select count(*) from signals').fetchone()[0]
    assert state['symbols']['BTCUSDT']['last_candle_ms'] > 0
    assert recorded >= seen - 1                              # every candle's signal up to the stop is kept
