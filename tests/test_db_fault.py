"""The engine when its database fails mid-run: PostgreSQL sessions killed, an SQLite database full.

PostgreSQL (127.0.0.1:5432, a database of the test's own, dropped afterwards): the engine API runs on
real uvicorn in a subprocess (`rsi_app` below: the engine with the RSI rules of the bundled candles as
its signals, no AI service), replaying real BTCUSDT 1h candles, its store on that database. The test
ends every session of the engine with `pg_terminate_backend`, three times with new connections refused
for a while (an outage) and then in a burst of plain kills every few milliseconds, which hit commits
in flight. The engine must say so (`degraded`, `store_error` and `store_recovered` events), trade on
without opening anything while the store is down, find it back by itself, and in the end the store
must hold every trade once and every order once, equal to what the API lists and what the WebSocket
announced. Without a reachable server the test skips (fails under BOTCORE_REQUIRE_SERVICES=1).

SQLite: the engine trades live on the Binance simulator (botcore.simulator), its API on real uvicorn
in the test's event loop, and its database is made full mid-run (`max_page_count` on every
connection: SQLite's own "database or disk is full"). It must stop trading with status `error` and
the reason, having sent the simulator no order that the store does not hold, and the API must still
answer.
"""
import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
import websockets.sync.client

from botcore.api.engine import create_app
from botcore.config import Settings
from botcore.data.candles import load_candles
from botcore.engine.engine import Engine
from botcore.engine.signal_sources import PrecomputedSignals
from botcore.simulator.server import BinanceSimulator
from botcore.strategy.series import rsi_band_signals
from support import PG_URL, UvicornServer, clean_env, free_port, pg_unreachable, unavailable, wait_until

KEY = 'engine-key-' + 'd' * 32
AUTH = {'Authorization': f'Bearer {KEY}'}
CANDLES, SPEED = 3000, 150          # the replay: 20 s of real BTCUSDT 1h candles
HOUR = 3_600_000
pytestmark = pytest.mark.timeout(300)


def rsi_engine(settings, store) -> Engine:
    "The engine of `settings` with the RSI rules of the bundled candles as its signals."
    tf = settings.market_data.timeframe
    rules = {s: rsi_band_signals(load_candles(s, tf)) for s in settings.market_data.symbols}
    return Engine.create(settings, store, signals=PrecomputedSignals(rules, tf, 'rsi'))


rsi_app = create_app(engine_factory=rsi_engine)   # served by uvicorn as test_db_fault:rsi_app


# ---------------------------------------------------------------- PostgreSQL: sessions killed

@pytest.fixture
def pg_database():
    "(name, admin engine) of a fresh PostgreSQL database, dropped afterwards."
    if (why := pg_unreachable()) is not None: unavailable(why)
    name = f'botcore_db_fault_{uuid.uuid4().hex[:12]}'
    admin = sa.create_engine(PG_URL, poolclass=sa.NullPool, isolation_level='AUTOCOMMIT')
    with admin.connect() as c: c.exec_driver_sql(f'CREATE DATABASE {name}')
    try: yield name, admin
    finally:
        with admin.connect() as c: c.exec_driver_sql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')
        admin.dispose()


def kill_sessions(conn: sa.Connection, db: str, busy: bool = False) -> int:
    "End every session on `db` (the engine's), or (`busy`) those in a transaction; how many."
    sql = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           f"WHERE datname = '{db}' AND pid <> pg_backend_pid()" + (" AND state <> 'idle'" if busy else ''))
    return len(conn.exec_driver_sql(sql).fetchall())


def allow_connections(admin, db: str, allow: bool):
    with admin.connect() as c: c.exec_driver_sql(f'ALTER DATABASE {db} ALLOW_CONNECTIONS {str(allow).lower()}')


class Listener(threading.Thread):
    "A WebSocket client of the engine's /ws in a thread, keeping every message until it is closed."
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.messages, self.ready = url.replace('http', 'ws') + f'/ws?token={KEY}', [], threading.Event()
        self.start()
        assert self.ready.wait(10), 'the WebSocket did not connect'

    def run(self):
        with websockets.sync.client.connect(self.url) as self.ws:
            self.ready.set()
            try:
                for text in self.ws: self.messages.append(json.loads(text))
            except websockets.ConnectionClosed: pass

    def stop(self) -> bool:
        "Close; whether it was still connected (not dropped for lagging behind)."
        connected = self.is_alive()
        self.ws.close()
        self.join(10)
        return connected


def trade_count(store: sa.Engine) -> int:
    with store.connect() as c: return c.exec_driver_sql('SELECT count(*) FROM trades').scalar()


def status(http) -> dict: return http.get('/api/status').json()


def market_ms(http) -> int:
    "The engine's market clock: the close time of the last candle it processed, epoch ms."
    return int(datetime.fromisoformat(status(http)['last_candle'].replace('Z', '+00:00')).timestamp() * 1000)


def test_postgresql_sessions_killed_mid_run(pg_database, tmp_path):
    db, admin = pg_database
    env = clean_env(ENGINE_API_KEY=KEY, DATABASE_URL=f'{PG_URL.rsplit("/", 1)[0]}/{db}',
                    PYTHONPATH=str(Path(__file__).parent) + os.pathsep + os.environ.get('PYTHONPATH', ''),
                    BOTCORE_MARKET_DATA__SYMBOLS='["BTCUSDT"]', BOTCORE_MARKET_DATA__TIMEFRAME='1h', BOTCORE_MARKET_DATA__REPLAY_SPEED=str(SPEED), BOTCORE_MARKET_DATA__REPLAY_CANDLES=str(CANDLES),
                    BOTCORE_TRADING__ENABLED='false',            # started below, once the WebSocket listens
                    BOTCORE_TRADING__STOP_LOSS_PCT='0.5', BOTCORE_TRADING__TAKE_PROFIT_PCT='0.5',
                    BOTCORE_TRADING__COOLDOWN_LOSSES='0', BOTCORE_TRADING__DAILY_LOSS_LIMIT_PCT='0',
                    BOTCORE_TRADING__CHECKPOINT_SECONDS='0.2')
    server = UvicornServer('test_db_fault:rsi_app', tmp_path, env, name='engine')
    http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    listener = Listener(server.url)
    try:
        assert http.put('/api/config', json={'enabled': True}).status_code == 200
        assert http.post('/api/bot/start').json()['status'] == 'running'
        wait_until(lambda: status(http)['candles_processed'] >= 300, what='300 candles')

        # three outages: every session ended, new ones refused until the API shows `degraded`
        # and the engine has traded on through 20 more candles
        outages, killed, down = [], 0, []
        for _ in range(3):
            allow_connections(admin, db, False)
            with admin.connect() as c: killed += kill_sessions(c, db)
            wait_until(lambda: status(http)['status'] == 'degraded', what='degraded')
            seen, since = status(http)['candles_processed'], market_ms(http)
            wait_until(lambda: status(http)['candles_processed'] >= seen + 20, what='candles while the store is down')
            down.append((since, market_ms(http)))            # candles closed while the store was down
            allow_connections(admin, db, True)
            back = time.monotonic()
            wait_until(lambda: status(http)['status'] == 'running', what='running again')
            outages.append(time.monotonic() - back)
            wait_until(lambda: status(http)['candles_processed'] >= seen + 60, what='candles after the outage')

        # a burst of kills of the sessions caught in a transaction, for 3 s: commits in flight die
        burst, until = 0, time.monotonic() + 3
        with admin.connect() as c:
            while time.monotonic() < until: burst += kill_sessions(c, db, busy=True)

        wait_until(lambda: status(http)['finished'], timeout=120, what='the end of the replay')
        store = sa.create_engine(f'{PG_URL.rsplit("/", 1)[0]}/{db}', poolclass=sa.NullPool)
        st = wait_until(lambda: (s := status(http))['status'] == 'stopped' and s['total_trades'] == trade_count(store) and s,
                        what='every trade committed')
        with store.connect() as c:
            trades = [dict(r) for r in c.exec_driver_sql('SELECT * FROM trades ORDER BY id').mappings()]
            orders = [dict(r) for r in c.exec_driver_sql('SELECT * FROM orders').mappings()]
            fills = Counter(cid for (cid,) in c.exec_driver_sql('SELECT client_order_id FROM fills'))
            signal_candles = Counter(ms for (ms,) in c.exec_driver_sql('SELECT candle_ms FROM signals'))
            equity_times = Counter(ms for (ms,) in c.exec_driver_sql('SELECT ts_ms FROM equity'))
            positions = c.exec_driver_sql('SELECT count(*) FROM positions').scalar()
        store.dispose()
        events = http.get('/api/events', params={'limit': 1000}).json()
        listed = http.get('/api/trades', params={'limit': 1000}).json()
    finally:
        connected = listener.stop()
        http.close()
        server.stop()
        allow_connections(admin, db, True)

    # it said so, and found the store back by itself each time
    kinds = Counter(e['kind'] for e in events)
    assert kinds['store_error'] >= 3 and kinds['store_recovered'] >= 3, kinds
    assert any(e['kind'] == 'status' and e['message'].startswith('degraded: the store is unreachable') for e in events)
    assert st['candles_processed'] == CANDLES and st['status'] == 'stopped'   # every candle processed

    # every order once, filled once; every trade once, made of two of them
    filled = {o['client_order_id'] for o in orders if o['status'] == 'FILLED'}
    assert len(orders) == len({o['client_order_id'] for o in orders})
    assert set(fills) == filled and max(fills.values()) == 1
    assert len(trades) >= 20, len(trades)
    for end in ('entry_order_id', 'exit_order_id'):
        assert Counter(t[end] for t in trades).most_common(1)[0][1] == 1
        assert {t[end] for t in trades} <= filled
    assert len(filled) == 2 * len(trades) + positions                # opens and closes, nothing else
    assert max(signal_candles.values()) == 1 and max(equity_times.values()) == 1

    # while the store was down: candles processed, no signal taken, nothing opened
    during = lambda open_ms: any(a < open_ms + HOUR <= b for a, b in down)
    assert all(b - a >= 20 * HOUR for a, b in down)
    assert not [ms for ms in signal_candles if during(ms)]
    assert not [cid for cid in filled if cid.endswith('-o') and during(int(cid.split('-')[2]))]

    # what the API lists and the WebSocket announced is what the store holds
    assert listed['total'] == len(trades) == st['total_trades']
    assert sorted(t['id'] for t in listed['trades']) == [t['id'] for t in trades]
    assert {t['id']: t['pnl'] for t in listed['trades']} == {t['id']: t['pnl'] for t in trades}
    assert connected and len(listener.messages) > CANDLES           # never dropped for lagging
    executed = [m['data'] for m in listener.messages if m['type'] == 'TradeExecuted']
    closes = Counter(d['client_order_id'] for d in executed if d['action'] == 'close')
    opens = Counter(d['client_order_id'] for d in executed if d['action'] == 'open')
    assert closes == Counter(t['exit_order_id'] for t in trades)
    assert set(opens) == {o['client_order_id'] for o in orders if o['client_order_id'].endswith('-o') and o['status'] == 'FILLED'}
    assert max(opens.values()) == 1
    landed = server.logs().count('landed, though its connection failed')    # commits in doubt, found to have landed
    print(f"\nPostgreSQL: {killed} sessions killed in 3 outages, back to running {', '.join(f'{s:.2f}' for s in outages)} s "
          f"after connections were allowed again; {burst} more killed in a transaction in a 3 s burst, {landed} "
          f"of them as a commit landed; "
          f"{kinds['store_error']} store_error / {kinds['store_recovered']} store_recovered events; "
          f"{len(trades)} trades, {len(orders)} orders, {sum(fills.values())} fills, each once")


# ---------------------------------------------------------------- SQLite: the database full

SIM_KEY, SIM_SECRET = 'bc-fault-key-3Rv8', 'bc-fault-secret-6Lw1'


class QuietServer(uvicorn.Server):
    "uvicorn in the test's event loop, leaving the signal handlers alone."
    @contextlib.contextmanager
    def capture_signals(self): yield


def no_room(dbapi_conn, _):
    "Limit an SQLite connection to the pages the database has: the next page it needs is refused."
    pages = dbapi_conn.execute('PRAGMA page_count').fetchone()[0]
    dbapi_conn.execute(f'PRAGMA max_page_count = {pages}')


async def until(check, what: str, timeout: float = 60):
    "Wait for `await check()`, or fail naming `what`."
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline: raise TimeoutError(f'{what} not reached in {timeout} s')
        await asyncio.sleep(0.05)


def test_sqlite_full_stops_live_trading_with_nothing_unrecorded(tmp_path):
    sim = BinanceSimulator(('BTCUSDT',), '1h', 20, -1200, {SIM_KEY: SIM_SECRET})   # 60 s of candles

    async def go():
        async with sim.serve() as url:
            settings = Settings(
                data_dir=tmp_path, auth=dict(engine_api_key=KEY),
                market_data=dict(symbols=['BTCUSDT'], timeframe='1h', source='binance'),
                exchange=dict(rest_url=url, api_key=SIM_KEY, api_secret=SIM_SECRET, confirm_live=True,
                              retry_delay_seconds=0.3),
                trading=dict(mode='live', market='spot', checkpoint_seconds=0.2, stop_loss_pct=0.5,
                             take_profit_pct=0.5, cooldown_losses=0, daily_loss_limit_pct=0))
            app, port = create_app(settings, rsi_engine), free_port()
            server = QuietServer(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning'))
            serving = asyncio.create_task(server.serve())
            try:
                async with asyncio.timeout(60):
                    while not server.started: await asyncio.sleep(0.05)
                engine = app.state.engine
                async with httpx.AsyncClient(base_url=f'http://127.0.0.1:{port}', headers=AUTH, timeout=30) as http:
                    async def traded(): return engine.store.trade_count() >= 2
                    await until(traded, 'two live trades')
                    sa.event.listen(engine.store.engine, 'connect', no_room)
                    engine.store.engine.dispose()              # the next connections have no room
                    async def failed(): return (await http.get('/api/status')).json()['status'] == 'error'
                    await until(failed, 'the error')
                    async def ended(): return engine._task.done()
                    await until(ended, 'the candle loop to end')
                    sent, candles = len(sim.orders), engine.candles_processed
                    clock = sim.state()['clock_ms']
                    async def later(): return sim.state()['clock_ms'] >= clock + 10 * 3_600_000
                    await until(later, 'ten more candles on the exchange')
                    answers = [await http.get(path) for path in ('/api/status', '/api/trades', '/health')]
                return engine, sent, candles, answers
            finally:
                server.should_exit = True
                await serving

    engine, sent, candles, (status_, trades, health) = asyncio.run(go())
    reason = engine.snapshot().reason
    assert status_.status_code == 200 and status_.json()['status'] == 'error'
    assert health.json()['engine'] == 'error' and trades.status_code == 200
    assert 'database or disk is full' in reason and 'trading stopped' in reason, reason
    assert (len(sim.orders), engine.candles_processed) == (sent, candles)   # nothing traded after it
    recorded = {o['client_order_id'] for o in engine.store.orders(limit=10_000)}
    assert {o.client_id for o in sim.orders.values()} <= recorded            # nothing sent unrecorded
    assert len(recorded) >= 4
    engine.store.close()
    print(f"\nSQLite full: {len(sim.orders)} orders sent to the simulator, every one recorded; {reason}")
