"""What the tests (and benchmarks/dashboard_bench.py, benchmarks/analyze_bench.py) share besides
fixtures: free loopback ports, a clean environment, skipping for a missing service, WebSocket
clients (one that reads everything, one that stalls), and real uvicorn and Voila servers in
subprocesses. The shared fixtures are in conftest.py."""
import asyncio, functools, os, shutil, signal, subprocess, sys, threading, time
from pathlib import Path

import httpx

from botcore.config import ENV_VARS
from botcore.jobs.sandbox import free_port   # a loopback port nothing listens on


BOTCORE = Path(sys.executable).with_name('botcore')


PG_URL = 'postgresql+psycopg://postgres@127.0.0.1:5432/test'   # the test server: trust auth


# Where browser tests keep their screenshots, logs and timings.
ARTIFACTS = Path(os.environ.get('BOTCORE_TEST_ARTIFACTS') or Path(__file__).parent / 'artifacts')


@functools.cache
def pg_unreachable(url: str = PG_URL) -> str | None:
    "Why the PostgreSQL server at `url` cannot be used, or None."
    import sqlalchemy as sa
    try:
        eng = sa.create_engine(url, connect_args={'connect_timeout': 3}, poolclass=sa.NullPool)
        with eng.connect() as c: c.exec_driver_sql('SELECT 1')
        return None
    except Exception as e:
        return f"PostgreSQL at {url} unreachable: {type(e).__name__}: {str(e).splitlines()[0]}"


def unavailable(reason: str):
    "Skip the test for want of a service or tool, or fail it when BOTCORE_REQUIRE_SERVICES=1."
    import pytest
    if os.environ.get('BOTCORE_REQUIRE_SERVICES') == '1':
        pytest.fail(f'{reason} (BOTCORE_REQUIRE_SERVICES=1)')
    pytest.skip(reason)


def chromium() -> str:
    "Chromium's path, or skip (fail when BOTCORE_REQUIRE_SERVICES=1)."
    try: import playwright.sync_api  # noqa: F401
    except ImportError: unavailable('Playwright is not installed: pip install playwright')
    for p in (os.environ.get('BOTCORE_CHROMIUM'), '/usr/bin/chromium', '/usr/bin/chromium-browser', shutil.which('chromium')):
        if p and Path(p).is_file(): return p
    unavailable('Chromium is not installed: apt-get install -y chromium (or set BOTCORE_CHROMIUM)')


def botcore_script() -> Path:
    "The `botcore` console script of this environment, or skip (fail when BOTCORE_REQUIRE_SERVICES=1)."
    if not BOTCORE.exists():
        unavailable(f'the botcore console script is not installed ({BOTCORE}): pip install -e .')
    return BOTCORE




def clean_env(**extra: str) -> dict:
    "This process's environment without any botcore setting, plus `extra`."
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith('BOTCORE_') and k not in ENV_VARS and k != 'DATABASE_URL'}
    return env | {'PYTHONUNBUFFERED': '1'} | extra


class UvicornServer:
    "`python -m uvicorn <app>` on a free loopback port, with its own data dir, env and log file."
    def __init__(self, app: str, data_dir: Path, env: dict, port: int | None = None, name: str = 'server', health_timeout: float = 180):
        self.app, self.data_dir, self.env, self.name = app, Path(data_dir), env, name
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log_path = self.data_dir / f'{name}.log'
        self.proc, self.health_timeout = None, health_timeout
        self.start()

    def start(self):
        self.log = open(self.log_path, 'ab')
        env = self.env | {'BOTCORE_DATA_DIR': str(self.data_dir), 'HOME': str(self.data_dir)}
        self.proc = subprocess.Popen([sys.executable, '-m', 'uvicorn', self.app, '--host', '127.0.0.1', '--port', str(self.port),
                                      '--workers', '1', '--log-level', 'warning'],
                                     cwd=self.data_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_healthy()
        return self

    def logs(self) -> str: return self.log_path.read_text(errors='replace')

    def wait_healthy(self):
        deadline = time.monotonic() + self.health_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None: raise RuntimeError(f'{self.name} exited {self.proc.returncode}:\n{self.logs()[-5000:]}')
            try:
                if httpx.get(f'{self.url}/health', timeout=2).status_code == 200: return
            except httpx.TransportError: pass
            time.sleep(0.2)
        raise TimeoutError(f'{self.name} not healthy after {self.health_timeout}s:\n{self.logs()[-5000:]}')

    def stop(self):
        "SIGTERM, as Ctrl-C or `docker stop` would; uvicorn shuts down cleanly."
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(30)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        self.log.close()

    def kill(self):
        "SIGKILL: no shutdown code runs."
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


def wait_until(check, timeout: float = 60, every: float = 0.1, what: str = 'condition'):
    "The first truthy result of `check()`, polled every `every` s; TimeoutError naming `what` after `timeout` s."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (got := check()): return got
        time.sleep(every)
    raise TimeoutError(f'{what} not reached in {timeout}s')


class Dashboards:
    "`botcore serve dashboard` (as `serve_dashboard_cmd`) in a subprocess on a free loopback port."
    def __init__(self, data_dir: Path, env: dict):
        self.dir, self.port = data_dir, free_port()
        self.url, self.log_path = f'http://127.0.0.1:{self.port}', data_dir / 'voila.log'
        code = 'import sys; from botcore.dashboard.clients import serve_dashboard_cmd; sys.exit(serve_dashboard_cmd(port=int(sys.argv[1])) or 0)'
        self.proc = subprocess.Popen([sys.executable, '-c', code, str(self.port)], cwd=data_dir, env=env,
                                     stdout=open(self.log_path, 'ab'), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None: raise RuntimeError(f'voila exited {self.proc.returncode}:\n{self.logs()[-5000:]}')
            try:
                if httpx.get(self.url + '/health', timeout=2).status_code == 200: return
            except httpx.TransportError: pass
            time.sleep(0.2)
        raise TimeoutError(f'voila not up after 60 s:\n{self.logs()[-5000:]}')

    def logs(self) -> str: return self.log_path.read_text(errors='replace')

    def kernels(self) -> list[int]:
        "Process ids of the kernels the dashboards run."
        import psutil
        try: return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True) if 'ipykernel' in ' '.join(p.cmdline())]
        except psutil.Error: return []

    def stop(self):
        left = self.kernels()
        self.proc.send_signal(signal.SIGTERM)
        try: self.proc.wait(30)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        for pid in left:                                      # a kernel Voila failed to shut down
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass


def stalled_ws(url: str, rcvbuf: int = 4096, mss: int | None = None):
    """A raw WebSocket client socket, handshake done, that will read nothing more unless told:
    (websockets' sans-I/O `ClientProtocol`, the socket), with a `rcvbuf`-byte receive buffer (and
    an `mss`-byte segment size) as a slow client on a small window would have."""
    import socket as _socket
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri
    uri = parse_uri(url)
    ws, sock = ClientProtocol(uri), _socket.socket()
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, rcvbuf)
    if mss: sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_MAXSEG, mss)
    sock.settimeout(10)
    sock.connect((uri.host, uri.port))
    ws.send_request(ws.connect())
    sock.sendall(b''.join(ws.data_to_send()))
    while ws.state is State.CONNECTING: ws.receive_data(sock.recv(4096))
    return ws, sock


class WsReader(threading.Thread):
    "A WebSocket client that reads every event, in a thread of its own; `done.set()` ends it."
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.events, self.closed, self.done = url, 0, None, threading.Event()
        self.start()

    def run(self): asyncio.run(self.read())

    async def read(self):
        import websockets
        async with websockets.connect(self.url) as ws:
            try:
                while not self.done.is_set():
                    try: await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError: continue
                    self.events += 1
            except websockets.ConnectionClosed as e: self.closed = e.rcvd.code if e.rcvd else -1
