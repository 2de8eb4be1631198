"""A WebSocket client that stops reading is disconnected, not kept until it leaves.

The real `botcore serve engine` console script runs the engine API with `[api] ws_ping_seconds`
= 1, next to a real AI service (conftest's small LSTM, thresholds 0.5 / 0.49) so that every
replayed candle (real BTCUSDT 1h, 40 a second) publishes its signal on /ws. One client reads
every event; another, with a small receive buffer (SO_RCVBUF 4 KiB), reads nothing after the
handshake, as a frozen browser tab or a laptop put to sleep would.

uvicorn waits for its write buffer to drain before each send, the close frame included, so the
app alone cannot get rid of that client. `serve engine` listens on a socket with TCP_USER_TIMEOUT
= 3 x ws_ping_seconds (`botcore.jobs.services.engine_socket`), so the kernel cuts a connection
whose data have stayed untransmitted behind a zero window that long.

Without it, uvicorn's own keepalive (a protocol ping every 20 s, 20 s to answer) closes the
descriptor after 40 s, but the kernel keeps the orphaned connection (FIN-WAIT-1, the unsent
events in its send buffer, about 300 KiB here and up to 4 MiB) as long as the client lives,
since the client keeps answering the window probes.

What is checked, as an operator would check it:
- within 30 s the stalled connection is gone, from the engine process (the descriptor closed)
  and from the kernel (no socket left in any state); without the socket option neither happens
  in that time;
- the reading client is still connected and keeps receiving events, the engine keeps running;
- the stalled client, reading again, finds its connection reset rather than stale events;
- no traceback in the engine's log.
"""
import os
import signal
import socket
import subprocess
import time

import httpx
import psutil
import pytest

from support import (UvicornServer, WsReader, botcore_script, clean_env, free_port, stalled_ws,
                     wait_until)

INTER, KEY = 'inter-service-' + 'i' * 32, 'engine-key-' + 'e' * 32
AUTH = {'Authorization': f'Bearer {KEY}'}
PING_SECONDS = 1.0
pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not hasattr(socket, 'TCP_USER_TIMEOUT'), reason='Linux only')]


@pytest.fixture(scope='module')
def ai(ai_dir):
    "The AI service serving conftest's small LSTM, with thresholds that signal often."
    env = clean_env(INTER_SERVICE_TOKEN=INTER, AI_API_KEY='ai-key-' + 'a' * 32,
                    BOTCORE_AI__LONG_THRESHOLD='0.5', BOTCORE_AI__SHORT_THRESHOLD='0.49')
    server = UvicornServer('botcore.api.ai.app:app', ai_dir, env, name='ai')
    yield server
    server.stop()


@pytest.fixture(scope='module')
def engine(ai, tmp_path_factory):
    "`botcore serve engine` on a free loopback port, replaying BTCUSDT 1h at 40 candles/s."
    d = tmp_path_factory.mktemp('stall')
    port = free_port()
    env = clean_env(BOTCORE_DATA_DIR=str(d), HOME=str(d), INTER_SERVICE_TOKEN=INTER,
                    ENGINE_API_KEY=KEY, PYTHON_AI_SERVICE_URL=ai.url,
                    BOTCORE_API__WS_PING_SECONDS=str(PING_SECONDS),
                    BOTCORE_MARKET_DATA__SYMBOLS='["BTCUSDT"]', BOTCORE_MARKET_DATA__TIMEFRAME='1h', BOTCORE_MARKET_DATA__REPLAY_SPEED='40',
                    BOTCORE_MARKET_DATA__REPLAY_CANDLES='5000')
    log = open(d / 'engine.log', 'wb')
    cmd = [str(botcore_script()), 'serve', 'engine', '--host', '127.0.0.1', '--port', str(port),
           '--log-level', 'warning']
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=log, stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=f'http://127.0.0.1:{port}', headers=AUTH, timeout=30)
    def healthy():
        assert proc.poll() is None, (d / 'engine.log').read_text()[-3000:]
        try: return http.get('/health').status_code == 200
        except httpx.TransportError: return False
    try:
        wait_until(healthy, timeout=120, every=0.3, what='the engine answering /health')
        yield proc, http, port
    finally:
        http.close()
        proc.send_signal(signal.SIGTERM)
        try: proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    logs = (d / 'engine.log').read_text(errors='replace')
    assert 'Traceback' not in logs, logs[-3000:]


class Stalled:
    "A WebSocket client with a 4 KiB receive buffer that reads nothing after the handshake."
    def __init__(self, url: str):
        self.ws, self.sock = stalled_ws(url, rcvbuf=4096)
        self.port = self.sock.getsockname()[1]

    def wake(self) -> str:
        "Read again until the connection ends: 'reset', or 'closed' (a FIN); 'open' after 20 s."
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536): return 'closed'
                self.sock.sendall(b''.join(self.ws.data_to_send()))
            return 'open'
        except ConnectionResetError: return 'reset'
        except TimeoutError: return 'open'
        finally: self.sock.close()




def kernel_sockets(server_port: int, client_port: int) -> list[str]:
    "The states of the kernel's sockets from `server_port` to `client_port`, orphans included."
    return [c.status for c in psutil.net_connections('tcp')
            if c.laddr.port == server_port and c.raddr and c.raddr.port == client_port]


def descriptor(pid: int, client_port: int) -> tuple[int, str]:
    "The process's descriptor of its connection to `client_port`, and what it links to."
    fd = next(c.fd for c in psutil.Process(pid).net_connections('tcp')
              if c.raddr and c.raddr.port == client_port)
    return fd, os.readlink(f'/proc/{pid}/fd/{fd}')


def closed(pid: int, fd: int, link: str) -> bool:
    "Whether descriptor `fd` of `pid` no longer links to `link`."
    try: return os.readlink(f'/proc/{pid}/fd/{fd}') != link
    except FileNotFoundError: return True


def test_a_client_that_stops_reading_is_disconnected(engine):
    proc, http, port = engine
    url = f'ws://127.0.0.1:{port}/ws?token={KEY}'
    status = lambda: http.get('/api/status').json()
    reader = WsReader(url)
    wait_until(lambda: reader.events >= 50, timeout=60, what='the reader receiving events')
    stalled = Stalled(url)
    assert kernel_sockets(port, stalled.port) == [psutil.CONN_ESTABLISHED]
    fd, link = descriptor(proc.pid, stalled.port)
    t0 = time.monotonic()
    wait_until(lambda: closed(proc.pid, fd, link) and not kernel_sockets(port, stalled.port),
               timeout=30, every=0.2, what="the stalled client's connection gone")
    print(f"stalled connection gone after {time.monotonic() - t0:.1f} s "
          f"(TCP_USER_TIMEOUT {3 * PING_SECONDS:g} s)")
    read, candles = reader.events, status()['candles_processed']
    wait_until(lambda: reader.events >= read + 20, timeout=30, what='more events for the reader')
    assert reader.is_alive() and reader.closed is None
    st = status()
    assert st['status'] == 'running' and st['candles_processed'] > candles
    assert stalled.wake() == 'reset'
    reader.done.set()
    reader.join(10)
    assert reader.closed is None
