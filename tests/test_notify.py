"""`[notify]` end to end: alerts published on a real `EventBus` reach real HTTP servers on loopback
standing in for each service (a generic JSON endpoint, Telegram's `/bot<token>/sendMessage`,
Discord's `/api/webhooks/<id>/<token>`, Slack's `/services/T../B../<secret>`), in the body each
service's documentation asks for. The stand-ins refuse what the real services refuse (an empty
Telegram text, a Discord content over 2,000 characters, a Slack body without text), can answer
500 or 429, or hang. Also: retries and their single log line without the token, Retry-After, a
hanging webhook that costs the publisher nothing, and the daily summary from a real SQLite store.
"""
import asyncio
import json
import logging
import threading
import time
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import pytest

from botcore.core import Side, Trade
from botcore.engine.events import EventBus
from botcore.engine.notify import Notifier, summary_of_day
from botcore.sections import NotifySettings, mask_url
from botcore.store.store import Store
from support import free_port

T0 = 1714521600000  # 2024-05-01 00:00 UTC, in ms
TG_TOKEN = '123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw'
DISCORD_TOKEN = 'Xz9kq1WsYt8dRnq7bL0vUe3pA2cFgH5jK6mN4oP9rS1tU0vW'
SLACK_SECRET = 'Zk3Jd9TqW8mN2pLx5RvY7sBc'


def run(coro): return asyncio.run(coro)


class Request(NamedTuple):
    path: str
    body: dict
    content_type: str
    at: float  # time.monotonic() when it arrived


class Services:
    """One loopback HTTP server standing in for every service: it records each request and answers
    as the service would, or as `plan[path]` says (a list of (status, headers, body) or 'hang',
    used up in order)."""
    def __init__(self):
        self.requests: list[Request] = []
        self.plan: dict[str, list] = {}
        self.release = threading.Event()  # lets hanging requests go at the end
        services = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                body = json.loads(raw or b'null')
                services.requests.append(Request(self.path, body, self.headers['Content-Type'],
                                                 time.monotonic()))
                planned = services.plan.get(self.path) or []
                answer = planned.pop(0) if planned else services.answer(self.path, body)
                if answer == 'hang':
                    services.release.wait(60)
                    return
                status, headers, data = answer
                self.send_response(status)
                for k, v in headers.items(): self.send_header(k, v)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a): pass

        self.server = ThreadingHTTPServer(('127.0.0.1', free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str: return f'http://127.0.0.1:{self.server.server_port}{path}'

    def answer(self, path: str, body: dict) -> tuple[int, dict, bytes]:
        "What the real service answers a good (or a bad) request."
        js = {'Content-Type': 'application/json'}
        if path.startswith('/bot'):
            if not body.get('chat_id') or not body.get('text') or len(body['text']) > 4096:
                return 400, js, b'{"ok":false,"error_code":400,"description":"Bad Request"}'
            return 200, js, json.dumps(dict(ok=True, result=dict(message_id=1))).encode()
        if path.startswith('/api/webhooks/'):
            if not body.get('content') or len(body['content']) > 2000:
                return 400, js, b'{"message":"Invalid Form Body","code":50035}'
            return 204, {}, b''
        if path.startswith('/services/'):
            if not body.get('text'): return 400, {'Content-Type': 'text/plain'}, b'no_text'
            return 200, {'Content-Type': 'text/plain'}, b'ok'
        return 200, js, b'{"ok":true}'

    def bodies(self, path: str) -> list[dict]:
        return [r.body for r in self.requests if r.path == path]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def services():
    s = Services()
    yield s
    s.close()


def trade(bus: EventBus, action: str, side: str, price: float, pnl=None, reason=None, n=1):
    bus.publish('TradeExecuted', symbol='BTCUSDT', side=side, quantity=0.0123, price=price,
                timestamp=T0, action=action, reason=reason, pnl=pnl, client_order_id=f'bc-{n}')


def bot_event(bus: EventBus, kind: str, message: str, level: str = 'info', **data):
    bus.publish('BotEvent', kind=kind, level=level, message=message, timestamp=T0,
                data=data or None)


async def until(check, timeout: float = 10, what: str = 'condition'):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline: raise TimeoutError(f'{what} not reached in {timeout} s')
        await asyncio.sleep(0.02)


def notify(*webhooks, **kw) -> NotifySettings:
    return NotifySettings(webhooks=list(webhooks), **kw)


TG_PATH = f'/bot{TG_TOKEN}/sendMessage'
DISCORD_PATH = f'/api/webhooks/1234567890123456789/{DISCORD_TOKEN}'
SLACK_PATH = f'/services/T00000000/B00000000/{SLACK_SECRET}'

TEXTS = ['Position opened\nOpened BTCUSDT long 0.0123 @ 64,123.50',
         'Position closed\nClosed BTCUSDT long 0.0123 @ 65,000.00: PnL +10.78 (take profit)',
         'Engine degraded\nDegraded: the AI service is down (GET /health failed); '
         'nothing new opens',
         'Engine recovered\nRunning again: the AI service is back',
         'Order rejected\nBTCUSDT BUY 0.01: insufficient balance (< 10 USDT free)']


def test_each_service_gets_the_body_its_docs_ask_for(services):
    "A trading story on the bus reaches each service in its own format, in order; noise does not."
    settings = notify(
        dict(url=services.url('/alerts')),
        dict(url=services.url(f'/bot{TG_TOKEN}'), format='telegram', chat_id='-1001234'),
        dict(url=services.url(DISCORD_PATH), format='discord'),
        dict(url=services.url(SLACK_PATH), format='slack'),
        dict(url=services.url('/closes'), events=['position_closed']))

    async def story():
        bus = EventBus()
        notifier = Notifier(settings).start(bus)
        trade(bus, 'open', 'BUY', 64123.5)
        bus.publish('AISignalReceived', symbol='BTCUSDT', signal='buy', confidence=0.7,
                    timestamp=T0)
        trade(bus, 'close', 'SELL', 65000.0, pnl=10.78, reason='take_profit', n=2)
        bot_event(bus, 'status', 'running: started', status='running')  # not a recovery
        bot_event(bus, 'status', 'degraded: the AI service is down (GET /health failed); '
                  'nothing new opens', 'warning', status='degraded')
        bot_event(bus, 'ai_error', 'GET /health failed', 'warning')
        bot_event(bus, 'status', 'running: the AI service is back', status='running')
        bot_event(bus, 'order_rejected', 'BTCUSDT BUY 0.01: insufficient balance (< 10 USDT free)',
                  'warning')
        paths = ('/alerts', TG_PATH, DISCORD_PATH, SLACK_PATH)
        await until(lambda: all(len(services.bodies(p)) == 5 for p in paths), what='5 alerts each')
        await notifier.close()
        return notifier

    notifier = run(story())
    assert services.bodies(TG_PATH) == [
        dict(chat_id='-1001234', text=t, disable_web_page_preview=True) for t in TEXTS]
    assert services.bodies(DISCORD_PATH) == [
        dict(content=t, username='botcore', allowed_mentions=dict(parse=[])) for t in TEXTS]
    assert services.bodies(SLACK_PATH) == [dict(text=t) for t in TEXTS[:4]] + [
        dict(text='Order rejected\nBTCUSDT BUY 0.01: insufficient balance (&lt; 10 USDT free)')]
    assert {r.content_type for r in services.requests} == {'application/json'}

    generic = services.bodies('/alerts')
    assert [(b['event'], b['level']) for b in generic] == [
        ('position_opened', 'info'), ('position_closed', 'info'), ('degraded', 'warning'),
        ('recovered', 'info'), ('order_rejected', 'warning')]
    assert [f"{b['title']}\n{b['text']}" for b in generic] == TEXTS
    assert generic[0] == dict(
        source='botcore', event='position_opened', level='info', title='Position opened',
        text='Opened BTCUSDT long 0.0123 @ 64,123.50', timestamp='2024-05-01T00:00:00Z',
        data=dict(symbol='BTCUSDT', side='BUY', quantity=0.0123, price=64123.5, timestamp=T0,
                  action='open', reason=None, pnl=None, client_order_id='bc-1'))
    assert (generic[1]['data']['pnl'], generic[1]['data']['reason']) == (10.78, 'take_profit')
    assert generic[2]['data'] == dict(kind='status', status='degraded', message=(
        'degraded: the AI service is down (GET /health failed); nothing new opens'))
    assert [b['event'] for b in services.bodies('/closes')] == ['position_closed']
    assert [b.sent for b in notifier.outboxes] == [5, 5, 5, 5, 1]


def test_failing_webhooks_are_retried_then_dropped_with_one_masked_line(services, caplog):
    "500s and a dead port are retried max_retries times; a 400 is not; no token reaches the log."
    caplog.set_level(logging.DEBUG)
    dead = free_port()  # nothing listens there
    settings = notify(
        dict(url=services.url(SLACK_PATH), format='slack'),
        dict(url=services.url(DISCORD_PATH), format='discord'),
        dict(url=f'http://127.0.0.1:{dead}/bot{TG_TOKEN}', format='telegram', chat_id='42'),
        max_retries=3, retry_delay_seconds=0.05)
    services.plan[SLACK_PATH] = [(500, {}, b'internal error')] * 10
    services.plan[DISCORD_PATH] = [(400, {}, b'{"message":"Unknown Webhook","code":10015}')]

    async def story():
        bus = EventBus()
        notifier = Notifier(settings).start(bus)
        bot_event(bus, 'order_rejected', 'BTCUSDT BUY 0.01: insufficient balance', 'warning')
        await until(lambda: sum(b.failed for b in notifier.outboxes) == 3, what='3 failures')
        await asyncio.sleep(0.3)  # time enough for a try too many
        await notifier.close()
        return notifier

    notifier = run(story())
    assert len(services.bodies(SLACK_PATH)) == 4  # the first try and 3 retries
    assert len(services.bodies(DISCORD_PATH)) == 1  # a 400 will not pass later
    assert [(b.sent, b.failed) for b in notifier.outboxes] == [(0, 1), (0, 1), (0, 1)]

    warnings = [r.getMessage() for r in caplog.records
                if r.name == 'botcore.engine.notify' and r.levelno == logging.WARNING]
    slack, discord, telegram = (mask_url(services.url(SLACK_PATH)),
                                mask_url(services.url(DISCORD_PATH)),
                                mask_url(f'http://127.0.0.1:{dead}/bot{TG_TOKEN}'))
    assert warnings.count(f'notify: {slack}: the order_rejected alert dropped after 4 tries '
                          '(last: HTTP 500)') == 1
    assert [w for w in warnings if discord in w] == [
        f'notify: {discord} refused the order_rejected alert (HTTP 400); dropped, not retried']
    assert [w for w in warnings if telegram in w] == [
        f'notify: {telegram}: the order_rejected alert dropped after 4 tries (last: ConnectError)']
    assert len(warnings) == 3
    for secret in (SLACK_SECRET, DISCORD_TOKEN, TG_TOKEN, TG_TOKEN.split(':')[1]):
        assert secret not in caplog.text
    assert '***' in slack and '***' in discord and 'bot***' in telegram
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == 'httpx']
    assert httpx_lines and all('***' in line for line in httpx_lines)  # httpx's own lines, masked


def test_429_waits_as_long_as_the_service_asks(services):
    "A 429's Retry-After (generic) or Telegram's parameters.retry_after is honoured; then it goes."
    limited, tg = '/limited', f'/bot{TG_TOKEN}/sendMessage'
    services.plan[limited] = [(429, {'Retry-After': '1'}, b'')]
    services.plan[tg] = [(429, {'Content-Type': 'application/json'}, json.dumps(dict(
        ok=False, error_code=429, description='Too Many Requests: retry after 1',
        parameters=dict(retry_after=1))).encode())]
    settings = notify(dict(url=services.url(limited)),
                      dict(url=services.url(tg), format='telegram', chat_id='42'),
                      retry_delay_seconds=0.01)  # without the 429's word: 10 ms

    async def story():
        bus = EventBus()
        notifier = Notifier(settings).start(bus)
        trade(bus, 'open', 'BUY', 64123.5)
        await until(lambda: all(b.sent == 1 for b in notifier.outboxes), what='both sent')
        await notifier.close()

    run(story())
    for path in (limited, tg):
        first, second = [r.at for r in services.requests if r.path == path]
        assert 0.9 < second - first < 5, (path, second - first)


def test_a_hanging_webhook_costs_the_publisher_nothing(services, caplog):
    """10,000 trades published while one webhook never answers take about as long as with no
    notifier at all; its queue stays bounded, and another webhook still gets its alert at once."""
    caplog.set_level(logging.WARNING)
    n = 10_000
    services.plan['/hangs'] = ['hang']
    settings = notify(dict(url=services.url('/hangs')),
                      dict(url=services.url(SLACK_PATH), format='slack',
                           events=['order_rejected']),
                      timeout_seconds=30, queue_size=100)

    async def publish(bus: EventBus) -> float:
        "Publish `n` trades as the engine does, yielding to the loop after each; seconds taken."
        t = time.perf_counter()
        for i in range(n):
            if i % 2: trade(bus, 'close', 'SELL', 65000.0, pnl=1.0, reason='stop_loss', n=i)
            else: trade(bus, 'open', 'BUY', 64123.5, n=i)
            await asyncio.sleep(0)
        return time.perf_counter() - t

    async def drain(sub):
        while await sub.get() is not None: pass

    async def story():
        bus = EventBus()
        client = asyncio.create_task(drain(bus.subscribe(n + 10)))  # a WebSocket client's share
        without = await publish(bus)
        notifier = Notifier(settings).start(bus)
        trade(bus, 'open', 'BUY', 64123.5)
        await until(lambda: services.bodies('/hangs'), what='the hanging request')
        with_hang = await publish(bus)
        await until(lambda: notifier.sub.queue.empty(), what='the notifier read the bus')
        sent_at = time.monotonic()
        bot_event(bus, 'order_rejected', 'BTCUSDT BUY 0.01: insufficient balance', 'warning')
        await until(lambda: services.bodies(SLACK_PATH), timeout=5, what='the slack alert')
        latency = time.monotonic() - sent_at
        hanging = notifier.outboxes[0]
        queued = hanging.queue.qsize()
        t = time.monotonic()
        await notifier.close(grace=0.5)
        closing = time.monotonic() - t
        client.cancel()
        return without, with_hang, latency, queued, hanging, closing, bus

    without, with_hang, latency, queued, hanging, closing, bus = run(story())
    assert with_hang < 10 * without + 1, (with_hang, without)
    assert latency < 2, latency
    assert len(services.bodies('/hangs')) == 1  # the first alert still waits for its answer
    assert queued <= 100 and hanging.overflowed >= n - 101
    assert closing < 3, closing  # the grace, then cancelled: the hang holds nobody
    assert bus.dropped == 0  # the notifier kept up with the bus
    lines = [r.getMessage() for r in caplog.records if 'is behind' in r.getMessage()]
    assert lines and len(lines) <= n // 100 + 1
    hangs = mask_url(services.url('/hangs'))
    assert lines[0] == f'notify: {hangs} is behind: dropped its oldest alert (1 so far)'


def test_daily_summary_has_the_days_figures_from_the_store(services, tmp_path):
    "The summary of 2024-05-01 counts the trades that closed that UTC day, from a real store."
    store = Store(f'sqlite:///{tmp_path}/store.db')
    closes = [(datetime(2024, 4, 30, 23, 59), 100.0), (datetime(2024, 5, 1, 0, 0), 10.0),
              (datetime(2024, 5, 1, 9, 30), -4.0), (datetime(2024, 5, 1, 23, 59, 59), 6.0),
              (datetime(2024, 5, 2, 0, 0), -50.0)]
    for at, pnl in closes:
        at = at.replace(tzinfo=timezone.utc)
        store.add_trade(Trade(symbol='BTCUSDT', side=Side.BUY, size=0.01, entry_price=60_000.0,
                              exit_price=60_000.0 + pnl / 0.01, entry_time=at - timedelta(hours=2),
                              exit_time=at, exit_reason='signal'))
    day = date(2024, 5, 1)
    settings = notify(dict(url=services.url('/alerts'), events=['daily_summary']),
                      dict(url=services.url(f'/bot{TG_TOKEN}'), format='telegram', chat_id='42'))

    async def story():
        notifier = Notifier(settings, summary=lambda: summary_of_day(store, day)).start(EventBus())
        alert = await notifier.send_summary()
        await until(lambda: len(services.requests) == 2, what='the summary at both webhooks')
        await notifier.close()
        return alert

    try: alert = run(story())
    finally: store.close()
    assert alert.event == 'daily_summary'
    [generic] = services.bodies('/alerts')
    figures = generic['data']
    assert (generic['event'], generic['title']) == ('daily_summary', 'Daily summary 2024-05-01')
    assert (figures['day'], figures['trades'], figures['wins'], figures['total_trades']) == (
        '2024-05-01', 3, 2, 5)
    assert figures['pnl'] == pytest.approx(12.0)
    assert figures['win_rate'] == pytest.approx(2 / 3)
    assert figures['realized_pnl'] == pytest.approx(62.0)
    assert services.bodies(TG_PATH) == [dict(chat_id='42', disable_web_page_preview=True, text=(
        'Daily summary 2024-05-01\n3 trades closed, 2 won (66.7%), PnL +12.00\n'
        'All time: 5 trades, realised PnL +62.00'))]


def test_the_engine_sends_its_alerts(services, tmp_path, ai_dir):
    """`botcore.api.engine` with a `[notify]` webhook: a real engine (paper, replaying BTCUSDT 1h as
    fast as it can on a real AI service's signals, thresholds lowered so that it trades) sends its
    positions opened and closed, with their PnL, to a generic JSON webhook."""
    import httpx
    from support import UvicornServer, clean_env
    token = 't' * 32
    ai = UvicornServer('botcore.api.ai.app:app', ai_dir, clean_env(
        INTER_SERVICE_TOKEN=token, BOTCORE_AI__LONG_THRESHOLD='0.5',
        BOTCORE_AI__SHORT_THRESHOLD='0.49'), name='notify-ai')
    hook = json.dumps([dict(url=services.url('/hook'))])
    env = clean_env(ENGINE_API_KEY='k' * 32, INTER_SERVICE_TOKEN=token, PYTHON_AI_SERVICE_URL=ai.url,
                    BOTCORE_NOTIFY__WEBHOOKS=hook,
                    BOTCORE_MARKET_DATA__SYMBOLS='["BTCUSDT"]', BOTCORE_MARKET_DATA__TIMEFRAME='1h',
                    BOTCORE_MARKET_DATA__REPLAY_SPEED='0', BOTCORE_MARKET_DATA__REPLAY_CANDLES='400',
                    BOTCORE_MARKET_DATA__CONFIDENCE_THRESHOLD='0.5',
                    BOTCORE_TRADING__STOP_LOSS_PCT='0.5', BOTCORE_TRADING__TAKE_PROFIT_PCT='0.5',
                    BOTCORE_TRADING__COOLDOWN_LOSSES='0', BOTCORE_TRADING__DAILY_LOSS_LIMIT_PCT='0')
    server = UvicornServer('botcore.api.engine:app', tmp_path, env, name='notify-engine')
    try:
        auth = {'Authorization': 'Bearer ' + 'k' * 32}
        deadline = time.monotonic() + 120
        while not (st := httpx.get(f'{server.url}/api/status', headers=auth).json())['finished']:
            assert time.monotonic() < deadline, 'the replay did not finish'
            time.sleep(0.5)
        trades = httpx.get(f'{server.url}/api/trades', headers=auth, params={'limit': 1000}).json()
    finally:
        server.stop()
        ai.stop()
    assert st['total_trades'] > 0
    got = services.bodies('/hook')
    closed = [b for b in got if b['event'] == 'position_closed']
    assert len([b for b in got if b['event'] == 'position_opened']) >= len(closed) == st['total_trades']
    pnl = sorted(round(t['pnl'], 2) for t in trades['trades'])
    assert sorted(round(b['data']['pnl'], 2) for b in closed) == pnl
    assert all(b['source'] == 'botcore' and 'PnL' in b['text'] for b in closed)
    assert 'Traceback' not in server.logs()
