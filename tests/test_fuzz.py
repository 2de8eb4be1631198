"""Both services' OpenAPI documents against the servers, by schemathesis; and what it made us fix.

`st run` (schemathesis' command line, in a subprocess) runs every phase it has against a real
uvicorn server on loopback: the documents' examples, the boundaries of every parameter and body
(coverage), random requests valid and invalid (fuzzing), and sequences that follow the documents'
links (stateful). It applies every check it has (`--checks all`: no 5xx; every status, content
type, header and body as documented; valid data accepted, invalid data refused; 401 without the
token; a 405 with the right `Allow` for a method a path does not take; ...), with a fixed seed and
at most `MAX_EXAMPLES` examples per operation and phase. Each run records its requests (a HAR
file); their number per operation and per service is printed.

- The AI service serves conftest's small LSTM. Its bundled candles are cut to the last 1,000 of
  BTCUSDT 1h (`BOTCORE_BUNDLED_DATA`), so a training job the fuzzer starts with `POST /train` (the
  document's example body starts one; one at a time, the others get 409) trains on 1,000 candles,
  for seconds, on one torch thread; `GET /train/{job_id}` then follows the `Location` it answers.
- The engine replays BTCUSDT 1h candles and asks that AI service for signals, with thresholds low
  enough to trade, so that `POST /api/positions/BTCUSDT/close` (the symbol the document gives as
  its example) finds positions to close; the fuzzer also changes its settings, starts and stops it.

Two kinds of documented rule cannot be written in JSON Schema: a candle series must be sorted, on
its timeframe's grid, with each high at or above its low, open and close; and some settings need
another (risk-based sizing needs a stop). A schema-valid body that breaks one is answered 422, as
the documents say; that is the one status added to what schemathesis expects of valid data, for
`POST /analyze`, `POST /train` and `PUT /api/config` only.

Then what the fuzzing found, fixed, each over HTTP: a 64-bit bound on integer parameters, `Allow`
naming every method of a path, a 400 for a body that is not text, the candles `/analyze` needs in
its schema, and one JSON 413 stating the limit, whether the body declared its length or came in
chunks.
"""
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest

from support import UvicornServer, clean_env

TOKEN = 'fuzz-token-' + 'f' * 32
AUTH = {'Authorization': f'Bearer {TOKEN}'}
MAX_EXAMPLES, SEED = 40, 15
ST = Path(sys.executable).with_name('st')
BEYOND_JSON_SCHEMA = """
[[operations]]
include-path = ["/analyze", "/train"]
include-method = "POST"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/config"
include-method = "PUT"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""
pytestmark = pytest.mark.timeout(600)


# ---------------------------------------------------------------- the servers

@pytest.fixture(scope='module')
def ai(ai_dir, tmp_path_factory):
    "The AI service on conftest's small LSTM; its bundled data: the last 1,000 BTCUSDT 1h candles."
    bundled = tmp_path_factory.mktemp('bundled')
    raw = pd.read_parquet(Path(__file__).parent.parent / 'data' / 'BTCUSDT-1h.parquet')
    raw.iloc[-1000:].reset_index(drop=True).to_parquet(bundled / 'BTCUSDT-1h.parquet')
    env = clean_env(INTER_SERVICE_TOKEN=TOKEN, AI_API_KEY='ai-key-' + 'a' * 32,
                    BOTCORE_BUNDLED_DATA=str(bundled), BOTCORE_AI__LONG_THRESHOLD='0.5',
                    BOTCORE_AI__SHORT_THRESHOLD='0.49')
    server = UvicornServer('botcore.api.ai.app:app', ai_dir, env, name='fuzz-ai')
    yield server
    server.stop()
    assert 'unhandled error' not in server.logs(), server.logs()[-5000:]


@pytest.fixture(scope='module')
def engine(ai, tmp_path_factory):
    "The engine replaying BTCUSDT 1h candles, 5 a second, on `ai`'s signals."
    env = clean_env(ENGINE_API_KEY=TOKEN, INTER_SERVICE_TOKEN=TOKEN, PYTHON_AI_SERVICE_URL=ai.url,
                    BOTCORE_MARKET_DATA__SYMBOLS='["BTCUSDT"]', BOTCORE_MARKET_DATA__TIMEFRAME='1h', BOTCORE_MARKET_DATA__REPLAY_SPEED='5',
                    BOTCORE_MARKET_DATA__REPLAY_CANDLES='500',
                    BOTCORE_MARKET_DATA__CONFIDENCE_THRESHOLD='0.5')
    server = UvicornServer('botcore.api.engine:app', tmp_path_factory.mktemp('fuzz-engine'), env,
                           name='fuzz-engine')
    yield server
    status = httpx.get(f'{server.url}/api/status', headers=AUTH).json()['status']
    server.stop()
    # whatever settings the fuzzer sent, the engine's loop carries on (a huge integer stopped it)
    assert status != 'error' and 'Traceback' not in server.logs(), server.logs()[-5000:]


# ---------------------------------------------------------------- schemathesis

def operation_of(url: str, method: str, doc: dict) -> str:
    "The documented operation a request was for (`GET /train/{job_id}`), or the 405 checks'."
    path = httpx.URL(url).path
    for template, ops in doc['paths'].items():
        if re.fullmatch(re.sub(r'\{[^}]+\}', '[^/]*', template), path):
            return f'{method} {template}' if method.lower() in ops else 'other methods (405s)'
    return f'{method} {path} (not in the document)'


def fuzz(server: UvicornServer, workdir: Path) -> tuple[subprocess.CompletedProcess, Counter]:
    "`st run` against `server` with every check: the run, and its requests counted by operation."
    config, har = workdir / 'schemathesis.toml', workdir / 'requests.har'
    config.write_text(BEYOND_JSON_SCHEMA)
    cmd = [str(ST), '--config-file', str(config), 'run', f'{server.url}/openapi.json',
           '--checks', 'all', '--seed', str(SEED), '--max-examples', str(MAX_EXAMPLES),
           '--workers', '1', '--header', f'Authorization: Bearer {TOKEN}',
           '--generation-database', 'none', '--request-timeout', '30', '--no-color',
           '--report', 'har', '--report-har-path', str(har)]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=500,
                         env=clean_env())
    doc = httpx.get(f'{server.url}/openapi.json').json()
    entries = json.loads(har.read_text())['log']['entries'] if har.exists() else []
    return run, Counter(operation_of(e['request']['url'], e['request']['method'], doc)
                        for e in entries)


@pytest.mark.parametrize('service', ['ai', 'engine'])
def test_schemathesis_finds_nothing(service, request, tmp_path, capsys):
    run, counts = fuzz(request.getfixturevalue(service), tmp_path)
    with capsys.disabled():
        print(f'\n{service}: {sum(counts.values())} requests generated by schemathesis '
              f'(seed {SEED}, at most {MAX_EXAMPLES} examples per operation and phase)')
        for op, n in sorted(counts.items()): print(f'  {n:5d}  {op}')
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert sum(counts.values()) > 300, counts
    assert not any('not in the document' in op for op in counts), counts


# ---------------------------------------------------------------- what the fuzzing found, fixed

def test_an_integer_past_64_bits_is_a_422_naming_the_parameter(engine):
    "SQLite holds signed 64-bit integers: `since=2**63` was a 500 (OverflowError)."
    with httpx.Client(base_url=engine.url, headers=AUTH, timeout=30) as http:
        for path, name in (('/api/equity', 'since'), ('/api/trades', 'offset')):
            r = http.get(path, params={name: 2**63})
            assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['query', name], r.text
            assert r.json()['message'].startswith(f'{name}: '), r.text
            assert http.get(path, params={name: 2**63 - 1}).status_code == 200


ALLOWS = [('engine', '/api/config', 'GET, PUT'), ('ai', '/train', 'GET, POST'),
          ('engine', '/api/status', 'GET')]


@pytest.mark.parametrize('service,path,allow', ALLOWS)
def test_a_405_allows_every_method_of_the_path(service, path, allow, request):
    "`OPTIONS /api/config` was a 405 whose `Allow` named GET alone."
    r = httpx.request('OPTIONS', request.getfixturevalue(service).url + path, headers=AUTH)
    assert (r.status_code, r.headers['allow']) == (405, allow)
    assert r.json()['message'] == 'Method Not Allowed'


BODIES = [('ai', 'POST', '/analyze'), ('ai', 'POST', '/train'), ('engine', 'PUT', '/api/config')]


@pytest.mark.parametrize('service,method,path', BODIES, ids=[f'{s} {m} {p}' for s, m, p in BODIES])
def test_a_body_that_is_not_text_is_a_documented_400(service, method, path, request):
    "Bytes that are not UTF-8 were a 500 on /analyze: both services answer 400, as documented."
    server = request.getfixturevalue(service)
    r = httpx.request(method, server.url + path, content=b'\xff\xfe{',
                      headers=AUTH | {'Content-Type': 'application/json'})
    assert r.status_code == 400, r.text
    assert r.json()['message'] == 'There was an error parsing the body'
    doc = httpx.get(server.url + '/openapi.json').json()
    assert '400' in doc['paths'][path][method.lower()]['responses']


def test_analyze_states_the_candles_it_needs(ai, btc_1h):
    "Empty candles were refused though the schema admitted them; the schema states the minimum."
    from botcore.data.candles import candles_to_json
    schemas = httpx.get(ai.url + '/openapi.json').json()['components']['schemas']
    assert schemas['AnalyzeRequest']['properties']['candles']['minItems'] == 100
    for candles in ([], candles_to_json(btc_1h.iloc[-99:])):
        body = {'symbol': 'BTCUSDT', 'timeframe': '1h', 'candles': candles}
        r = httpx.post(ai.url + '/analyze', headers=AUTH, json=body)
        assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'candles'], r.text
        assert 'at least 100 items' in r.json()['message']


BROWSER = {'Origin': 'http://localhost:3000'}
LIMITED = {'ai /analyze, a server': ('ai', 'POST', '/analyze', {}),
           'ai /analyze, a browser': ('ai', 'POST', '/analyze', BROWSER),
           'ai /train': ('ai', 'POST', '/train', {}),
           'engine /api/config': ('engine', 'PUT', '/api/config', {})}
LIMITS = {'ai': 5 * 2**20, 'engine': 2**20}


@pytest.mark.parametrize('way', ['declared', 'chunked'])
@pytest.mark.parametrize('case', list(LIMITED))
def test_a_body_over_the_limit_is_one_json_413_stating_the_limit(case, way, request):
    """One answer whichever way the body came: a `Content-Length` over the limit, or chunks that
    pass it. (It was a plain-text 413 on one path, and JSON without the limit on another.)"""
    service, method, path, extra = LIMITED[case]
    server, limit = request.getfixturevalue(service), LIMITS[service]
    body = b'{"symbol": "' + b' ' * limit + b'"}'
    chunks = (body[i:i + 2**16] for i in range(0, len(body), 2**16))
    r = httpx.request(method, server.url + path, content=body if way == 'declared' else chunks,
                      headers=AUTH | extra | {'Content-Type': 'application/json'}, timeout=60)
    said = f'request body: over the limit of {limit:,} bytes'
    assert ('content-length' in r.request.headers) == (way == 'declared')
    assert (r.status_code, r.headers['content-type']) == (413, 'application/json'), r.text[:300]
    assert r.json() == {'detail': said, 'message': said}
    assert httpx.get(server.url + '/health').status_code == 200
