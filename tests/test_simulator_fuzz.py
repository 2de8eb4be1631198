"""The Binance simulator's REST API under random requests, over a real server on loopback.

Hypothesis sends requests to every REST endpoint of `botcore.simulator.rest.ENDPOINTS`, to their
paths with other methods and to paths that do not exist: parameters Binance knows and names it
does not, symbols and intervals good and bad, limits and times from far below zero to past 64 bits,
numbers written every way (`1e400`, `nan`, `0x10`, `٣`), JSON lists that are not lists, any
Unicode, in the query string or the form body, and bodies that are not text at all. Signed requests
come correctly signed with a fresh timestamp (so that they reach their endpoint), wrongly signed,
or unsigned, with the API key, another or none. The examples are derandomized: a fixed seed.

What Binance promises, and a client (ccxt) relies on: never a 5xx, and every refusal in Binance's
format, `{"code": <negative int>, "msg": "..."}`; an answer of 200 is JSON. The simulator runs in
its own process with the request-weight limit out of reach (the limit has its own test in
test_simulator.py), so that every request reaches its endpoint; its log must stay free of
tracebacks.
"""
import hashlib
import hmac
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from botcore.simulator.rest import ENDPOINTS
from support import clean_env, free_port

KEY, SECRET = 'key', 'secret'
EXAMPLES = 1000
pytestmark = pytest.mark.timeout(300)

SERVE = """
import sys, uvicorn
from botcore.simulator.server import BinanceSimulator
sim = BinanceSimulator(['BTCUSDT', 'ETHUSDT'], speed=20, start=-3000, weight_limit=10**12)
uvicorn.run(sim.app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')
"""


@pytest.fixture(scope='module')
def simulator(tmp_path_factory):
    "The simulator (BTCUSDT and ETHUSDT 5m, replayed at 20 candles a second) in its own process."
    port, log_path = free_port(), tmp_path_factory.mktemp('simfuzz') / 'simulator.log'
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen([sys.executable, '-c', SERVE, str(port)], env=clean_env(),
                                stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(600):
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f'{url}/api/v3/ping', timeout=1).status_code == 200: break
            except httpx.TransportError: time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=30) as client:
            client.log_path = log_path
            yield client
    finally:
        proc.terminate()
        proc.wait(30)
    assert 'Traceback' not in log_path.read_text(), log_path.read_text()[-5000:]


# ---------------------------------------------------------------- what is sent

PARAMS = ['symbol', 'symbols', 'interval', 'limit', 'startTime', 'endTime', 'side', 'type',
          'timeInForce', 'quantity', 'quoteOrderQty', 'price', 'newClientOrderId',
          'origClientOrderId', 'orderId', 'fromId', 'newOrderRespType', 'omitZeroBalances',
          'recvWindow', 'timestamp']
WORDS = ['BTCUSDT', 'ETHUSDT', 'btcusdt', 'XRPUSDT', 'BTC/USDT', '1m', '5m', '15m', '1h', '4h',
         '1d', '1w', '1M', '1s', '7m', 'BUY', 'SELL', 'buy', 'MARKET', 'LIMIT', 'LIMIT_MAKER',
         'STOP_LOSS', 'GTC', 'IOC', 'FOK', 'ACK', 'RESULT', 'FULL', 'true', 'false', '["BTCUSDT"]',
         '["BTCUSDT","ETHUSDT"]', '["XRPUSDT"]', '[1]', '[[]]', '[null]', '5', '{}', '{"a":1}',
         '[', 'null', '"BTCUSDT"', '']
NUMBERS = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.integers(0, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str),
    st.sampled_from(['0', '-0', '0.0', '1e400', '-1e400', 'nan', 'inf', 'Infinity', '0x10',
                     '1_000', ' 5', '5 ', '٣', '1e-9', '00000000000000000000001', str(2**63),
                     str(2**64), str(-2**63 - 1)]))
VALUES = st.one_of(NUMBERS, st.sampled_from(WORDS), st.text(max_size=24))
NAMES = st.one_of(st.sampled_from(PARAMS), st.text(max_size=12))
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=8)
PATHS = sorted({p for _, p in ENDPOINTS})
METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']
OTHER_PATHS = st.one_of(st.sampled_from(['/', '/api', '/api/v3', '/api/v3/', '/api/v3/order/',
                                         '/api/v9/ping', '/ws', '/stream', '/sapi/v1']),
                        st.text(max_size=20).map(lambda s: '/api/v3/' + quote(s)))


@st.composite
def binance_requests(draw):
    "(method, path, query string, form body, headers) of one request, signed or not."
    if draw(st.integers(0, 9)) < 8: method, path = draw(st.sampled_from(sorted(ENDPOINTS)))
    else: method, path = draw(st.sampled_from(METHODS)), draw(st.sampled_from(PATHS) | OTHER_PATHS)
    signing = draw(st.sampled_from(['good', 'good', 'bad', 'none']))
    pairs = [(k, v) for k, v in draw(PAIRS) if signing == 'none' or k != 'signature']
    if signing != 'none':
        pairs.append(('timestamp', str(int(time.time() * 1000))))
    in_body = method in ('POST', 'PUT', 'DELETE') and draw(st.booleans())
    cut = draw(st.integers(0, len(pairs)))
    query = urlencode(pairs[:cut] if in_body else pairs)
    body = urlencode(pairs[cut:]) if in_body else ''
    if signing == 'good':
        signature = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
        query += ('&' if query else '') + f'signature={signature}'
    elif signing == 'bad':
        wrong = draw(st.sampled_from(['0' * 64, 'zz', '', 'Ω']))
        query += ('&' if query else '') + 'signature=' + quote(wrong)
    headers = {}
    if (key := draw(st.sampled_from([KEY, KEY, 'nobody', '', None]))) is not None:
        headers['X-MBX-APIKEY'] = key
    content = body.encode()
    if method != 'GET' and draw(st.integers(0, 9)) == 0:
        content = draw(st.binary(max_size=40))                                # not even text
    if content: headers['Content-Type'] = 'application/x-www-form-urlencoded'
    return method, path, query, content, headers


def binance_refusal(r: httpx.Response) -> bool:
    "Is `r` a refusal in Binance's format?"
    try: body = r.json()
    except ValueError: return False
    return (isinstance(body, dict) and set(body) == {'code', 'msg'} and type(body['code']) is int
            and body['code'] < 0 and isinstance(body['msg'], str) and body['msg'] != '')


# ---------------------------------------------------------------- the test

@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=binance_requests())
def fuzz_one(client, request):
    method, path, query, content, headers = request
    url = httpx.URL(str(client.base_url).rstrip('/') + path, query=query.encode())
    r = client.request(method, url, content=content, headers=headers)
    said = f'{method} {url} body={content[:200]!r} -> {r.status_code} {r.text[:300]}'
    assert r.status_code < 500, said
    if r.status_code >= 400: assert binance_refusal(r), said
    else: r.json()
    signed = ENDPOINTS[method, path][2] if (method, path) in ENDPOINTS else None
    client.counts[r.status_code // 100, signed] += 1


def test_random_requests_get_binance_answers_never_a_5xx(simulator, capsys):
    simulator.counts = Counter()
    fuzz_one(simulator)
    n = simulator.counts
    answered = sum(k for (kind, _), k in n.items() if kind == 2)
    refused = sum(k for (kind, _), k in n.items() if kind == 4)
    with capsys.disabled():
        print(f'\nsimulator: {sum(n.values())} requests generated by Hypothesis '
              f'({answered} answered, {n[2, True]} of them signed; {refused} refused)')
    assert n[2, True] > 20 and n[2, False] > 20 and refused > 100      # every way in was taken
