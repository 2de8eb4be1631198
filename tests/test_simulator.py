"""The Binance simulator against unmodified ccxt clients, over real sockets on loopback.

`ccxt.async_support.binance` and `ccxt.pro.binance` get nothing but their URLs pointed at the simulator
(`ccxt_client`), so whatever works here is Binance's API as ccxt speaks it. The market is the bundled
real BTCUSDT 1m (and ETHUSDT 5m) candles: what the clients read is compared with the bundle itself.
Signing errors are sent raw with httpx, since ccxt signs correctly. Faults: a 429 storm ends and the
client recovers, a lost 5xx answer leaves the order placed, a slow answer times ccxt out, dropped
streams reconnect on the next watch call. One test drives a simulator in another process over its
unauthenticated `/_sim` control path.
"""
import asyncio, hashlib, hmac, json, os, subprocess, sys, time
from urllib.parse import urlencode

import ccxt
import httpx
import pandas as pd
import pytest
import websockets

from botcore.data.candles import CANDLE_COLUMNS, load_candles, resample_candles
from botcore.simulator.clients import ccxt_client
from botcore.simulator.server import BinanceSimulator
from support import clean_env, free_port

pytestmark = pytest.mark.timeout(300)
KEY, SECRET = 'key', 'secret'


@pytest.fixture(scope='module')
def btc():
    return load_candles('BTCUSDT', '1m')


def bundled(df, t_ms):
    "The bundled candle opening at `t_ms` as [open, high, low, close, volume]."
    return [float(x) for x in df.loc[pd.Timestamp(t_ms, unit='ms', tz='UTC')][list(CANDLE_COLUMNS)]]


def served(sim, test):
    "Run `await test(url)` with `sim` served on a free loopback port."
    async def go():
        async with sim.serve() as url: await test(url)
    asyncio.run(go())


async def using(url, test, pro=False, **config):
    ex = ccxt_client(url, KEY, SECRET, pro=pro, **config)
    try: return await test(ex)
    finally: await ex.close()


def signed(params: dict, secret=SECRET) -> str:
    q = urlencode(params)
    return q + '&signature=' + hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()


def paused(**kw):
    "BTCUSDT 1m, the clock paused 300 candles before the end of the bundle."
    return BinanceSimulator(['BTCUSDT'], '1m', speed=0, start=-300, **kw)


# --- market data ----------------------------------------------------------------------------------------------------

def test_markets_have_binance_filters_and_candles_are_the_bundled_ones(btc):
    sim = BinanceSimulator(speed=0, start='2024-09-01T00:00')              # BTCUSDT and ETHUSDT, 5m
    async def test(url):
        async def go(ex):
            markets = await ex.load_markets()
            assert {'BTC/USDT', 'ETH/USDT'} <= set(markets) and all(m['spot'] for m in markets.values())
            m = markets['BTC/USDT']
            assert (m['precision']['price'], m['precision']['amount']) == (0.01, 0.00001)
            assert (m['limits']['amount']['min'], m['limits']['cost']['min']) == (0.00001, 5.0)
            assert {f['filterType'] for f in m['info']['filters']} >= {'PRICE_FILTER', 'LOT_SIZE', 'NOTIONAL'}
            assert markets['ETH/USDT']['precision']['amount'] == 0.0001

            now = sim.clock_ms
            rows = await ex.fetch_ohlcv('BTC/USDT', '5m', limit=100)
            assert len(rows) == 100 and rows[-1][0] == now                  # the last one has just opened, at the clock
            btc5 = load_candles('BTCUSDT', '5m')
            for r in rows[:-1]: assert r[1:] == bundled(btc5, r[0])        # every closed candle is the real one
            assert all(r[0] <= now for r in rows)
            eth = await ex.fetch_ohlcv('ETH/USDT', '15m', since=now - 10 * 900_000, limit=5)
            real = resample_candles(load_candles('ETHUSDT', '5m'), '15m')
            assert [r[0] for r in eth] == [now - k * 900_000 for k in range(10, 5, -1)]
            for r in eth:                                                    # prices exact; summed volumes to Binance's 8 places
                assert r[1:5] == bundled(real, r[0])[:4] and r[5] == pytest.approx(bundled(real, r[0])[4], abs=1e-8)
            with pytest.raises(ccxt.BadRequest, match='Invalid interval'): await ex.fetch_ohlcv('BTC/USDT', '1m')   # finer than 5m
            t = await ex.fetch_ticker('BTC/USDT')
            assert t['last'] == sim.price('BTCUSDT') == bundled(btc5, now)[0]
        await using(url, go)
    served(sim, test)


def test_klines_never_show_the_future_and_advance_with_the_clock(btc):
    sim = BinanceSimulator(['BTCUSDT'], '1m', speed=50, start=-300)
    async def test(url):
        async def go(ex):
            first = await ex.fetch_ohlcv('BTC/USDT', '1m', limit=3)
            await asyncio.sleep(0.5)                                         # ~25 candles at 50 a second
            later = await ex.fetch_ohlcv('BTC/USDT', '1m', limit=3)
            assert later[-1][0] - first[-1][0] >= 10 * 60_000
            assert later[-1][0] <= sim.clock_ms
            assert later[0][1:] == bundled(btc, later[0][0])
        await using(url, go)
    served(sim, test)


# --- trading ----------------------------------------------------------------------------------------------------------

def test_market_orders_pay_the_replayed_price_and_the_fee(btc):
    sim = paused()
    async def test(url):
        async def go(ex):
            price = bundled(btc, sim.clock_ms)[0]                           # paused at a candle's open: its real open
            buy = await ex.create_order('BTC/USDT', 'market', 'buy', 0.01)
            assert (buy['status'], buy['filled'], buy['average']) == ('closed', 0.01, price)
            assert buy['fee']['currency'] == 'USDT' and buy['fee']['cost'] == pytest.approx(0.01 * price * 0.001)
            sell = await ex.create_order('BTC/USDT', 'market', 'sell', 0.004)
            bal = await ex.fetch_balance()
            assert bal['USDT']['free'] == pytest.approx(10_000 - 0.006 * price - 0.014 * price * 0.001, abs=1e-8)
            assert bal['BTC']['free'] == pytest.approx(0.006)
            trades = await ex.fetch_my_trades('BTC/USDT')
            assert [(t['order'], t['side'], t['amount'], t['price']) for t in trades] == [
                (buy['id'], 'buy', 0.01, price), (sell['id'], 'sell', 0.004, price)]
            assert sum(t['fee']['cost'] for t in trades) == pytest.approx(0.014 * price * 0.001)
            got = await ex.fetch_order(buy['id'], 'BTC/USDT')
            assert (got['status'], got['clientOrderId']) == ('closed', buy['clientOrderId'])
            by_cost = await ex.create_order('BTC/USDT', 'market', 'buy', None, None, {'cost': 100})   # quoteOrderQty
            assert by_cost['filled'] == pytest.approx(int(100 / price / 1e-5) * 1e-5)
        await using(url, go)
    served(sim, test)


def test_limit_order_rests_then_fills_when_the_replay_crosses_it(btc):
    sim = paused()
    async def test(url):
        async def go(ex):
            now = sim.clock_ms
            ahead = btc[btc.index >= pd.Timestamp(now, unit='ms', tz='UTC')].iloc[:60]
            low = float(ahead.low.min())                                     # the price will come down to this within the hour
            assert low < sim.price('BTCUSDT')
            o = await ex.create_order('BTC/USDT', 'limit', 'buy', 0.01, low)
            assert o['status'] == 'open'
            bal = await ex.fetch_balance()
            assert bal['USDT']['used'] == pytest.approx(0.01 * low * 1.001)   # the money is locked while it rests
            far = await ex.create_order('BTC/USDT', 'limit', 'buy', 0.01, round(low * 0.5, 2))
            assert {x['id'] for x in await ex.fetch_open_orders('BTC/USDT')} == {o['id'], far['id']}
            canceled = await ex.cancel_order(far['id'], 'BTC/USDT')
            assert canceled['status'] == 'canceled'
            with pytest.raises(ccxt.OrderNotFound): await ex.cancel_order(far['id'], 'BTC/USDT')   # -2011: no longer open

            sim.set_speed(200)                                               # 60 candles in ~0.3 s
            for _ in range(100):
                if (got := await ex.fetch_order(o['id'], 'BTC/USDT'))['status'] == 'closed': break
                await asyncio.sleep(0.05)
            assert (got['status'], got['average'], got['filled']) == ('closed', low, 0.01)
            first_touch = ahead.index[ahead.low.to_numpy() <= low][0].value // 10**6
            assert first_touch <= got['lastTradeTimestamp'] < first_touch + 60_000   # filled in the candle that reached it
            bal = await ex.fetch_balance()
            assert (bal['USDT']['used'], bal['BTC']['free']) == (0, pytest.approx(0.01))
            assert bal['USDT']['free'] == pytest.approx(10_000 - 0.01 * low * 1.001)
            [t] = await ex.fetch_my_trades('BTC/USDT')
            assert (t['order'], t['price'], t['takerOrMaker']) == (o['id'], low, 'maker')
        await using(url, go)
    served(sim, test)


def test_duplicate_client_order_id_is_rejected_while_the_first_is_open():
    sim = paused()
    async def test(url):
        async def go(ex):
            far = round(sim.price('BTCUSDT') * 0.5, 2)
            first = await ex.create_order('BTC/USDT', 'limit', 'buy', 0.001, far, {'clientOrderId': 'bot-1'})
            assert first['clientOrderId'] == 'bot-1'
            with pytest.raises(ccxt.InvalidOrder, match='Duplicate order sent'):
                await ex.create_order('BTC/USDT', 'limit', 'buy', 0.001, far, {'clientOrderId': 'bot-1'})
            assert len(await ex.fetch_open_orders('BTC/USDT')) == 1
            got = await ex.fetch_order(None, 'BTC/USDT', {'clientOrderId': 'bot-1'})   # by origClientOrderId
            assert got['id'] == first['id']
            await ex.cancel_order(None, 'BTC/USDT', {'clientOrderId': 'bot-1'})
            again = await ex.create_order('BTC/USDT', 'limit', 'buy', 0.001, far, {'clientOrderId': 'bot-1'})   # as on Binance
            assert again['id'] != first['id']
        await using(url, go)
    served(sim, test)


# --- Binance's errors -------------------------------------------------------------------------------------------------

def test_signed_requests_are_checked_and_refused_in_binances_words():
    sim = paused(balances={'USDT': 50.0})
    async def test(url):
        async with httpx.AsyncClient(base_url=url) as http:
            async def account(params, key=KEY, secret=SECRET):
                headers = {'X-MBX-APIKEY': key} if key else {}
                r = await http.get('/api/v3/account?' + signed(params, secret), headers=headers)
                return r.status_code, r.json()
            now = int(time.time() * 1000)
            status, body = await account({'timestamp': now})
            assert status == 200 and {b['asset']: b['free'] for b in body['balances']}['USDT'] == '50.00000000'
            assert await account({'timestamp': now}, secret='wrong') == (400, {'code': -1022, 'msg': 'Signature for this request is not valid.'})
            assert await account({'timestamp': now - 60_000}) == (400, {'code': -1021, 'msg': 'Timestamp for this request is outside of the recvWindow.'})
            assert (await account({'timestamp': now - 8_000, 'recvWindow': 10_000}))[0] == 200
            assert (await account({'timestamp': now + 5_000}))[1]['code'] == -1021
            assert await account({'timestamp': now}, key='stranger') == (401, {'code': -2015, 'msg': 'Invalid API-key, IP, or permissions for action.'})
            assert (await account({'timestamp': now}, key=None))[1]['code'] == -2014
            assert (await account({'recvWindow': 5000}))[1] == {'code': -1102, 'msg': "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."}

            async def order(**params):
                r = await http.post('/api/v3/order', content=signed(params | {'timestamp': int(time.time() * 1000)}),
                                    headers={'X-MBX-APIKEY': KEY, 'Content-Type': 'application/x-www-form-urlencoded'})
                return r.status_code, r.json()
            assert await order(symbol='NOPEUSDT', side='BUY', type='MARKET', quantity='1') == (400, {'code': -1121, 'msg': 'Invalid symbol.'})
            assert await order(symbol='BTCUSDT', side='BUY', type='MARKET', quantity='0.01') == (
                400, {'code': -2010, 'msg': 'Account has insufficient balance for requested action.'})
            assert await order(symbol='BTCUSDT', side='BUY', type='MARKET', quantity='0.0000123') == (400, {'code': -1013, 'msg': 'Filter failure: LOT_SIZE'})
            assert (await order(symbol='BTCUSDT', side='BUY', type='LIMIT', quantity='0.0001', price='1.001', timeInForce='GTC'))[1]['msg'] == 'Filter failure: PRICE_FILTER'
            assert (await order(symbol='BTCUSDT', side='BUY', type='LIMIT', quantity='0.00001', price='100.00', timeInForce='GTC'))[1]['msg'] == 'Filter failure: NOTIONAL'
            assert (await order(symbol='BTCUSDT', side='BUY', type='LIMIT', quantity='0.0001', price='100.00'))[1]['code'] == -1102
            r = await http.get('/api/v3/klines', params={'symbol': 'BTCUSDT'})
            assert r.json()['code'] == -1102 and 'interval' in r.json()['msg']
            assert (await http.get('/api/v3/no-such-thing')).json()['code'] == -1020
        async def via_ccxt(ex):
            with pytest.raises(ccxt.InsufficientFunds): await ex.create_order('BTC/USDT', 'market', 'buy', 0.01)
            with pytest.raises(ccxt.OrderNotFound): await ex.fetch_order('12345', 'BTC/USDT')     # -2013
            with pytest.raises(ccxt.OrderNotFound): await ex.cancel_order('12345', 'BTC/USDT')    # -2011
        await using(url, via_ccxt)
        bad = ccxt_client(url, KEY, 'not-the-secret')
        try:
            with pytest.raises(ccxt.AuthenticationError): await bad.fetch_balance()
        finally: await bad.close()
    served(sim, test)


def test_answers_carry_binances_rate_limit_headers():
    sim = paused(weight_limit=50)
    async def test(url):
        async with httpx.AsyncClient(base_url=url) as http:
            if time.time() % 60 > 55: await asyncio.sleep(60.5 - time.time() % 60)   # all in one minute's window
            used = [int((await http.get('/api/v3/exchangeInfo')).headers['X-MBX-USED-WEIGHT-1M']) for _ in range(2)]
            assert used == [20, 40]                                          # exchangeInfo weighs 20
            r = await http.post('/api/v3/order', content=signed({'symbol': 'BTCUSDT', 'side': 'BUY', 'type': 'MARKET', 'quantity': '0.001',
                                                                 'timestamp': int(time.time() * 1000)}), headers={'X-MBX-APIKEY': KEY})
            assert r.status_code == 200 and r.headers['X-MBX-ORDER-COUNT-10S'] == '1' and r.headers['X-MBX-ORDER-COUNT-1D'] == '1'
            codes = [(await http.get('/api/v3/exchangeInfo')).status_code for _ in range(3)]
            assert codes == [429] * 3                                        # past the limit of 50 in this minute
            r = await http.get('/api/v3/exchangeInfo')
            assert r.json()['code'] == -1003 and int(r.headers['Retry-After']) >= 1
    served(sim, test)


# --- faults -----------------------------------------------------------------------------------------------------------

def test_a_429_storm_ends_and_the_client_recovers():
    sim = paused()
    async def test(url):
        async def go(ex):
            await ex.load_markets()
            sim.fail_next(3, status=429, retry_after=2)
            async with httpx.AsyncClient(base_url=url) as http:
                r = await http.get('/api/v3/time')
                assert (r.status_code, r.headers['Retry-After'], r.json()['code']) == (429, '2', -1003)
            for _ in range(2):
                with pytest.raises(ccxt.DDoSProtection): await ex.fetch_ohlcv('BTC/USDT', '1m', limit=5)
            assert len(await ex.fetch_ohlcv('BTC/USDT', '1m', limit=5)) == 5
            sim.fail_next(1, status=503)
            with pytest.raises(ccxt.ExchangeNotAvailable): await ex.fetch_balance()
            assert (await ex.fetch_balance())['USDT']['free'] == 10_000
        await using(url, go)
    served(sim, test)


def test_a_lost_5xx_answer_still_places_the_order():
    sim = paused()
    async def test(url):
        async def go(ex):
            await ex.load_markets()
            sim.fail_next(1, status=502, processed=True)                     # Binance: "execution status unknown"
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.create_order('BTC/USDT', 'market', 'buy', 0.001, None, {'clientOrderId': 'retry-me'})
            got = await ex.fetch_order(None, 'BTC/USDT', {'clientOrderId': 'retry-me'})
            assert (got['status'], got['filled']) == ('closed', 0.001)     # so a client must look before it retries
        await using(url, go)
    served(sim, test)


def test_slow_answers_time_the_client_out():
    sim = paused()
    async def test(url):
        async def go(ex):
            await ex.load_markets()
            sim.delay(0.8)
            with pytest.raises(ccxt.RequestTimeout): await ex.fetch_ticker('BTC/USDT')   # it gave up before the answer came
            sim.delay(0.2)
            t0 = time.monotonic()
            await ex.fetch_time()
            assert time.monotonic() - t0 >= 0.2
        await using(url, go, timeout=400)
    served(sim, test)


# --- streams ----------------------------------------------------------------------------------------------------------

def test_ccxt_pro_watches_closed_candles_and_reconnects_after_a_drop(btc):
    sim = BinanceSimulator(['BTCUSDT'], '1m', speed=30, start=-500, kline_update_seconds=0.2)
    async def test(url):
        async def go(ex):
            async def closed_candle():
                for _ in range(200):
                    rows = await ex.watch_ohlcv('BTC/USDT', '1m')
                    if len(rows) >= 2: return rows
                raise AssertionError('no closed candle')
            rows = await closed_candle()
            assert rows[-2][1:] == bundled(btc, rows[-2][0])                # the candle that closed is the real one
            assert sim.state()['streams'] == 1
            pending = asyncio.ensure_future(ex.watch_ohlcv('BTC/USDT', '1m'))
            await asyncio.sleep(0.05)
            dropped_at, errors = sim.clock_ms, 0
            assert sim.drop_streams() == 1
            try: await asyncio.wait_for(pending, 5)
            except ccxt.NetworkError: errors += 1                            # the watch that was waiting sees the drop
            for _ in range(300):                                             # the next watch calls reconnect
                try: rows = await ex.watch_ohlcv('BTC/USDT', '1m')
                except ccxt.NetworkError:
                    errors += 1; await asyncio.sleep(0.05); continue
                if rows[-1][0] >= dropped_at + 60_000: break                 # a candle that opened after the drop
            assert rows[-1][0] >= dropped_at + 60_000 and errors <= 2
            assert sim.state()['streams'] == 1                               # over a new connection
        await using(url, go, pro=True)
    served(sim, test)


def test_raw_combined_and_subscribed_kline_streams(btc):
    sim = BinanceSimulator(['BTCUSDT'], '1m', speed=40, start=-500, kline_update_seconds=0.1)
    async def closed_event(ws, combined=False):
        for _ in range(500):
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            data = msg['data'] if combined else msg
            if combined: assert msg['stream'] == 'btcusdt@kline_1m'
            if data.get('e') == 'kline' and data['k']['x']: return data['k']
        raise AssertionError('no closed kline')
    async def test(url):
        ws_url = 'ws' + url[4:]
        async with websockets.connect(f'{ws_url}/ws/btcusdt@kline_1m') as ws:
            k = await closed_event(ws)
            assert [float(k[x]) for x in 'ohlcv'] == bundled(btc, k['t']) and k['T'] == k['t'] + 59_999 and k['i'] == '1m'
        async with websockets.connect(f'{ws_url}/stream?streams=btcusdt@kline_1m') as ws:
            k = await closed_event(ws, combined=True)
            assert [float(k[x]) for x in 'ohlcv'] == bundled(btc, k['t'])
        async with websockets.connect(f'{ws_url}/ws') as ws:
            await ws.send(json.dumps({'method': 'SUBSCRIBE', 'params': ['btcusdt@kline_1m', 'btcusdt@kline_5m'], 'id': 7}))
            assert json.loads(await ws.recv()) == {'result': None, 'id': 7}
            await ws.send(json.dumps({'method': 'UNSUBSCRIBE', 'params': ['btcusdt@kline_5m'], 'id': 8}))
            await ws.send(json.dumps({'method': 'LIST_SUBSCRIPTIONS', 'id': 9}))
            answers = {}
            while 9 not in answers:
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if 'id' in m: answers[m['id']] = m
            assert answers[8] == {'result': None, 'id': 8} and answers[9]['result'] == ['btcusdt@kline_1m']
            assert (await closed_event(ws))['i'] == '1m'
    served(sim, test)


# --- another process, driven over /_sim --------------------------------------------------------------------------------

def test_a_simulator_in_another_process_is_driven_over_the_control_path(tmp_path):
    port = free_port()
    code = (f"from botcore.simulator.server import simulator_cmd; simulator_cmd(port={port}, speed=0, symbols='BTCUSDT', timeframe='1m', "
            f"start='-300', cash=1000)")
    log = open(tmp_path / 'sim.log', 'wb')
    proc = subprocess.Popen([sys.executable, '-c', code], env=clean_env(), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(300):
            try:
                state = httpx.get(f'{url}/_sim/state', timeout=1).json(); break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / 'sim.log').read_text()
                time.sleep(0.1)
        assert (state['symbols'], state['speed'], state['balances']['USDT']['free']) == (['BTCUSDT'], 0.0, 1000.0)
        t0 = state['clock_ms']
        assert httpx.post(f'{url}/_sim/clock', json={'advance': 10}).json()['clock_ms'] == t0 + 10 * 60_000
        httpx.post(f'{url}/_sim/faults', json={'status': 429, 'count': 2})
        assert [httpx.get(f'{url}/api/v3/ping').status_code for _ in range(3)] == [429, 429, 200]
        httpx.post(f'{url}/_sim/faults', json={'status': 500, 'count': 1})
        assert httpx.get(f'{url}/api/v3/ping').status_code == 500
        httpx.post(f'{url}/_sim/balances', json={'USDT': 25})
        account = httpx.get(f'{url}/api/v3/account?' + signed({'timestamp': int(time.time() * 1000)}), headers={'X-MBX-APIKEY': KEY})
        assert {b['asset']: b['free'] for b in account.json()['balances']}['USDT'] == '25.00000000'   # what a client sees

        async def streams():
            async with websockets.connect(f'ws://127.0.0.1:{port}/ws/btcusdt@kline_1m') as ws:
                httpx.post(f'{url}/_sim/faults', json={'drop_streams': True})
                with pytest.raises(websockets.ConnectionClosed):
                    while True: await asyncio.wait_for(ws.recv(), 5)
        asyncio.run(streams())
        assert httpx.post(f'{url}/_sim/faults', json={'delay': 0.3}).json()['faults']['delay'] == 0.3
        t = time.monotonic(); httpx.get(f'{url}/api/v3/ping')
        assert time.monotonic() - t >= 0.3
        assert httpx.post(f'{url}/_sim/faults', json={'clear': True}).json()['faults'] == {'fail_next': 0, 'status': 429, 'processed': False, 'delay': 0.0}
    finally:
        proc.terminate(); proc.wait(30); log.close()


def test_ctrl_c_stops_the_simulator_cleanly(tmp_path):
    "Its help says it runs until Ctrl-C: Ctrl-C is a clean stop, status 0, no traceback."
    import re, signal, subprocess
    from support import botcore_script, clean_env, wait_until
    proc = subprocess.Popen([str(botcore_script()), 'simulator', '--port', '0'], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert 'BinanceSimulator(' in first and 'http://127.0.0.1:' in first, first
        base = re.search(r'http://127\.0\.0\.1:\d+', first).group()
        def up() -> bool:
            try: return httpx.get(f'{base}/api/v3/ping', timeout=5).status_code == 200
            except httpx.HTTPError: return False
        wait_until(up, timeout=60, what='the simulator answering')  # up, as a user sees it
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0 and 'Traceback' not in rest and 'simulator stopped' in rest, rest
