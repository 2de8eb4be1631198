"""The trading engine's store on SQLite (a temporary file) and PostgreSQL (127.0.0.1:5432).

Every test runs on both databases. Each PostgreSQL test gets a freshly created schema of its own
(`options=-csearch_path=<schema>` in the URL), dropped afterwards, so runs never clash. Without a
reachable server the PostgreSQL cases skip, naming the reason, unless BOTCORE_REQUIRE_SERVICES=1,
where they fail. Prices and times come from the real BTCUSDT 1h candles.
"""
import contextvars
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from botcore.config import read_settings
from botcore.core import Fill, Order, OrderStatus, OrderType, Position, Side, Signal, Trade
from botcore.store.database import metadata, schema_diff, schema_revision, to_ms
from botcore.store.store import Store, store_fault
from botcore.store.writes import DuplicateOrderError, UnknownOrderError
from support import PG_URL, pg_unreachable, unavailable

TABLES = ('orders', 'fills', 'positions', 'trades', 'signals', 'equity', 'events', 'engine_state')


# ---------------------------------------------------------------- databases

def need_pg():
    if (why := pg_unreachable()) is not None: unavailable(why)


@pytest.fixture(params=['sqlite', 'postgresql'])
def url(request, tmp_path):
    "A database URL with no tables in it: an SQLite file, or a fresh PostgreSQL schema."
    if request.param == 'sqlite':
        yield f'sqlite:///{tmp_path}/store.db'
        return
    need_pg()
    schema = f'test_store_{uuid.uuid4().hex[:16]}'
    admin = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    with admin.begin() as c: c.exec_driver_sql(f'CREATE SCHEMA {schema}')
    try: yield f'{PG_URL}?options=-csearch_path%3D{schema}'
    finally:
        with admin.begin() as c: c.exec_driver_sql(f'DROP SCHEMA {schema} CASCADE')
        admin.dispose()


@pytest.fixture
def store(url):
    s = Store(url)
    yield s
    s.close()


def table_counts(store) -> dict[str, int]:
    with store.engine.connect() as c:
        return {t: c.execute(sa.select(sa.func.count()).select_from(metadata.tables[t])).scalar() for t in TABLES}


# ---------------------------------------------------------------- real prices

def candle(btc_1h, i):
    "(open time as datetime, close) of candle `i` of the real series."
    return btc_1h.index[i].to_pydatetime(), float(btc_1h.close.iloc[i])


def round_trips(btc_1h, n, symbol='BTCUSDT', start=-400, hold=3):
    "`n` real trades: entered at a close, left `hold` candles later; alternately long and short."
    out = []
    for k in range(n):
        (t0, p0), (t1, p1) = candle(btc_1h, start + 5 * k), candle(btc_1h, start + 5 * k + hold)
        pos = Position(symbol=symbol, side=Side.BUY if k % 2 == 0 else Side.SELL, size=0.01, entry_price=p0,
                       opened_at=t0, entry_fee=0.001 * 0.01 * p0)
        out.append(Trade.close(pos, p1, t1, 0.001 * 0.01 * p1, reason='take_profit' if k % 3 else 'stop_loss'))
    return out


# ---------------------------------------------------------------- round trips

def test_order_round_trip_and_updates(store, btc_1h):
    t0, p0 = candle(btc_1h, -50)
    limit = Order(symbol='BTCUSDT', side=Side.BUY, type=OrderType.LIMIT, quantity=0.25, price=p0, created_at=t0)
    market = Order(symbol='ETHUSDT', side=Side.SELL, quantity=1.5, created_at=candle(btc_1h, -49)[0])
    store.add_order(limit)
    store.add_order(market, status=OrderStatus.REJECTED, reason='insufficient balance')
    ms = to_ms(t0)
    assert store.order(limit.client_order_id) == dict(
        id=store.order(limit.client_order_id)['id'], client_order_id=limit.client_order_id, symbol='BTCUSDT', side='BUY',
        type='LIMIT', quantity=0.25, price=p0, status='NEW', reason=None, created_ms=ms, updated_ms=ms)
    assert store.order(market.client_order_id)['price'] is None
    assert store.order('bc-never-sent') is None

    store.update_order(limit.client_order_id, OrderStatus.PARTIALLY_FILLED, reason='0.1 of 0.25', ts_ms=ms + 1000)
    store.update_order(limit.client_order_id, 'FILLED', ts_ms=ms + 2000)  # no reason: the last one stays
    o = store.order(limit.client_order_id)
    assert (o['status'], o['reason'], o['updated_ms'], o['created_ms']) == ('FILLED', '0.1 of 0.25', ms + 2000, ms)
    before = time.time_ns() // 1_000_000
    store.update_order(market.client_order_id, 'REJECTED')  # no ts_ms: now
    assert store.order(market.client_order_id)['updated_ms'] >= before

    assert [o['client_order_id'] for o in store.orders()] == [market.client_order_id, limit.client_order_id]
    assert [o['client_order_id'] for o in store.orders(symbol='BTCUSDT')] == [limit.client_order_id]
    assert [o['symbol'] for o in store.orders(status=OrderStatus.REJECTED)] == ['ETHUSDT']
    assert store.orders(status='CANCELED') == [] and len(store.orders(limit=1)) == 1


def test_fill_round_trip(store, btc_1h):
    (t0, p0), (t1, p1) = candle(btc_1h, -10), candle(btc_1h, -9)
    a = Order(symbol='BTCUSDT', side=Side.BUY, quantity=0.3, created_at=t0)
    b = Order(symbol='ETHUSDT', side=Side.SELL, quantity=2.0, created_at=t1)
    fa1 = Fill(client_order_id=a.client_order_id, symbol='BTCUSDT', side=Side.BUY, quantity=0.1, price=p0, fee=0.01, timestamp=t0)
    fa2 = Fill(client_order_id=a.client_order_id, symbol='BTCUSDT', side=Side.BUY, quantity=0.2, price=p1, fee=0.02, timestamp=t1)
    fb = Fill(client_order_id=b.client_order_id, symbol='ETHUSDT', side=Side.SELL, quantity=2.0, price=3000.5, timestamp=t1)
    with store.transaction() as tx:
        tx.add_order(a)
        tx.add_order(b)
        for f in (fa1, fa2, fb): tx.add_fill(f)
    got = store.fills(client_order_id=a.client_order_id)
    assert [{k: f[k] for k in ('client_order_id', 'symbol', 'side', 'quantity', 'price', 'fee', 'ts_ms')} for f in got] == [
        dict(client_order_id=a.client_order_id, symbol='BTCUSDT', side='BUY', quantity=0.2, price=p1, fee=0.02, ts_ms=to_ms(t1)),
        dict(client_order_id=a.client_order_id, symbol='BTCUSDT', side='BUY', quantity=0.1, price=p0, fee=0.01, ts_ms=to_ms(t0))]
    assert [f['fee'] for f in store.fills(symbol='ETHUSDT')] == [0.0]
    assert len(store.fills()) == 3 and len(store.fills(limit=2)) == 2


def test_position_round_trip(store, btc_1h):
    t0, p0 = candle(btc_1h, -5)
    long = Position(symbol='BTCUSDT', side=Side.BUY, size=0.5, entry_price=p0, opened_at=t0, entry_fee=0.25)
    store.upsert_position(long, stop=p0 * 0.98, target=p0 * 1.04, ts_ms=to_ms(t0))
    assert store.position('BTCUSDT') == dict(symbol='BTCUSDT', side='BUY', size=0.5, entry_price=p0, entry_fee=0.25,
                                             opened_ms=to_ms(t0), stop=p0 * 0.98, target=p0 * 1.04, trailing_stop=None,
                                             updated_ms=to_ms(t0))
    # written whole: a trailing stop arrives, the size grows
    store.upsert_position(long.model_copy(update={'size': 0.75}), stop=p0 * 0.99, target=p0 * 1.04, trailing_stop=p0 * 1.01)
    p = store.position('BTCUSDT')
    assert (p['size'], p['stop'], p['trailing_stop'], p['opened_ms']) == (0.75, p0 * 0.99, p0 * 1.01, to_ms(t0))
    store.upsert_position(Position(symbol='ETHUSDT', side=Side.SELL, size=3, entry_price=2500.0, opened_at=t0))
    assert [(p['symbol'], p['side'], p['stop']) for p in store.positions()] == [('BTCUSDT', 'BUY', p0 * 0.99), ('ETHUSDT', 'SELL', None)]
    store.delete_position('BTCUSDT')
    store.delete_position('BTCUSDT')  # already gone: fine
    assert store.position('BTCUSDT') is None and [p['symbol'] for p in store.positions()] == ['ETHUSDT']


def test_trades_paging_count_and_pnl(store, btc_1h):
    made = round_trips(btc_1h, 23) + round_trips(btc_1h, 4, symbol='ETHUSDT', start=-300)
    ids = [store.add_trade(t, entry_order_id=f'bc-in-{i}', exit_order_id=f'bc-out-{i}') for i, t in enumerate(made)]
    assert len(set(ids)) == 27
    first = store.trades(limit=1, symbol='BTCUSDT', newest_first=False)[0]
    t = made[0]
    assert first == dict(id=ids[0], symbol='BTCUSDT', side='BUY', size=0.01, entry_price=t.entry_price, exit_price=t.exit_price,
                         entry_ms=to_ms(t.entry_time), exit_ms=to_ms(t.exit_time), fees=pytest.approx(t.fees),
                         pnl=pytest.approx(t.pnl), exit_reason='stop_loss', entry_order_id='bc-in-0', exit_order_id='bc-out-0')

    by_exit = sorted(zip(made, ids), key=lambda x: (to_ms(x[0].exit_time), x[1]), reverse=True)
    pages = [store.trades(limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 7, 0]
    assert [r['id'] for p in pages for r in p] == [i for _, i in by_exit]
    assert [r['id'] for r in store.trades(limit=100, newest_first=False)] == [i for _, i in by_exit][::-1]
    assert [r['id'] for r in store.trades(symbol='ETHUSDT')] == ids[23:][::-1]
    assert (store.trade_count(), store.trade_count(symbol='ETHUSDT'), store.trade_count(symbol='SOLUSDT')) == (27, 4, 0)
    assert store.realized_pnl() == pytest.approx(sum(t.pnl for t in made))
    assert store.realized_pnl(symbol='ETHUSDT') == pytest.approx(sum(t.pnl for t in made[23:]))
    with pytest.raises(ValueError, match='must be >= 0'): store.trades(offset=-1)


def test_empty_store_reads(store):
    assert (store.orders(), store.fills(), store.positions(), store.trades(), store.signals(), store.equity(), store.events()) == ([],) * 7
    assert (store.trade_count(), store.realized_pnl(), store.load_state('x'), store.states()) == (0, 0.0, None, {})


def test_signals_round_trip(store, btc_1h):
    t, _ = candle(btc_1h, -3)
    model_signal = Signal(signal='long', confidence=72.5, probability=0.725, timestamp=t, model_type='lstm',
                          symbol='BTCUSDT', timeframe='1h')
    seed_json = model_signal.model_dump(mode='json') | {'symbol': 'ETHUSDT', 'timeframe': '5m', 'signal': 'short', 'probability': 0.3}
    row = dict(symbol='BTCUSDT', timeframe='15m', signal='neutral', confidence=10.0, probability=0.55, candle_ms=to_ms(t),
               model_type='gru', received_ms=to_ms(t) + 7)
    store.add_signals([])  # nothing to do
    store.add_signals([model_signal, seed_json])
    store.add_signals([row])
    got = store.signals(limit=10)
    assert [(s['symbol'], s['signal']) for s in got] == [('ETHUSDT', 'short'), ('BTCUSDT', 'long'), ('BTCUSDT', 'neutral')]
    s = got[1]
    assert {k: s[k] for k in ('timeframe', 'confidence', 'probability', 'candle_ms', 'model_type')} == dict(
        timeframe='1h', confidence=72.5, probability=0.725, candle_ms=to_ms(t) - 3_600_000, model_type='lstm')
    assert got[0]['candle_ms'] == to_ms(t) - 300_000  # the last closed 5m candle when the signal was made
    assert got[2] == {'id': got[2]['id']} | row
    assert [s['signal'] for s in store.signals(symbol='BTCUSDT', limit=1)] == ['long']
    with pytest.raises(ValueError, match='missing signal, confidence'):
        store.add_signals([{'symbol': 'BTCUSDT', 'timeframe': '1h', 'probability': 0.5, 'candle_ms': 0, 'model_type': 'x'}])
    with pytest.raises(ValueError, match='unknown colour'): store.add_signals([row | {'colour': 'red'}])
    assert len(store.signals(limit=100)) == 3


def test_equity_events_and_state_round_trip(store, btc_1h):
    times = [to_ms(t) for t in btc_1h.index[-6:]]
    store.add_equity([(ts, 10_000.0 + i, 9_500.0, float(i)) for i, ts in enumerate(times)])
    store.add_equity([])
    assert [(e['ts_ms'], e['equity'], e['cash'], e['unrealized']) for e in store.equity(limit=2)] == [
        (times[4], 10_004.0, 9_500.0, 4.0), (times[5], 10_005.0, 9_500.0, 5.0)]
    assert [e['ts_ms'] for e in store.equity()] == times
    assert [e['ts_ms'] for e in store.equity(since_ms=times[3])] == times[3:]
    assert [e['ts_ms'] for e in store.equity(limit=1, since_ms=times[0])] == times[-1:]

    store.add_event('engine', 'started', ts_ms=times[0])
    store.add_event('risk', 'daily loss limit reached', level='warning', data={'loss_pct': 3.2, 'symbols': ['BTCUSDT']}, ts_ms=times[1])
    store.add_event('order', 'rejected', level='error', data={'code': -2010})
    ev = store.events()
    assert [(e['kind'], e['level']) for e in ev] == [('order', 'error'), ('risk', 'warning'), ('engine', 'info')]
    assert ev[1]['data'] == {'loss_pct': 3.2, 'symbols': ['BTCUSDT']} and ev[2]['data'] is None and ev[1]['ts_ms'] == times[1]
    assert [e['message'] for e in store.events(kind='engine')] == ['started'] and len(store.events(limit=1)) == 1

    store.save_state('BTCUSDT:1h', times[-1], {'losses_in_a_row': 2, 'cooldown_until_ms': None, 'day': {'start_equity': 10_000.0}})
    store.save_state('ETHUSDT:5m', None, {})
    store.save_state('BTCUSDT:1h', times[-1] + 3_600_000, {'losses_in_a_row': 0})  # upsert
    s = store.load_state('BTCUSDT:1h')
    assert (s['key'], s['last_candle_ms'], s['state']) == ('BTCUSDT:1h', times[-1] + 3_600_000, {'losses_in_a_row': 0})
    assert isinstance(s['updated_ms'], int)
    assert {k: (v['last_candle_ms'], v['state']) for k, v in store.states().items()} == {
        'BTCUSDT:1h': (times[-1] + 3_600_000, {'losses_in_a_row': 0}), 'ETHUSDT:5m': (None, {})}


# ---------------------------------------------------------------- refusals and transactions

def test_duplicate_client_order_id(store, btc_1h):
    t, p = candle(btc_1h, -2)
    o = Order(symbol='BTCUSDT', side=Side.BUY, quantity=0.1, created_at=t)
    store.add_order(o)
    again = o.model_copy(update={'quantity': 9.0})
    with pytest.raises(DuplicateOrderError, match=f"client_order_id='{o.client_order_id}': the store already holds"):
        store.add_order(again)
    assert store.order(o.client_order_id)['quantity'] == 0.1 and len(store.orders()) == 1
    # caught inside a transaction, it leaves the transaction usable on both databases
    with store.transaction() as tx:
        with pytest.raises(DuplicateOrderError): tx.add_order(o)
        tx.update_order(o.client_order_id, 'FILLED')
    assert store.order(o.client_order_id)['status'] == 'FILLED'


def test_unknown_order_refused(store, btc_1h):
    t, p = candle(btc_1h, -2)
    with pytest.raises(UnknownOrderError, match="client_order_id='bc-ghost': no such order"): store.update_order('bc-ghost', 'FILLED')
    with pytest.raises(UnknownOrderError, match='add the order first'):
        store.add_fill(Fill(client_order_id='bc-ghost', symbol='BTCUSDT', side=Side.BUY, quantity=1, price=p, timestamp=t))
    assert table_counts(store) == dict.fromkeys(TABLES, 0)


def test_rollback_on_exception_writes_nothing(store, btc_1h):
    (t0, p0), (t1, p1) = candle(btc_1h, -8), candle(btc_1h, -4)
    store.save_state('engine', 1, {'v': 1})
    before = table_counts(store)
    o = Order(symbol='BTCUSDT', side=Side.BUY, quantity=0.1, created_at=t0)
    pos = Position(symbol='BTCUSDT', side=Side.BUY, size=0.1, entry_price=p0, opened_at=t0)
    with pytest.raises(RuntimeError, match='exchange timeout'):
        with store.transaction() as tx:
            tx.add_order(o)
            tx.add_fill(Fill(client_order_id=o.client_order_id, symbol='BTCUSDT', side=Side.BUY, quantity=0.1, price=p0, timestamp=t0))
            tx.update_order(o.client_order_id, 'FILLED')
            tx.upsert_position(pos, stop=p0 * 0.98)
            tx.add_trade(Trade.close(pos, p1, t1))
            tx.add_signals([dict(symbol='BTCUSDT', timeframe='1h', signal='long', confidence=80.0, probability=0.8,
                                 candle_ms=to_ms(t0), model_type='lstm')])
            tx.add_equity([(to_ms(t1), 10_000.0, 9_000.0, 1.0)])
            tx.add_event('order', 'filled')
            tx.save_state('engine', 2, {'v': 2})
            store.add_event('risk', 'a Store write inside the block joins the transaction')
            assert store.position('BTCUSDT')['stop'] == p0 * 0.98  # reads inside see the transaction's writes
            raise RuntimeError('exchange timeout')
    assert table_counts(store) == before
    assert store.load_state('engine')['state'] == {'v': 1} and store.order(o.client_order_id) is None


def test_commit_is_one_and_invisible_until_then(store, btc_1h):
    t0, p0 = candle(btc_1h, -8)
    seen = {}
    def look(key): seen[key] = (store.position('BTCUSDT'), store.trade_count())  # another thread: its own connection
    with store.transaction() as tx:
        tx.upsert_position(Position(symbol='BTCUSDT', side=Side.BUY, size=0.1, entry_price=p0, opened_at=t0))
        tx.add_trade(round_trips(btc_1h, 1)[0])
        th = threading.Thread(target=look, args=('inside',))
        th.start()
        th.join(10)
        ctx = contextvars.copy_context()  # as asyncio.to_thread runs a function: in a copy of this context
        th = threading.Thread(target=ctx.run, args=(look, 'copied context'))
        th.start()
        th.join(10)
    look('after')
    assert seen['inside'] == seen['copied context'] == (None, 0)
    assert seen['after'][0]['entry_price'] == p0 and seen['after'][1] == 1


# ---------------------------------------------------------------- schema and migrations

def test_migrations_idempotent(url, btc_1h):
    with Store(url) as s:
        s.add_trade(round_trips(btc_1h, 1)[0])
        assert schema_revision(s.engine) == 'v0001'
    for _ in range(2):
        with Store(url) as s:  # upgrading an up-to-date database changes nothing and keeps the data
            assert (schema_revision(s.engine), s.trade_count(), schema_diff(s.engine)) == ('v0001', 1, [])
            with s.engine.connect() as c: assert c.exec_driver_sql('SELECT version_num FROM alembic_version').all() == [('v0001',)]


def test_migrate_false_creates_nothing(url):
    with Store(url, migrate=False) as s:
        assert schema_revision(s.engine) is None and sa.inspect(s.engine).get_table_names() == []


def test_migration_schema_equals_metadata(store):
    with store.engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), metadata) == []
        tables = set(sa.inspect(c).get_table_names())
    assert tables == set(TABLES) | {'alembic_version'}
    # the comparison does see a difference when there is one
    changed = sa.MetaData()
    for t in metadata.sorted_tables: t.to_metadata(changed)
    sa.Table('trades', changed, sa.Column('leverage', sa.Float), extend_existing=True)
    sa.Index('ix_signals_model_type', changed.tables['signals'].c.model_type)
    with store.engine.connect() as c: diff = compare_metadata(MigrationContext.configure(c), changed)
    assert sorted(d[0] for d in diff) == ['add_column', 'add_index']


def test_sqlite_connection_settings(tmp_path):
    with Store(f'sqlite:///{tmp_path}/deep/er/store.db') as s, s.engine.connect() as c:
        got = [c.exec_driver_sql(f'PRAGMA {p}').scalar() for p in ('journal_mode', 'synchronous', 'foreign_keys', 'busy_timeout', 'wal_autocheckpoint')]
    assert got == ['wal', 1, 1, 10_000, 0] and (tmp_path / 'deep/er/store.db').exists()


def test_sqlite_wal_checkpointed_in_background(tmp_path, btc_1h):
    "Commits do not checkpoint (wal_autocheckpoint=0); the store's thread does, and keeps the WAL bounded."
    path, trade = tmp_path / 'store.db', round_trips(btc_1h, 1)[0]
    with Store(f'sqlite:///{path}') as s:
        ck = s._checkpointer
        for k in range(5000):  # a burst with no pause for the WAL to restart on its own
            with s.transaction() as tx:
                tx.add_trade(trade)
                tx.add_event('trade', f'closed {k}', data={'k': k})
        deadline = time.monotonic() + 10
        while (ck.last is None or ck.last[1] != ck.last[2]) and time.monotonic() < deadline: time.sleep(0.05)
        assert ck.is_alive() and ck.runs > 0 and ck.last[0] == 0 and ck.last[1] == ck.last[2]  # every WAL page is in the db
        # 5,000 such commits append ~32,000 pages to a WAL that never restarts; the WAL file keeps its largest extent
        assert path.with_name('store.db-wal').stat().st_size // 4096 < 10_000
    assert not ck.is_alive()
    with Store(f'sqlite:///{path}') as s: assert s.trade_count() == 5000


def test_from_settings_default_is_sqlite_in_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no botcore.toml here
    settings = read_settings(env={'BOTCORE_DATA_DIR': str(tmp_path / 'data')})
    with Store.from_settings(settings) as s:
        s.add_event('engine', 'started')
        assert str(s.engine.url) == f"sqlite:///{tmp_path / 'data' / 'botcore.db'}"
    with Store(f"sqlite:///{tmp_path / 'data' / 'botcore.db'}") as s: assert s.events()[0]['message'] == 'started'


def test_from_settings_database_url(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = read_settings(env={'DATABASE_URL': url, 'BOTCORE_DATA_DIR': str(tmp_path), 'BOTCORE_STORE__ECHO': 'true'})
    with Store.from_settings(settings) as s:
        assert (s.dialect, s.engine.echo, schema_revision(s.engine)) == (url.split(':')[0].split('+')[0], True, 'v0001')
    assert not (tmp_path / 'botcore.db').exists()  # DATABASE_URL wins over the default file


# ---------------------------------------------------------------- durability and concurrency

WRITER = r'''
import sys
from datetime import datetime, timezone
from botcore.core import Side, Trade
from botcore.store.store import Store
url, p0, p1, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ts = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
trade = Trade(symbol='BTCUSDT', side=Side.BUY, size=0.01, entry_price=p0, exit_price=p1, entry_time=ts(t0), exit_time=ts(t1), fees=0.01)
store = Store(url)
print('ready', flush=True)
while True:
    with store.transaction() as tx:
        i = tx.add_trade(trade)
        tx.add_event('trade', f'closed {i}', data={'id': i})
    print(i, flush=True)
'''


def test_sigkill_keeps_every_committed_transaction(url, btc_1h, tmp_path):
    (t0, p0), (t1, p1) = candle(btc_1h, -30), candle(btc_1h, -20)
    env = {k: v for k, v in os.environ.items() if not k.startswith('BOTCORE_')}
    proc = subprocess.Popen([sys.executable, '-c', WRITER, url, str(p0), str(p1), str(to_ms(t0)), str(to_ms(t1))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready', proc.stderr.read()
        printed, deadline = [], time.monotonic() + 60
        while len(printed) < 300 and time.monotonic() < deadline:
            printed.append(int(proc.stdout.readline()))
        os.kill(proc.pid, signal.SIGKILL)  # mid-loop, most likely inside a transaction
        rest = proc.stdout.read()  # lines printed (so committed) before the kill
        printed += [int(l) for l in rest.split('\n')[:-1] if l.strip()]
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None: proc.kill()
    assert len(printed) >= 300
    with Store(url) as s:
        have = {t['id'] for t in s.trades(limit=10**6)}
        assert set(printed) <= have
        assert len(have) - len(printed) <= 1  # at most the commit that happened before the print was reached
        assert s.trade_count() == len(s.events(limit=10**6))  # each transaction whole or not at all
        assert {e['data']['id'] for e in s.events(limit=10**6)} == have


def test_reader_threads_and_writers(url, btc_1h):
    "The engine writes, the API reads in other threads, a second store (as a second process would) writes too."
    trades = round_trips(btc_1h, 10)
    store, other = Store(url), Store(url)
    errors, reads, stop = [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                for read in (lambda: store.trades(limit=20), store.positions, lambda: store.orders(limit=20),
                             lambda: store.equity(limit=50), lambda: store.events(limit=20), store.trade_count,
                             store.realized_pnl, lambda: store.load_state('engine')):
                    read()
                reads[0] += 1
            except Exception as e:
                errors.append(e)
                return

    def engine(n=150):
        try:
            for k in range(n):
                tr = trades[k % len(trades)]
                o = Order(symbol='BTCUSDT', side=tr.side.opposite, quantity=tr.size, created_at=tr.exit_time)
                with store.transaction() as tx:
                    tx.add_order(o)
                    tx.add_fill(Fill(client_order_id=o.client_order_id, symbol='BTCUSDT', side=o.side, quantity=tr.size,
                                     price=tr.exit_price, fee=0.01, timestamp=tr.exit_time))
                    tx.update_order(o.client_order_id, 'FILLED')
                    if k % 2:
                        tx.delete_position('BTCUSDT')
                        tx.add_trade(tr, exit_order_id=o.client_order_id)
                    else: tx.upsert_position(Position(symbol='BTCUSDT', side=tr.side, size=tr.size, entry_price=tr.entry_price,
                                                      opened_at=tr.entry_time), stop=tr.entry_price * 0.98)
                    tx.add_equity([(to_ms(tr.exit_time) + k, 10_000.0 + k, 9_000.0, 0.0)])
                    tx.save_state('engine', k, {'k': k})
        except Exception as e: errors.append(e)

    def api_writes(n=150):
        try:
            for k in range(n): other.add_event('api', f'request {k}')
        except Exception as e: errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=engine), threading.Thread(target=api_writes)]
    try:
        for th in readers + writers: th.start()
        for th in writers: th.join(120)
        reads_while_writing = reads[0]
        stop.set()
        for th in readers: th.join(30)
        assert not errors, errors[:3]
        assert reads_while_writing > 0
        assert (store.trade_count(), len(store.orders(limit=1000)), len(store.fills()), len(store.events(limit=1000))) == (75, 150, 150, 150)
        assert store.positions() == [] and store.load_state('engine')['state'] == {'k': 149}
    finally:
        stop.set()
        store.close()
        other.close()


# ---------------------------------------------------------------- faults: what the engine retries, what stops it

def test_a_lost_connection_is_retried_and_the_store_carries_on(url, btc_1h, tmp_path):
    "PostgreSQL: the session ended mid-transaction (pg_terminate_backend); SQLite: another writer holding the lock."
    first, second = round_trips(btc_1h, 2)
    with Store(url) as store:
        if store.dialect == 'sqlite':
            event.listen(store.engine, 'connect', lambda c, _: c.execute('PRAGMA busy_timeout = 50'))
            store.engine.dispose()
            holder = sa.create_engine(url, poolclass=sa.NullPool).raw_connection()
            holder.driver_connection.isolation_level = None
            holder.cursor().execute('BEGIN IMMEDIATE')                   # another process's writer
        try:
            with store.transaction() as tx:
                if store.dialect == 'postgresql':
                    pid = tx.conn.exec_driver_sql('SELECT pg_backend_pid()').scalar()
                    with sa.create_engine(PG_URL, poolclass=sa.NullPool).connect() as admin:
                        assert admin.exec_driver_sql(f'SELECT pg_terminate_backend({pid})').scalar()
                tx.add_trade(first)
        except Exception as e: fault = store_fault(e)
        else: pytest.fail('the transaction should have failed')
        if store.dialect == 'sqlite': holder.close()
        assert fault.retry, fault
        store.add_trade(second)                                          # a new connection: carries on
        assert [t['entry_price'] for t in store.trades()] == [second.entry_price]


def test_a_database_that_cannot_write_is_not_retried(url, btc_1h):
    "SQLite full (max_page_count, its own 'database or disk is full'); PostgreSQL read-only (as a standby is)."
    trade = round_trips(btc_1h, 1)[0]
    with Store(url) as store:
        def limit(dbapi_conn, _):
            if store.dialect == 'sqlite':
                pages = dbapi_conn.execute('PRAGMA page_count').fetchone()[0]
                dbapi_conn.execute(f'PRAGMA max_page_count = {pages}')
            else:
                with dbapi_conn.cursor() as cur: cur.execute('SET default_transaction_read_only = on')
                dbapi_conn.commit()
        event.listen(store.engine, 'connect', limit)
        store.engine.dispose()
        try:
            for k in range(1000):
                with store.transaction() as tx:
                    tx.add_trade(trade)
                    tx.add_event('trade', 'x' * 1000)
        except Exception as e: fault = store_fault(e)
        else: pytest.fail('the database should have refused the writes')
        assert not fault.retry
        assert ('database or disk is full' if store.dialect == 'sqlite' else 'the database is read-only') in fault.reason
        assert store.trade_count() == k                                  # every transaction before it, whole
