"""botcore.exchange.binance against the Binance simulator (botcore.simulator) on loopback, through real ccxt clients.

The simulator replays the bundled real candles as Binance's REST API and kline streams would serve them, keeps a
spot account and injects faults (429 storms, lost answers, dropped streams). What is checked is what a trader would:
- history comes back paginated and equal to the bundled candles;
- the live stream yields every closed candle exactly once, in order, across dropped streams and pauses, with the gap
  fetched over REST, and resumes after a given candle;
- an order is placed exactly once through a 429 storm and through a lost answer; a known client id returns the order
  already there; the symbol's filters round and refuse before sending; refusals and refused keys are mapped, and
  neither logs nor errors show the secret;
- `download_candles` writes the bundled Parquet format and resumes without repeating a candle;
- the engine trades on the simulator's candles (paper and live), and a dropped stream mid-run loses no candle.
"""
import asyncio, logging, os, subprocess, sys, time
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from botcore.exchange.binance import BinanceExchange, live_exchange
from botcore.exchange.binance_data import BinanceMarketData
from botcore.exchange.connection import BinanceConnection, LiveTradingRefused
from botcore.config import Settings
from botcore.core import Order, OrderStatus
from botcore.data.candles import CANDLE_COLUMNS, load_candles, open_times_ms
from botcore.exchange.download import download_candles_async
from botcore.exchange.interfaces import ExchangeAuthError, OrderRejected
from botcore.simulator.server import BinanceSimulator
from support import clean_env

KEY, SECRET = 'bc-test-key-7Qx2', 'bc-test-secret-9Zp4'
HOUR = 3_600_000
pytestmark = pytest.mark.timeout(300)


def run(coro): return asyncio.run(coro)

def connection(url: str, secret: str = SECRET, **kw) -> BinanceConnection:
    return BinanceConnection(rest_url=url, api_key=KEY, api_secret=secret, **{'retry_delay': 0.05} | kw)

def sim(symbols=('BTCUSDT',), timeframe='1h', speed=0.0, start=-400, **kw) -> BinanceSimulator:
    return BinanceSimulator(symbols, timeframe, speed, start, {KEY: SECRET}, **kw)

def bundled(symbol: str, timeframe: str, open_ms) -> pd.DataFrame:
    "The bundled candles of `symbol` at the given open times."
    df = load_candles(symbol, timeframe)
    return df.loc[pd.to_datetime(np.asarray(open_ms, dtype='int64'), unit='ms', utc=True), list(CANDLE_COLUMNS)]

def rows_of(candles) -> np.ndarray: return np.array([[c.open, c.high, c.low, c.close, c.volume] for c in candles])


# --- candles ----------------------------------------------------------------------------------------------------------

def test_history_is_paginated_closed_and_equal_to_the_bundle(btc_1h):
    s = sim(start=-600)
    async def go():
        async with s.serve() as url:
            md = BinanceMarketData('BTCUSDT', '1h', connection(url))
            calls = []
            fetch = md.rest.fetch_ohlcv
            async def counted(*a, **k): calls.append(a); return await fetch(*a, **k)
            md.rest.fetch_ohlcv = counted
            try:
                df = await md.fetch_candles('BTCUSDT', 2500)
                now = s.clock.ms
                forming, pages = now - now % HOUR, len(calls)
                old = await md.fetch_candles('BTCUSDT', 10, until_ms=forming - 100 * HOUR)
            finally: await md.close()
        return df, forming, pages, old
    df, forming, pages, old = run(go())
    ts = open_times_ms(df)
    assert len(df) == 2500 and pages >= 4                           # one for the forming candle, three pages of at most 1,000
    assert ts[-1] == forming - HOUR                                # the last closed candle; the forming one is left out
    assert np.all(np.diff(ts) == HOUR)                             # this stretch of the bundle has no outage
    pd.testing.assert_frame_equal(df, bundled('BTCUSDT', '1h', ts), check_freq=False)
    assert open_times_ms(old).tolist() == list(range(forming - 110 * HOUR, forming - 100 * HOUR, HOUR))


def test_fetch_candles_returns_limit_candles_across_real_outages(btc_1h):
    "The 1h bundle's 2018-02-08 outage (33 missing hours) lies in the window: still exactly `limit` candles, as Binance has them."
    s = sim(start='2018-02-12')
    async def go():
        async with s.serve() as url:
            async with BinanceMarketData('BTCUSDT', '1h', connection(url)) as md: return await md.fetch_candles('BTCUSDT', 1500)
    df = run(go())
    ts = open_times_ms(df)
    assert len(df) == 1500 and np.diff(ts).max() > 30 * HOUR
    pd.testing.assert_frame_equal(df, bundled('BTCUSDT', '1h', ts), check_freq=False)


async def take(stream, n: int, on_each=None) -> list:
    out = []
    async for symbol, candle in stream:
        out.append((symbol, candle))
        if on_each is not None: await on_each(len(out))
        if len(out) == n: break
    return out


def test_stream_yields_each_closed_candle_once_in_order_across_dropped_streams(caplog):
    "History, then the stream: no gap, no repeat, bundled values; two drops, the second with the consumer away for ~6 candles."
    caplog.set_level(logging.INFO, logger='botcore.exchange.binance')
    s = sim(speed=10, start=-300)
    async def go():
        async with s.serve() as url:
            md = BinanceMarketData('BTCUSDT', '1h', connection(url))
            try:
                history = await md.fetch_candles('BTCUSDT', 50)
                async def faults(n):
                    if n == 5: asyncio.get_running_loop().call_later(0.03, s.drop_streams)   # dropped while it waits for the next
                    if n == 12: s.drop_streams(); await asyncio.sleep(0.6)         # dropped, and nobody listening for a while
                got = await asyncio.wait_for(take(md.stream(), 30, faults), 60)
            finally: await md.close()
        return history, got
    history, got = run(go())
    ts = [c.timestamp for _, c in got]
    assert {sym for sym, _ in got} == {'BTCUSDT'}
    assert ts[0] == open_times_ms(history)[-1] + HOUR                              # continues right after the history
    assert ts == list(range(ts[0], ts[0] + 30 * HOUR, HOUR))                       # every candle, once, in order
    np.testing.assert_array_equal(rows_of(c for _, c in got), bundled('BTCUSDT', '1h', ts).to_numpy())
    assert 'not seen closed on the stream; fetching them' in caplog.text           # the gap came from REST
    assert 'reconnecting' in caplog.text


def test_stream_resumes_after_a_given_candle_with_a_backfill_first():
    s = sim(speed=4, start=-300)
    async def go():
        async with s.serve() as url:
            async with BinanceMarketData('BTCUSDT', '1h', connection(url)) as md:
                now = s.clock.ms; forming = now - now % HOUR
                after = forming - 40 * HOUR
                return after, await asyncio.wait_for(take(md.stream({'BTCUSDT': after}), 45), 60)
    after, got = run(go())
    ts = [c.timestamp for _, c in got]
    assert ts == list(range(after + HOUR, after + 46 * HOUR, HOUR))                # 39 backfilled, then live ones
    np.testing.assert_array_equal(rows_of(c for _, c in got), bundled('BTCUSDT', '1h', ts).to_numpy())


def test_stream_of_two_symbols_is_in_time_order():
    s = sim(('BTCUSDT', 'ETHUSDT'), '5m', speed=10, start=-300)
    step = 300_000
    async def go():
        async with s.serve() as url:
            async with BinanceMarketData(['BTCUSDT', 'ETHUSDT'], '5m', connection(url)) as md:
                await md.fetch_candles('BTCUSDT', 5); await md.fetch_candles('ETHUSDT', 5)
                return await asyncio.wait_for(take(md.stream(), 40, lambda n: asyncio.sleep(0) if n != 15 else _drop(s)), 60)
    got = run(go())
    ts = [c.timestamp for _, c in got]
    assert ts == sorted(ts)
    for sym in ('BTCUSDT', 'ETHUSDT'):
        mine = [c.timestamp for s_, c in got if s_ == sym]
        assert mine == list(range(mine[0], mine[0] + len(mine) * step, step)) and len(mine) >= 19
        np.testing.assert_array_equal(rows_of(c for s_, c in got if s_ == sym), bundled(sym, '5m', mine).to_numpy())

async def _drop(s): s.drop_streams()


def test_a_silent_stream_is_taken_for_dead_and_reconnected(caplog):
    "No update for `idle_seconds` (the clock paused, no kline pushes): reconnect, and carry on when candles come again."
    s = sim(speed=0, start=-300, kline_update_seconds=1000)
    async def go():
        async with s.serve() as url:
            async with BinanceMarketData('BTCUSDT', '1h', connection(url), idle_seconds=0.4) as md:
                last = open_times_ms(await md.fetch_candles('BTCUSDT', 3))[-1]
                asyncio.get_running_loop().call_later(1.5, s.set_speed, 5)
                return last, await asyncio.wait_for(take(md.stream(), 4), 30)
    last, got = run(go())
    assert [c.timestamp for _, c in got] == [last + i * HOUR for i in range(1, 5)]
    assert 'no candle update from Binance for 0.4 s; reconnecting' in caplog.text


# --- orders -----------------------------------------------------------------------------------------------------------

def orders_with(s: BinanceSimulator, cid: str) -> list: return [o for o in s.orders.values() if o.client_id == cid]


def test_a_429_storm_slows_an_order_down_but_it_is_placed_exactly_once(caplog):
    s = sim()
    async def go():
        async with s.serve() as url:
            async with BinanceExchange(connection(url), ['BTCUSDT']) as ex:
                await ex.markets()
                s.fail_next(5, 429)
                t = time.monotonic()
                r = await ex.place_order(Order(client_order_id='bc-storm-1', symbol='BTCUSDT', side='BUY', quantity=0.01),
                                         market_price=s.price('BTCUSDT'))
                return r, time.monotonic() - t, await ex.place_order(r.order)
    r, took, again = run(go())
    assert (r.order.status, r.filled_quantity, len(orders_with(s, 'bc-storm-1'))) == (OrderStatus.FILLED, 0.01, 1)
    assert took >= 0.05 * (1 + 2 + 4 + 8 + 16)                     # five backoffs, doubling
    assert caplog.text.count('429') >= 5 and again == r and len(s.orders) == 1


def test_an_order_whose_answer_is_lost_is_looked_up_not_sent_again():
    "Binance carries out the order but the answer never arrives (503 after processing): one order, found by its client id."
    s = sim()
    async def go():
        async with s.serve() as url:
            async with BinanceExchange(connection(url), ['BTCUSDT']) as ex:
                create = ex.rest.create_order
                async def answer_lost(*a, **k):
                    s.fail_next(1, 503, processed=True)
                    return await create(*a, **k)
                ex.rest.create_order = answer_lost
                return await ex.place_order(Order(client_order_id='bc-lost-1', symbol='BTCUSDT', side='BUY', quantity=0.02),
                                            market_price=s.price('BTCUSDT'))
    r = run(go())
    [o] = orders_with(s, 'bc-lost-1')
    assert (r.order.status, r.filled_quantity, o.status, len(s.orders)) == (OrderStatus.FILLED, 0.02, 'FILLED', 1)
    assert r.fills[0].price == pytest.approx(float(s.trades[0]['price'])) and r.fee == pytest.approx(float(s.trades[0]['commission']))


def test_a_known_client_id_returns_the_order_already_there():
    s = sim()
    async def go():
        async with s.serve() as url:
            limit = round(s.price('BTCUSDT') * 0.9, 2)
            order = Order(client_order_id='bc-dup-1', symbol='BTCUSDT', side='BUY', type='LIMIT', quantity=0.01, price=limit)
            async with BinanceExchange(connection(url), ['BTCUSDT']) as first:
                placed = await first.place_order(order)
            async with BinanceExchange(connection(url), ['BTCUSDT']) as restarted:        # an engine restarted after sending
                again = await restarted.place_order(order)
                duplicate_answer = await restarted._submit(order)                        # Binance: -2010 Duplicate order sent.
                market = Order(client_order_id='bc-dup-2', symbol='BTCUSDT', side='BUY', quantity=0.01)
                filled = await restarted.place_order(market, market_price=s.price('BTCUSDT'))
            async with BinanceExchange(connection(url), ['BTCUSDT']) as third:           # spot reuses a filled order's id
                filled_again = await third.place_order(market, market_price=s.price('BTCUSDT'))
            return placed, again, duplicate_answer, filled, filled_again
    placed, again, dup, filled, filled_again = run(go())
    assert placed.order.status is OrderStatus.NEW and again.order == placed.order
    assert dup['clientOrderId'] == 'bc-dup-1' and dup['id'] == str(orders_with(s, 'bc-dup-1')[0].id)
    assert (len(orders_with(s, 'bc-dup-1')), len(orders_with(s, 'bc-dup-2')), len(s.orders)) == (1, 1, 2)
    assert filled_again == filled and filled.order.status is OrderStatus.FILLED


def test_filters_round_before_sending_and_refuse_below_min_notional():
    s = sim()
    async def go():
        async with s.serve() as url:
            async with BinanceExchange(connection(url), ['BTCUSDT']) as ex:
                price = s.price('BTCUSDT')
                lim = await ex.place_order(Order(client_order_id='bc-f-1', symbol='BTCUSDT', side='BUY', type='LIMIT',
                                                 quantity=0.0123456789, price=round(price * 0.9, 2) + 0.0049))
                try: await ex.place_order(Order(client_order_id='bc-f-2', symbol='BTCUSDT', side='BUY', quantity=0.00005), market_price=price)
                except OrderRejected as e: small = e
                return lim, small, await ex.fetch_order('BTCUSDT', 'bc-f-1'), await ex.cancel_order('BTCUSDT', 'bc-f-1')
    lim, small, fetched, canceled = run(go())
    [o] = orders_with(s, 'bc-f-1')
    assert (o.qty, lim.order.quantity) == (0.01234, 0.01234)                      # down to the step size 0.00001
    assert o.price == lim.order.price and round(o.price, 2) == o.price             # down to the tick 0.01
    assert 'NOTIONAL' in small.reason and 'minimum notional 5' in small.reason and not orders_with(s, 'bc-f-2')
    assert (fetched.status, canceled.status, canceled.client_order_id) == (OrderStatus.NEW, OrderStatus.CANCELED, 'bc-f-1')


def test_refusals_become_order_rejected_with_binance_words():
    s = sim()
    async def go():
        async with s.serve() as url:
            async with BinanceExchange(connection(url), ['BTCUSDT']) as ex:
                out = {}
                for name, order in (('funds', Order(symbol='BTCUSDT', side='BUY', quantity=5.0)),
                                    ('short', Order(symbol='BTCUSDT', side='SELL', quantity=0.01)),
                                    ('symbol', Order(symbol='DOGEUSDT', side='BUY', quantity=100.0))):
                    try: await ex.place_order(order, market_price=s.price('BTCUSDT'))
                    except OrderRejected as e: out[name] = e
                return out
    out = run(go())
    assert 'insufficient funds: Account has insufficient balance' in out['funds'].reason
    assert 'insufficient funds' in out['short'].reason                               # a spot account cannot sell what it lacks
    assert "unknown symbol 'DOGEUSDT'" in out['symbol'].reason
    assert not s.orders


def test_a_refused_key_is_an_auth_error_and_the_secret_never_shows(caplog):
    caplog.set_level(logging.DEBUG)                                                 # ccxt logs each request with its headers
    s = sim()
    async def go():
        errors = []
        async with s.serve() as url:
            for con in (connection(url, secret='bc-wrong-secret-1Kq8'), BinanceConnection(rest_url=url, api_key='bc-unknown-key-5Tn',
                                                                                       api_secret=SECRET, retry_delay=0.05)):
                async with BinanceExchange(con, ['BTCUSDT']) as ex:
                    for call in (ex.fetch_balance(), ex.place_order(Order(symbol='BTCUSDT', side='BUY', quantity=0.01), market_price=60_000)):
                        try: await call
                        except ExchangeAuthError as e: errors.append(e)
        return errors
    errors = run(go())
    assert len(errors) == 4 and not s.orders
    assert 'Signature for this request is not valid' in str(errors[0]) and 'Invalid API-key' in str(errors[2])
    text = caplog.text + ' '.join(str(e) + repr(e) for e in errors)
    assert 'X-MBX-APIKEY' in caplog.text                                           # the requests were logged ...
    for secret in ('bc-wrong-secret-1Kq8', SECRET, KEY, 'bc-unknown-key-5Tn'): assert secret not in text   # ... without the keys


def test_balance_and_positions_after_a_round_trip():
    s = sim()
    async def go():
        async with s.serve() as url:
            async with BinanceExchange(connection(url), ['BTCUSDT']) as ex:
                p = s.price('BTCUSDT')
                buy = await ex.place_order(Order(symbol='BTCUSDT', side='BUY', quantity=0.05), market_price=p)
                held, balance = await ex.fetch_positions(), await ex.fetch_balance()
                sell = await ex.place_order(Order(symbol='BTCUSDT', side='SELL', quantity=0.05), market_price=p)
                return buy, held, balance, sell, await ex.fetch_positions(), await ex.fetch_balance()
    buy, held, balance, sell, after, end = run(go())
    assert [(x.symbol, x.side.value, x.size) for x in held] == [('BTCUSDT', 'BUY', 0.05)] and after == []
    assert balance['cash'] == pytest.approx(10_000 - buy.fills[0].notional - buy.fee)
    assert balance['equity'] == pytest.approx(balance['cash'] + 0.05 * held[0].entry_price)
    assert end['cash'] == pytest.approx(10_000 - buy.fee - sell.fee)               # the same price both ways: only fees paid


def test_live_exchange_needs_keys_confirmation_and_binance_candles():
    base = dict(trading={'mode': 'live'})
    with pytest.raises(LiveTradingRefused, match='api_key and api_secret not set.*confirm_live is not true.*replay'):
        live_exchange(Settings(**base))
    ok = Settings(**base, market_data={'source': 'binance'}, exchange={'api_key': KEY, 'api_secret': SECRET, 'confirm_live': True})
    assert isinstance(live_exchange(ok), BinanceExchange)
    with pytest.raises(LiveTradingRefused, match='confirm_live'):
        live_exchange(Settings(**base, market_data={'source': 'binance'}, exchange={'api_key': KEY, 'api_secret': SECRET}))


# --- download ---------------------------------------------------------------------------------------------------------

def test_download_writes_the_bundled_format_and_resumes(tmp_path):
    s = sim(start='2024-03-01')
    path = tmp_path / 'BTCUSDT-1h.parquet'
    async def go():
        async with s.serve() as url:
            md = BinanceMarketData('BTCUSDT', '1h', connection(url))
            try:
                await download_candles_async('BTCUSDT', '1h', '2024-01-01', path, progress=False, market=md)
                first = load_candles(path=path)
                s.advance(30)
                await download_candles_async('BTCUSDT', '1h', '2024-01-01', path, progress=False, market=md)
                return first, load_candles(path=path)
            finally: await md.close()
    first, second = run(go())
    since, clock = pd.Timestamp('2024-01-01', tz='UTC'), pd.Timestamp('2024-03-01', tz='UTC')
    assert (first.index[0], first.index[-1]) == (since, clock - pd.Timedelta('1h'))           # up to the last closed candle
    assert len(second) == len(first) + 30 and second.index.is_unique and second.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(second, load_candles('BTCUSDT', '1h').loc[second.index[0]:second.index[-1]], check_freq=False)
    assert list(pd.read_parquet(path).columns) == ['timestamp', *CANDLE_COLUMNS]
    sources = (tmp_path / 'SOURCES.md').read_text()
    assert sources.count('| BTCUSDT-1h.parquet |') == 1 and f'| {len(second):,} | 2024-01-01 00:00 |' in sources


def test_download_command_resumes_an_interrupted_download(tmp_path):
    "`download_cmd` in a subprocess (the CLI's code path), pointed at the simulator by the environment; stopped by `--until`, resumed."
    s = sim(start='2024-02-01')
    path = tmp_path / 'data' / 'BTCUSDT-1h.parquet'
    async def cli(url, *args):
        env = clean_env(BOTCORE_EXCHANGE__REST_URL=url, HOME=str(tmp_path), BOTCORE_DATA_DIR=str(tmp_path))
        code = "import sys; from botcore.exchange.download import download_cmd; sys.exit(download_cmd(**dict(a.split('=', 1) for a in sys.argv[1:])) or 0)"
        p = await asyncio.create_subprocess_exec(sys.executable, '-c', code, *args, cwd=tmp_path, env=env,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await p.communicate()
        return p.returncode, out.decode()
    async def go():
        async with s.serve() as url:
            a = await cli(url, 'symbol=BTCUSDT', 'timeframe=1h', 'since=2024-01-01', 'until=2024-01-10', f'path={path}')
            n = len(load_candles(path=path))
            b = await cli(url, 'symbol=BTCUSDT', 'timeframe=1h', f'path={path}')
            c = await cli(url, 'symbol=ETHUSDT', 'timeframe=1h', f'path={tmp_path / "eth.parquet"}')
            return a, n, b, c
    (rc1, out1), n, (rc2, out2), (rc3, out3) = run(go())
    assert (rc1, n) == (0, 9 * 24), out1
    df = load_candles(path=path)
    assert rc2 == 0 and df.index[-1] == pd.Timestamp('2024-01-31 23:00', tz='UTC') and len(df) == 31 * 24 and df.index.is_unique, out2
    assert rc3 == 2 and 'since: give the first candle' in out3


# --- the engine ---------------------------------------------------------------------------------------------------------

def engine_settings(tmp_path, url: str, **more) -> Settings:
    return Settings(data_dir=tmp_path, market_data=dict(symbols=['BTCUSDT'], timeframe='1h', source='binance'),
                    exchange=dict(rest_url=url, retry_delay_seconds=0.3, **more.pop('exchange', {})),
                    trading=dict(use_ai_signals=False, checkpoint_seconds=0.2, cooldown_losses=0, daily_loss_limit_pct=0,
                                 stop_loss_pct=1.0, take_profit_pct=1.0, **more.pop('trading', {})), **more)

async def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline: raise TimeoutError(f"no {what} after {timeout} s")
        await asyncio.sleep(0.05)


def test_the_engine_trades_on_the_simulator_and_misses_no_candle_when_the_stream_drops(tmp_path, btc_1h, caplog):
    "Engine.create with BinanceMarketData on the simulator, a paper exchange, RSI signals of the bundle; a drop mid-run."
    from botcore.engine.engine import Engine
    from botcore.engine.signal_sources import PrecomputedSignals
    from botcore.strategy.series import rsi_band_signals
    caplog.set_level(logging.INFO, logger='botcore.exchange.binance')
    s = sim(speed=8, start=-400)
    async def go():
        async with s.serve() as url:
            settings = engine_settings(tmp_path, url)
            md = BinanceMarketData.from_settings(settings)
            engine = Engine.create(settings, market=md, signals=PrecomputedSignals({'BTCUSDT': rsi_band_signals(btc_1h)}, '1h', 'rsi'))
            try:
                await engine.start()
                await wait_until(lambda: engine.candles_processed >= 25, 60, '25 candles')
                s.drop_streams()
                await wait_until(lambda: engine.candles_processed >= 60, 60, '60 candles')
                await engine.stop()
                return engine, list(engine.symbols['BTCUSDT'].window)
            finally: await engine.close(); engine.store.close()
    engine, window = run(go())
    from botcore.store.store import Store
    store = Store(settings_url(tmp_path))
    signals = sorted(r['candle_ms'] for r in store.signals(limit=10_000, symbol='BTCUSDT'))
    assert len(signals) == engine.candles_processed >= 60
    assert signals == list(range(signals[0], signals[0] + len(signals) * HOUR, HOUR))        # one row per candle, none missed
    ts = [c.timestamp for c in window]
    assert ts == list(range(ts[0], ts[0] + len(ts) * HOUR, HOUR)) and ts[-1] == signals[-1]   # history and stream join up
    np.testing.assert_array_equal(rows_of(window), bundled('BTCUSDT', '1h', ts).to_numpy())
    fills, orders = store.fills(limit=1000), store.orders(limit=1000)
    assert fills and {o['status'] for o in orders} <= {'FILLED', 'REJECTED'} and any(o['status'] == 'FILLED' for o in orders)
    assert 'reconnecting' in caplog.text and 'not seen closed on the stream; fetching them' in caplog.text   # the gap: REST
    store.close()

def settings_url(tmp_path) -> str: return Settings(data_dir=tmp_path).database_url


def test_the_engine_trades_live_on_the_simulator_and_stops_on_a_refused_key(tmp_path, btc_1h):
    "trading.mode = live (spot, so long only): the orders are the simulator's, each sent once through a 429 storm; a refused key stops the engine."
    from botcore.engine.engine import Engine
    from botcore.engine.signal_sources import PrecomputedSignals
    from botcore.strategy.series import rsi_band_signals
    s = sim(speed=8, start=-400)
    signals = PrecomputedSignals({'BTCUSDT': rsi_band_signals(btc_1h)}, '1h', 'rsi')
    async def go():
        async with s.serve() as url:
            keys = dict(api_key=KEY, api_secret=SECRET, confirm_live=True)
            settings = engine_settings(tmp_path / 'live', url, exchange=keys, trading=dict(mode='live', market='spot'))
            engine = Engine.create(settings, signals=signals)
            bad = Engine.create(engine_settings(tmp_path / 'bad', url, exchange=keys | dict(api_secret='bc-wrong-secret-1Kq8'),
                                                trading=dict(mode='live', market='spot')), signals=signals)
            try:
                assert isinstance(engine.exchange, BinanceExchange)
                await engine.start(); await bad.start()
                await wait_until(lambda: engine.total_trades >= 1 and bad.status == 'error', 90, 'a live trade and a stopped engine')
                before = engine.total_trades
                s.fail_next(6, status=429, retry_after=0.2)           # a rate-limit storm while the engine trades on
                await wait_until(lambda: s.state()['faults']['fail_next'] == 0, 60, 'the storm to pass')
                await wait_until(lambda: engine.total_trades >= before + 2, 120, 'two more live trades after the storm')
                assert engine.status == 'running'
                await engine.stop()
                return engine, bad
            finally:
                for e in (engine, bad): await e.close(); e.store.close()
    engine, bad = run(go())
    from botcore.store.store import Store
    with Store(settings_url(tmp_path / 'live')) as store:
        orders = store.orders(limit=1000)
        filled = [o['client_order_id'] for o in orders if o['status'] == 'FILLED']
        assert filled and all(len(orders_with(s, cid)) == 1 for cid in filled)                # each sent once, to the simulator
        assert len(store.fills(limit=1000)) == len(filled) and store.trade_count() >= 1
        for o in orders:                                         # filled, or refused for a sell beyond the holding
            assert o['status'] == 'FILLED' or (o['status'] == 'REJECTED' and 'insufficient funds' in o['reason']), o
    with Store(settings_url(tmp_path / 'bad')) as store:
        [err] = store.events(kind='error')
        assert 'refused the API key' in err['message'] and 'bc-wrong-secret-1Kq8' not in err['message']
