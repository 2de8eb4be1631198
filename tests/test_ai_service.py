"""The AI service over HTTP: a real uvicorn on 127.0.0.1, real BTCUSDT 1h candles, a real training job.

Two servers run as subprocesses (`python -m uvicorn botcore.api.ai.app:app`), each with its own data
directory, tokens from the environment, and a working directory free of any botcore.toml:
- `served`: conftest's small LSTM (1 epoch on a slice of the real series), promoted into its model_dir
  before the server starts;
- `empty`: no model at all (503 on /analyze).
Every endpoint, every auth case and every bad-input case is exercised with httpx; a real
`POST /train` job hot-swaps the model while a thread keeps calling /analyze.
"""
import json, math, threading, time
from pathlib import Path

import httpx
import numpy as np
import pytest

from botcore.data.candles import candles_to_json
from support import UvicornServer, clean_env, free_port

ENGINE_TOKEN, OPERATOR_KEY = 'engine-token-' + 'e' * 30, 'operator-key-' + 'o' * 30
ENGINE, OPERATOR = {'Authorization': f'Bearer {ENGINE_TOKEN}'}, {'Authorization': f'Bearer {OPERATOR_KEY}'}
SEED_SIGNAL_FIELDS = {'signal', 'confidence', 'probability', 'timestamp', 'model_type', 'symbol', 'timeframe'}
SEED_INFO_FIELDS = {'model_type', 'model_loaded', 'training_samples', 'validation_samples', 'feature_count', 'training_accuracy'}


# ---------------------------------------------------------------- fixtures: data, a model, servers

@pytest.fixture(scope='module')
def window(btc_1h):
    "The last 100 real candles in the seed's JSON shape."
    return candles_to_json(btc_1h.iloc[-100:])


def tiny_model(btc_1h, rows: int = 2500, seed: int = 0):
    "A real but small LSTM: 1 epoch on the last `rows` candles of BTCUSDT 1h."
    from botcore.model.training import TrainConfig, train_model
    return train_model(btc_1h.iloc[-rows:], TrainConfig(model_type='lstm', epochs=1, seed=seed), 'BTCUSDT', '1h', progress=False)


class Server(UvicornServer):
    "`uvicorn botcore.api.ai.app:app` in a subprocess on a free loopback port, tokens from the environment."
    def __init__(self, data_dir: Path):
        super().__init__('botcore.api.ai.app:app', data_dir, clean_env(INTER_SERVICE_TOKEN=ENGINE_TOKEN, AI_API_KEY=OPERATOR_KEY),
                         name='server', health_timeout=120)


@pytest.fixture(scope='module')
def trained(ai_dir):
    "conftest's data dir whose model_dir holds the promoted small LSTM; (data_dir, version, registry)."
    from botcore.model.registry import ModelRegistry
    registry = ModelRegistry(ai_dir / 'models')
    return ai_dir, registry.current(), registry


@pytest.fixture(scope='module')
def served(trained):
    "A running service with the pre-trained model; yields an httpx.Client bound to it."
    launched = time.monotonic()
    server = Server(trained[0])
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.server, client.launched = server, launched
            yield client
    finally:
        server.stop()
    assert 'Traceback' not in server.logs(), server.logs()


@pytest.fixture(scope='module')
def empty(tmp_path_factory):
    "A running service with an empty model dir."
    server = Server(tmp_path_factory.mktemp('empty'))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client: yield client
    finally: server.stop()
    assert 'Traceback' not in server.logs(), server.logs()


def analyze_body(candles, symbol='BTCUSDT', timeframe='1h') -> dict:
    return {'symbol': symbol, 'timeframe': timeframe, 'candles': candles}


def wait_job(client, job_id: str, timeout: float = 150) -> dict:
    "Poll GET /train/{job_id} until the job ends; every answer is a valid job."
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        r = client.get(f'/train/{job_id}', headers=OPERATOR)
        assert r.status_code == 200, r.text
        job = r.json()
        seen.append(job['status'])
        assert job['status'] in ('queued', 'running', 'succeeded', 'failed')
        assert 0 <= job['progress']['fraction'] <= 1
        if job['status'] in ('succeeded', 'failed'): return job | {'seen': seen}
        time.sleep(0.2)
    raise TimeoutError(f'job {job_id} still {seen[-1]} after {timeout}s')


# ---------------------------------------------------------------- /health and auth

def test_health_needs_no_auth(served, trained):
    uptimes = []
    for headers in ({}, {'Authorization': 'Bearer wrong'}):
        r = served.get('/health', headers=headers)
        assert r.status_code == 200
        h = r.json()
        assert h['status'] == 'ok' and h['model_loaded'] is True and h['model_version'] == trained[1]
        assert 0 < h['uptime'] <= time.monotonic() - served.launched      # seconds since this fixture started it
        uptimes.append(h['uptime'])
        time.sleep(0.01)
    assert uptimes[1] > uptimes[0]


PROTECTED = [('POST', '/analyze'), ('GET', '/model/info'), ('GET', '/cache/stats'), ('POST', '/train'),
             ('GET', '/train'), ('GET', '/train/no-such-job')]
BAD_AUTH = {
    'no header': {},
    'wrong scheme': {'Authorization': f'Basic {ENGINE_TOKEN}'},
    'token without scheme': {'Authorization': ENGINE_TOKEN},
    'wrong token': {'Authorization': 'Bearer not-the-token'},
    'empty bearer': {'Authorization': 'Bearer'},
    'token prefix': {'Authorization': f'Bearer {ENGINE_TOKEN[:-1]}'},
}


def request(client, method, path, window, headers):
    body = analyze_body(window) if path == '/analyze' else {'symbol': 'BTCUSDT', 'retrain': False} if path == '/train' else None
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize('method,path', PROTECTED, ids=[f'{m} {p}' for m, p in PROTECTED])
@pytest.mark.parametrize('case', list(BAD_AUTH))
def test_bad_auth_gets_401(served, window, method, path, case):
    r = request(served, method, path, window, BAD_AUTH[case])
    assert r.status_code == 401, r.text
    assert r.headers['www-authenticate'].startswith('Bearer')
    assert 'Traceback' not in r.text and r.json()['message']


# A good token passes auth: /train with retrain=false is refused (409, a model is served) and an unknown job is 404,
# so no job starts here.
GOOD_STATUS = {('POST', '/analyze'): 200, ('GET', '/model/info'): 200, ('GET', '/cache/stats'): 200, ('POST', '/train'): 409,
               ('GET', '/train'): 200, ('GET', '/train/no-such-job'): 404}


@pytest.mark.parametrize('method,path', PROTECTED, ids=[f'{m} {p}' for m, p in PROTECTED])
@pytest.mark.parametrize('who', ['inter-service token', 'AI API key'])
def test_good_tokens_pass(served, window, method, path, who):
    r = request(served, method, path, window, ENGINE if who == 'inter-service token' else OPERATOR)
    assert r.status_code == GOOD_STATUS[method, path], r.text


# ---------------------------------------------------------------- /analyze

def test_analyze_answers_the_seed_contract(served, window, trained):
    r = served.post('/analyze', json=analyze_body(window), headers=ENGINE)
    assert r.status_code == 200, r.text
    s = r.json()
    assert SEED_SIGNAL_FIELDS <= set(s)
    assert s['signal'] in ('long', 'short', 'neutral')
    assert 0 <= s['confidence'] <= 100 and 0 <= s['probability'] <= 1
    assert s['timestamp'].endswith('Z') and s['model_type'] == 'lstm'
    assert (s['symbol'], s['timeframe']) == ('BTCUSDT', '1h')
    assert s['model_version'] == served.get('/health').json()['model_version']


def test_analyze_is_deterministic_and_symbol_is_case_blind(served, btc_1h):
    w = candles_to_json(btc_1h.iloc[-300:-200])
    a = served.post('/analyze', json=analyze_body(w), headers=ENGINE).json()
    b = served.post('/analyze', json=analyze_body(w, symbol='btcusdt'), headers=ENGINE).json()
    assert a['probability'] == b['probability'] and b['symbol'] == 'BTCUSDT'


def test_cache_hit_is_counted(served, btc_1h):
    w = candles_to_json(btc_1h.iloc[-420:-320])   # a window no other test sends
    before = served.get('/cache/stats', headers=OPERATOR).json()
    assert before['enabled'] is True and before['ttl_seconds'] == 300
    first = served.post('/analyze', json=analyze_body(w), headers=ENGINE).json()
    second = served.post('/analyze', json=analyze_body(w), headers=OPERATOR).json()
    assert (first['cached'], second['cached']) == (False, True)
    assert {k: first[k] for k in SEED_SIGNAL_FIELDS} == {k: second[k] for k in SEED_SIGNAL_FIELDS}
    after = served.get('/cache/stats', headers=OPERATOR).json()
    assert (after['hits'] - before['hits'], after['misses'] - before['misses']) == (1, 1)
    assert served.get('/model/info', headers=OPERATOR).json()['cache']['hits'] == after['hits']
    moved = w[:-1] + [{**w[-1], 'close': w[-1]['close'] + 0.01, 'high': max(w[-1]['high'], w[-1]['close'] + 0.01)}]
    assert served.post('/analyze', json=analyze_body(moved), headers=ENGINE).json()['cached'] is False


def broken(window, i, **change):
    return window[:i] + [{**window[i], **change}] + window[i + 1:]


def with_token(window, i, field, token):
    "The request body as text with a non-JSON token (NaN, Infinity) as candle i's field."
    return json.dumps(analyze_body(broken(window, i, **{field: 987654321.125}))).replace('987654321.125', token)


def bad_inputs(w):
    "(name, body as text, loc of the first error) for every kind of bad input."
    j = lambda candles, **kw: json.dumps(analyze_body(candles) | kw)
    swapped = w[:10] + [w[11], w[10]] + w[12:]
    off_4h = next(i for i, c in enumerate(w) if c['timestamp'] % (4 * 3_600_000))
    truncated = '{"symbol": "BTCUSDT", '
    try: json.loads(truncated)
    except json.JSONDecodeError as e: bad_json_pos = e.pos
    return [
        ('99 candles', j(w[:99]), ['body', 'candles']),
        ('no candles', j([]), ['body', 'candles']),
        ('unsorted', j(swapped), ['body', 'candles', 11, 'timestamp']),
        ('duplicate timestamp', j(broken(w, 20, timestamp=w[19]['timestamp'])), ['body', 'candles', 20, 'timestamp']),
        ('off-grid timestamp', j(broken(w, 30, timestamp=w[30]['timestamp'] + 60_000)), ['body', 'candles', 30, 'timestamp']),
        ('high below low', j(broken(w, 5, high=w[5]['low'] - 1)), ['body', 'candles', 5, 'high']),
        ('high below close', j(broken(w, 6, high=w[6]['close'] - 1, low=min(w[6]['low'], w[6]['close'] - 2))), ['body', 'candles', 6, 'high']),
        ('low above open', j(broken(w, 7, low=max(w[7]['open'], w[7]['close']) + 1, high=max(w[7]['high'], w[7]['open']) + 2)), ['body', 'candles', 7, 'low']),
        ('NaN close', with_token(w, 40, 'close', 'NaN'), ['body', 'candles', 40, 'close']),
        ('Infinity volume', with_token(w, 41, 'volume', 'Infinity'), ['body', 'candles', 41, 'volume']),
        ('-Infinity low', with_token(w, 42, 'low', '-Infinity'), ['body', 'candles', 42, 'low']),
        ('NaN timestamp', with_token(w, 43, 'timestamp', 'NaN'), ['body', 'candles', 43, 'timestamp']),
        ('negative volume', j(broken(w, 50, volume=-1.5)), ['body', 'candles', 50, 'volume']),
        ('zero price', j(broken(w, 51, open=0)), ['body', 'candles', 51, 'open']),
        ('missing field', j(w[:60] + [{k: v for k, v in w[60].items() if k != 'close'}] + w[61:]), ['body', 'candles', 60, 'close']),
        ('price as text', j(broken(w, 61, close='high')), ['body', 'candles', 61, 'close']),
        ('unknown timeframe', j(w, timeframe='7m'), ['body', 'timeframe']),
        ('timeframe grid mismatch', j(w, timeframe='4h'), ['body', 'candles', off_4h, 'timestamp']),
        ('bad symbol', j(w, symbol='BTC/USDT'), ['body', 'symbol']),
        ('missing symbol', json.dumps({'timeframe': '1h', 'candles': w}), ['body', 'symbol']),
        ('not JSON', truncated, ['body', bad_json_pos]),
    ]


# A server's call (no Origin header) takes the AI service's short way in; a browser's (with one) goes through
# FastAPI's middleware and CORS. Both must answer every bad input the same way.
CALLERS = {'server': {}, 'browser': {'Origin': 'http://localhost:3000'}}


@pytest.mark.parametrize('caller', list(CALLERS))
def test_every_bad_input_gets_422_naming_the_field(served, window, caller):
    for name, text, loc in bad_inputs(window):
        r = served.post('/analyze', content=text, headers=ENGINE | CALLERS[caller] | {'Content-Type': 'application/json'})
        assert r.status_code == 422, (name, r.status_code, r.text[:300])
        body = r.json()
        assert body['detail'][0]['loc'] == loc, (name, body['detail'][:2])
        assert body['message'] and 'Traceback' not in r.text, name
        if isinstance(loc[-1], str) and loc[-1] != 'candles': assert loc[-1] in body['message'], (name, body['message'])


def test_nan_is_never_echoed_as_invalid_json(served, window):
    r = served.post('/analyze', content=with_token(window, 3, 'close', 'NaN'), headers=ENGINE | {'Content-Type': 'application/json'})
    assert r.status_code == 422
    json.loads(r.text, parse_constant=lambda c: pytest.fail(f'response has the non-JSON token {c}'))


@pytest.mark.parametrize('caller', list(CALLERS))
def test_oversized_body_gets_413(served, window, caller):
    big = json.dumps(analyze_body(window * 600)).encode()     # ~6.6 MB, over the 5 MB limit
    assert len(big) > 5 * 2**20
    headers = ENGINE | CALLERS[caller] | {'Content-Type': 'application/json'}
    r = served.post('/analyze', content=big, headers=headers)
    assert r.status_code == 413, r.text[:200]
    # The same body streamed in chunks with no Content-Length: the limit counts the bytes as they arrive.
    chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))
    r = served.post('/analyze', content=chunks, headers=headers)
    assert r.status_code == 413 and 'content-length' not in r.request.headers, r.text[:200]
    assert served.get('/health').status_code == 200


def test_a_browser_gets_the_same_signal_with_cors(served, btc_1h):
    w = analyze_body(candles_to_json(btc_1h.iloc[-520:-420]))   # a window no other test sends
    server = served.post('/analyze', json=w, headers=ENGINE)
    browser = served.post('/analyze', json=w, headers=ENGINE | CALLERS['browser'])
    assert (server.status_code, browser.status_code) == (200, 200), browser.text
    assert browser.headers['access-control-allow-origin'] == 'http://localhost:3000'
    assert 'access-control-allow-origin' not in server.headers
    assert {**browser.json(), 'cached': False} == server.json()


def test_concurrent_requests_get_what_each_gets_alone(served, btc_1h, trained):
    """Windows of requests in flight together are scored in shared network passes: each answer must be the probability
    the served model gives that window in-process, bit for bit, however the requests happened to be grouped."""
    from botcore.model.registry import ModelRegistry
    from botcore.model.signals import Analyzer
    version = served.get('/health').json()['model_version']
    analyzer = Analyzer(ModelRegistry(trained[0] / 'models').load(version))
    windows = [btc_1h.iloc[-1000 - 13 * k:-900 - 13 * k] for k in range(24)]    # windows no other test sends
    before = served.get('/model/info', headers=OPERATOR).json()['scoring']
    answers = [None] * len(windows)

    def ask(i):
        with httpx.Client(base_url=str(served.base_url), timeout=60) as client:
            answers[i] = client.post('/analyze', json=analyze_body(candles_to_json(windows[i])), headers=ENGINE)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(windows))]
    for t in threads: t.start()
    for t in threads: t.join()
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200][:1]
    for r, w in zip(answers, windows):
        assert (r.json()['model_version'], r.json()['cached']) == (version, False)
        assert r.json()['probability'] == analyzer.analyze(w, 'BTCUSDT', '1h').probability
    after = served.get('/model/info', headers=OPERATOR).json()['scoring']
    assert after['windows'] - before['windows'] == len(windows)
    assert 1 <= after['passes'] - before['passes'] <= len(windows)     # how they were grouped is up to timing


def test_cors_allows_the_configured_dashboard_origin(served):
    pre = lambda origin: served.options('/analyze', headers={'Origin': origin, 'Access-Control-Request-Method': 'POST',
                                                            'Access-Control-Request-Headers': 'authorization,content-type'})
    ok = pre('http://localhost:3000')
    assert ok.status_code == 200 and ok.headers['access-control-allow-origin'] == 'http://localhost:3000'
    assert 'access-control-allow-origin' not in pre('http://evil.example').headers


def test_unknown_paths_are_json_404(served):
    r = served.get('/nope', headers=ENGINE)
    assert r.status_code == 404 and r.json()['message']


# ---------------------------------------------------------------- no model

def test_no_model_gets_503_saying_how_to_train(empty, window):
    h = empty.get('/health').json()
    assert (h['model_loaded'], h['model_version']) == (False, None)
    r = empty.post('/analyze', json=analyze_body(window), headers=ENGINE)
    assert r.status_code == 503
    assert 'botcore train' in r.json()['message'] and 'POST /train' in r.json()['message']
    info = empty.get('/model/info', headers=OPERATOR).json()
    assert SEED_INFO_FIELDS <= set(info) and info['model_loaded'] is False
    # Bad input is still the caller's error, model or not.
    assert empty.post('/analyze', json=analyze_body(window[:50]), headers=ENGINE).status_code == 422


# ---------------------------------------------------------------- /model/info

def test_model_info_has_the_seed_fields_and_more(served, trained):
    info = served.get('/model/info', headers=ENGINE).json()
    assert SEED_INFO_FIELDS <= set(info)
    assert info['model_loaded'] is True and info['model_type'] == 'lstm'
    assert info['training_samples'] > 0 and info['validation_samples'] > 0 and info['feature_count'] >= 15
    assert 0 <= info['training_accuracy'] <= 1
    assert info['version'] == served.get('/health').json()['model_version']
    assert 'accuracy' in info['test_metrics'] and info['training_seconds'] > 0


# ---------------------------------------------------------------- /train

def test_train_refuses_bad_requests(served, window):
    r = served.post('/train', json={'symbol': 'BTCUSDT', 'retrain': False}, headers=OPERATOR)
    assert r.status_code == 409 and 'retrain' in r.json()['message']
    r = served.post('/train', json={'symbol': 'DOGEUSDT', 'retrain': True}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'symbol']
    r = served.post('/train', json={'model_type': 'svm', 'retrain': True}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'model_type']
    r = served.post('/train', json={'retrain': True, 'candles': broken(window, 3, volume=-1)}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'candles', 3, 'volume']
    r = served.post('/train', json={'retrain': True, 'epochs': 0}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'epochs']
    assert served.get('/train/does-not-exist', headers=OPERATOR).status_code == 404


class Hammer(threading.Thread):
    "Calls /analyze on distinct real windows (so the cache misses) until stopped; records every answer."
    def __init__(self, url, btc_1h):
        super().__init__(daemon=True)
        self.url, self.windows = url, [candles_to_json(btc_1h.iloc[-1100 + i:-1000 + i]) for i in range(0, 1000, 7)]
        self.stop, self.answers = threading.Event(), []

    def run(self):
        with httpx.Client(base_url=self.url, timeout=30) as c:
            i = 0
            while not self.stop.is_set():
                try:
                    r = c.post('/analyze', json=analyze_body(self.windows[i % len(self.windows)]), headers=ENGINE)
                    self.answers.append((r.status_code, r.json()['model_version'] if r.status_code == 200 else r.text[:200]))
                except Exception as e: self.answers.append((type(e).__name__, str(e)))
                i += 1


@pytest.mark.slow
def test_train_job_hot_swaps_the_model_while_analyze_keeps_answering(served, btc_1h):
    old = served.get('/health').json()['model_version']
    hammer = Hammer(served.base_url, btc_1h)
    hammer.start()
    try:
        time.sleep(0.5)
        body = {'symbol': 'BTCUSDT', 'timeframe': '1h', 'model_type': 'gru', 'retrain': True, 'epochs': 1,
                'candles': candles_to_json(btc_1h.iloc[-3000:])}
        r = served.post('/train', json=body, headers=OPERATOR)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job['status'] in ('queued', 'running') and r.headers['location'] == f"/train/{job['job_id']}"
        second = served.post('/train', json=body, headers=OPERATOR)
        assert second.status_code == 409 and job['job_id'] in second.json()['message']
        done = wait_job(served, job['job_id'])
        assert done['status'] == 'succeeded', done
        assert done['progress']['fraction'] == 1 and done['progress']['epoch'] >= 1
        assert done['model_version'] and done['model_version'] != old and done['metrics']
        time.sleep(0.5)
    finally:
        hammer.stop.set(); hammer.join(30)
    statuses = [s for s, _ in hammer.answers]
    assert len(statuses) > 10 and set(statuses) == {200}, [a for a in hammer.answers if a[0] != 200][:5]
    assert hammer.answers[0][1] == old and hammer.answers[-1][1] == done['model_version']
    assert served.get('/health').json()['model_version'] == done['model_version']
    info = served.get('/model/info', headers=ENGINE).json()
    assert (info['version'], info['model_type']) == (done['model_version'], 'gru')
    assert served.post('/analyze', json=analyze_body(hammer.windows[0]), headers=ENGINE).json()['model_version'] == done['model_version']
    assert [j['job_id'] for j in served.get('/train', headers=OPERATOR).json()][0] == job['job_id']


@pytest.mark.slow
def test_failed_job_keeps_the_old_model_serving(served, btc_1h, window):
    before = served.get('/health').json()['model_version']
    r = served.post('/train', json={'retrain': True, 'epochs': 1, 'candles': candles_to_json(btc_1h.iloc[-150:])}, headers=OPERATOR)
    assert r.status_code == 202, r.text
    done = wait_job(served, r.json()['job_id'])
    assert done['status'] == 'failed' and done['error'] and done['model_version'] is None, done
    assert served.get('/health').json()['model_version'] == before
    r = served.post('/analyze', json=analyze_body(window), headers=ENGINE)
    assert r.status_code == 200 and r.json()['model_version'] == before
    # The failed job no longer blocks the next one: a 409 says a model is served, not that a job is running.
    r = served.post('/train', json={'retrain': False}, headers=OPERATOR)
    assert r.status_code == 409 and 'already served' in r.json()['message'], r.text


@pytest.mark.slow
def test_picks_up_a_model_promoted_by_another_process(served, trained, btc_1h):
    data_dir, _, registry = trained
    version = registry.promote(tiny_model(btc_1h, rows=2000, seed=1), force=True)  # mechanics
    deadline = time.monotonic() + 10
    while served.get('/health').json()['model_version'] != version:
        assert time.monotonic() < deadline, 'the service did not pick up the promoted model within 10 s'
        time.sleep(0.25)
    assert served.post('/analyze', json=analyze_body(candles_to_json(btc_1h.iloc[-100:])), headers=ENGINE).json()['model_version'] == version


# ---------------------------------------------------------------- signal policy, detailed format

SIMPLE_FIELDS = ['signal', 'confidence', 'probability', 'timestamp', 'model_type', 'symbol', 'timeframe',
                 'model_version', 'cached']
# the floor at one half: the one-epoch LSTM's probabilities hug 0.5, under the seed's 0.55 floor
DETAILED_ENV = dict(BOTCORE_AI__SIGNAL_POLICY='adaptive', BOTCORE_AI__ADAPTIVE_LOOKBACK='20',
                    BOTCORE_AI__ADAPTIVE_MIN_HISTORY='10', BOTCORE_API_INTEGRATION__SIGNAL_FORMAT='detailed',
                    BOTCORE_AI__CONFIDENCE_THRESHOLD='0.5')


@pytest.fixture(scope='module')
def detailed(ai_dir, tmp_path_factory):
    "A running service answering in the detailed format with the adaptive policy (lookback 20, min history 10)."
    import shutil
    d = tmp_path_factory.mktemp('detailed')
    shutil.copytree(ai_dir / 'models', d / 'models')          # its own registry: no other test promotes here
    env = clean_env(INTER_SERVICE_TOKEN=ENGINE_TOKEN, AI_API_KEY=OPERATOR_KEY, **DETAILED_ENV)
    server = UvicornServer('botcore.api.ai.app:app', d, env, name='detailed', health_timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.data_dir = d
            yield client
    finally:
        server.stop()
    assert 'Traceback' not in server.logs(), server.logs()


def served_model(client):
    "The model the service `client` talks to serves, loaded in-process from its registry."
    from botcore.model.registry import ModelRegistry
    return ModelRegistry(client.data_dir / 'models').load(client.get('/health').json()['model_version'])


def test_simple_format_is_the_seeds_signal_and_nothing_more(served, btc_1h):
    r = served.post('/analyze', json=analyze_body(candles_to_json(btc_1h.iloc[-2100:-2000])), headers=ENGINE)
    assert r.status_code == 200, r.text
    assert list(r.json()) == SIMPLE_FIELDS and r.text.startswith('{"signal":"')
    assert r.text.endswith(f'"model_version":"{r.json()["model_version"]}","cached":false}}')


def test_detailed_format_has_the_thresholds_and_the_indicators(detailed, btc_1h):
    from botcore.model.signals import Analyzer, signal_from_probability
    w = btc_1h.iloc[-100:]
    r = detailed.post('/analyze', json=analyze_body(candles_to_json(w)), headers=ENGINE)
    assert r.status_code == 200, r.text
    s = r.json()
    assert list(s)[:len(SIMPLE_FIELDS)] == SIMPLE_FIELDS
    assert s['policy'] == 'adaptive' and s['threshold_source'] in ('fixed', 'adaptive')
    assert s['signal'] == signal_from_probability(s['probability'], s['long_threshold'], s['short_threshold'])[0].value
    # the indicators: the model's features at the last candle, by name, unscaled, as the in-process Analyzer has them
    model = served_model(detailed)
    cols = [w[c].to_numpy(np.float64) for c in ('high', 'low', 'close', 'volume')]
    rows = Analyzer(model).window_rows(w.index.as_unit('ms').asi8, *cols, '1h')
    assert list(s['indicators']) == model.feature_names
    assert list(s['indicators'].values()) == [v if math.isfinite(v) else None for v in rows[-1].tolist()]
    again = detailed.post('/analyze', json=analyze_body(candles_to_json(w)), headers=ENGINE).json()
    assert again['cached'] is True and {**again, 'cached': False} == s


def test_adaptive_policy_calls_borderline_probabilities(detailed, eth_5m):
    """Consecutive candles of a series the service has not seen: each answer's thresholds are the mean +- 1 std
    of the model's recent probabilities and of the probabilities the service gave the candles before, as
    `policy_thresholds` computes them offline; probabilities the fixed 0.6/0.4 call neutral get called long or short."""
    from botcore.model.policy import SignalPolicy, policy_thresholds
    from botcore.model.signals import signal_from_probability
    candles = candles_to_json(eth_5m.iloc[-161:])
    ask = lambda i, n=100: detailed.post('/analyze', headers=ENGINE,
                                         json=analyze_body(candles[i + 100 - n:i + 100], 'ETHUSDT', '5m'))
    answers = [ask(i).json() for i in range(60)]
    # the same last candle again, in a longer window (a cache miss): the same thresholds, and nothing added
    longer = ask(59, n=101).json()
    assert longer['cached'] is False
    assert (longer['long_threshold'], longer['short_threshold']) == (answers[-1]['long_threshold'], answers[-1]['short_threshold'])
    answers.append(ask(60).json())
    policy = SignalPolicy(kind='adaptive', lookback=20, k=1.0, min_history=10, min_confidence=0.5)
    recent = served_model(detailed).meta.get('recent_probabilities') or []
    ps = np.array([a['probability'] for a in answers[:-2]] + [longer['probability'], answers[-1]['probability']])
    long, short = policy_thresholds(ps, policy, history=recent)
    assert all(a['policy'] == 'adaptive' for a in answers)
    np.testing.assert_allclose([a['long_threshold'] for a in answers], long, rtol=0, atol=1e-9)
    np.testing.assert_allclose([a['short_threshold'] for a in answers], short, rtol=0, atol=1e-9)
    assert answers[-1]['threshold_source'] == 'adaptive'
    for a in answers:
        assert a['signal'] == signal_from_probability(a['probability'], a['long_threshold'], a['short_threshold'])[0].value
    borderline = [a for a in answers if 0.4 < a['probability'] < 0.6]
    assert len(borderline) > len(answers) // 2                    # a model's probabilities sit near 0.5
    assert any(a['signal'] != 'neutral' for a in borderline), [a['probability'] for a in answers]


def test_model_info_reports_the_policy_and_the_models_description(detailed, served):
    info = detailed.get('/model/info', headers=OPERATOR).json()
    assert info['policy'] == dict(kind='adaptive', long_threshold=0.6, short_threshold=0.4, lookback=20, k=1.0,
                                  min_history=10, min_confidence=0.5)
    meta = served_model(detailed).meta
    assert [info[k] for k in ('calibration', 'features', 'label')] == [meta.get(k) for k in ('calibration', 'features', 'label')]
    assert SEED_INFO_FIELDS <= set(info) and info['model_loaded'] is True
    assert served.get('/model/info', headers=OPERATOR).json()['policy']['kind'] == 'fixed'


BAD_POLICY = [  # (botcore.toml text, env, what stderr must say)
    ('', {'BOTCORE_AI__SIGNAL_POLICY': 'sometimes'},
     "env BOTCORE_AI__SIGNAL_POLICY: ai.signal_policy: Input should be 'fixed' or 'adaptive'"),
    ('[api_integration]\nsignal_format = "verbose"\n', {}, "api_integration.signal_format: Input should be 'simple' or 'detailed'"),
    ('[api_integration]\ncache_ttl_seconds = 60\n[ai]\ncache_ttl_seconds = 300\n', {},
     'api_integration.cache_ttl_seconds: conflicts with ai.cache_ttl_seconds = 300: set it in one place (got 60)'),
    ('[ai]\nadaptive_lookback = 20\n', {}, 'ai.adaptive_min_history: must be at most adaptive_lookback (20) (got 50)'),
]


@pytest.mark.parametrize('text,env,said', BAD_POLICY, ids=['env policy', 'format', 'cache conflict', 'history'])
def test_a_bad_policy_setting_stops_the_service_at_start(tmp_path, text, env, said):
    import subprocess
    from support import botcore_script
    (tmp_path / 'botcore.toml').write_text(text)
    r = subprocess.run([str(botcore_script()), 'serve', 'ai', '--port', str(free_port())], cwd=tmp_path, timeout=120,
                       env=clean_env(HOME=str(tmp_path), BOTCORE_DATA_DIR=str(tmp_path / 'data'), **env),
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and 'Traceback' not in r.stderr, r.stderr
