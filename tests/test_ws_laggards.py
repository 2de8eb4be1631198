"""WebSocket laggards: clients that never read are dropped, and nobody else pays for them.

One real uvicorn server runs the engine API replaying the real ETHUSDT 5m candles at 200 candles/s
with the RSI rules' signals precomputed. No AI service: `trading.use_ai_signals = false` only
switches the AI client off, leaving no signals, so the signal source is given by a small app
module written into the server's data dir, as benchmarks/ws_fanout_bench.py does. That makes about
250 events a second on /ws. One client reads them all; then 50 clients connect and never read
again after the handshake.

A client that does not read fills the kernel's buffers (its receive buffer, the server's send
buffer), then uvicorn's write buffer (64 KiB); from then on the server's send to it blocks, the
engine's per-client queue (`api.ws_queue_size`, 500 here) fills, and the event bus drops the
client: its queue is emptied, and when it reads again it finds what the buffers held, then a
close frame with code 1013. The laggards shrink their buffers as a slow client on a small window
would (SO_RCVBUF 4 KiB, MSS 536: the server's send buffer then grows to about 200 KiB, not the
4 MiB that loopback's 64 KiB MSS lets it reach), so that they are dropped in seconds.

What is checked, as an operator would check it:
- every laggard is dropped: reading again, it gets fewer events than the reading client got in
  the same time, then a close with code 1013;
- the engine keeps trading while they hang on: candles processed and `/api/trades` total grow;
- the reading client keeps receiving events and is never closed;
- the engine's memory stays bounded: RSS grows by less than 100 MB (each laggard may hold 64 KiB
  of write buffer and a full queue of 500 events, about 150 KiB: 11 MB for 50 of them).
The queue holds two seconds of events: the reading client never falls that far behind.
`/api/status` reports the clients listening (`ws_clients`) and those dropped (`ws_dropped`): the
test waits on those, as an operator's monitor would.
"""

import httpx
import psutil
import pytest
from websockets.frames import Opcode

from support import UvicornServer, WsReader, clean_env, stalled_ws, wait_until

KEY = 'engine-key-' + 'e' * 32
AUTH = {'Authorization': f'Bearer {KEY}'}
LAGGARDS, QUEUE = 50, 500
pytestmark = pytest.mark.timeout(180)

APP = '''"The engine API with the RSI rules' signals precomputed."
from botcore.api.engine import create_app
from botcore.data.candles import load_candles
from botcore.engine.engine import Engine
from botcore.engine.signal_sources import PrecomputedSignals
from botcore.strategy.series import rsi_band_signals

rsi = rsi_band_signals(load_candles('ETHUSDT', '5m'))
rules = PrecomputedSignals({'ETHUSDT': rsi}, '5m', 'rsi')
app = create_app(None, lambda settings, store: Engine.create(settings, store, signals=rules))
'''


@pytest.fixture(scope='module')
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp('laggards')
    (d / 'rsi_engine.py').write_text(APP)      # uvicorn imports it from its working dir, `d`
    env = clean_env(ENGINE_API_KEY=KEY, BOTCORE_MARKET_DATA__SYMBOLS='["ETHUSDT"]',
                    BOTCORE_MARKET_DATA__TIMEFRAME='5m', BOTCORE_MARKET_DATA__REPLAY_SPEED='200',
                    BOTCORE_MARKET_DATA__REPLAY_CANDLES='30000',
                    BOTCORE_API__WS_QUEUE_SIZE=str(QUEUE), BOTCORE_TRADING__COOLDOWN_LOSSES='0',
                    BOTCORE_TRADING__DAILY_LOSS_LIMIT_PCT='0')
    server = UvicornServer('rsi_engine:app', d, env, name='engine')
    server.http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    yield server
    server.http.close()
    server.stop()
    assert 'Traceback' not in server.logs(), server.logs()[-3000:]


def texts(events) -> int: return sum(getattr(e, 'opcode', None) is Opcode.TEXT for e in events)


class Laggard:
    "A WebSocket client with small socket buffers that reads nothing after the handshake."
    def __init__(self, url: str):
        self.ws, self.sock = stalled_ws(url, rcvbuf=4096, mss=536)
        self.events = texts(self.ws.events_received())

    def drain(self) -> int | None:
        "Read again until the server closes; the close code (None if it never came)."
        while self.ws.close_rcvd is None and (data := self.sock.recv(65536)):
            self.ws.receive_data(data)
            self.events += texts(self.ws.events_received())
            self.sock.sendall(b''.join(self.ws.data_to_send()))    # pongs, the close's echo
        self.sock.close()
        return self.ws.close_rcvd.code if self.ws.close_rcvd else None




def test_laggards_are_dropped_and_nobody_else_suffers(engine):
    http, url = engine.http, engine.url.replace('http', 'ws') + f'/ws?token={KEY}'
    status = lambda: http.get('/api/status').json()
    rss = lambda: psutil.Process(engine.proc.pid).memory_info().rss
    reader = WsReader(url)
    wait_until(lambda: reader.events >= 50, timeout=30, what='the reader receiving events')
    before, rss_before = status(), rss()
    assert before['status'] == 'running' and status()['ws_dropped'] == 0

    laggards = [Laggard(url) for _ in range(LAGGARDS)]
    read_from = reader.events
    wait_until(lambda: status()['ws_dropped'] >= LAGGARDS, timeout=60, what='the laggards dropped')
    assert status()['ws_clients'] == 1                                  # the reader is still on

    # the laggards still hang on; the engine trades and the reader reads
    at_drop, read_at_drop = status(), reader.events
    trades = http.get('/api/trades').json()['total']
    assert at_drop['candles_processed'] > before['candles_processed']
    wait_until(lambda: status()['candles_processed'] >= at_drop['candles_processed'] + 200,
               timeout=30, what='200 more candles')
    wait_until(lambda: http.get('/api/trades').json()['total'] > trades, timeout=30,
               what='a trade after the drops')
    wait_until(lambda: reader.events >= read_at_drop + 100, timeout=30, what='more events')
    assert status()['status'] == 'running'
    grown = (rss() - rss_before) / 2**20
    assert grown < 100, f'the engine grew by {grown:.0f} MB with {LAGGARDS} laggards'

    # reading again, a laggard gets what the buffers held (less than the reader got), then 1013
    read = reader.events - read_from
    assert [lag.drain() for lag in laggards] == [1013] * LAGGARDS
    assert max(lag.events for lag in laggards) < read
    assert reader.is_alive() and reader.closed is None
    reader.done.set()
    reader.join(10)
    assert reader.closed is None
    wait_until(lambda: status()['ws_clients'] == 0, timeout=10, what='every client gone')
