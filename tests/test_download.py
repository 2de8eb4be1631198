"""`botcore download` as a new user runs it, against the Binance simulator (`botcore simulator`) as the exchange:
the console scripts in subprocesses, the simulator pointed at by `[exchange] rest_url` (here its environment
variable), as the README shows.

- the candles go to the user's data directory (`<data_dir>/candles/`), never into the bundled `data/`: the bundled
  files are byte for byte what they were, and a `--path` into them is refused with status 2 naming the folder;
- `--since` is honoured: earlier than the file's first candle, the candles before it are fetched too; what the file
  then holds equals the bundled real candles the simulator serves, none repeated;
- a downloaded series that is not bundled is found by `botcore data` (and `load_candles`) by its name.
"""
import hashlib
import signal
import subprocess
import time

import httpx
import pandas as pd
import pytest

from botcore.data.candles import bundled_dir, load_candles
from support import botcore_script, clean_env, free_port

pytestmark = pytest.mark.timeout(300)


def bundle_digest() -> dict[str, str]:
    "sha256 of every file in the bundled data folder."
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bundled_dir().iterdir()) if p.is_file()}


@pytest.fixture(scope='module')
def simulator(tmp_path_factory):
    "`botcore simulator` on a free loopback port: BTCUSDT 1h, the clock paused at 2024-02-01 00:00 UTC."
    d, port = tmp_path_factory.mktemp('sim'), free_port()
    log = open(d / 'simulator.log', 'wb')
    proc = subprocess.Popen([str(botcore_script()), 'simulator', '--port', str(port), '--speed', '0', '--symbols',
                             'BTCUSDT', '--timeframe', '1h', '--start', '2024-02-01'],
                            cwd=d, env=clean_env(HOME=str(d)), stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f'http://127.0.0.1:{port}', time.monotonic() + 120
    while True:
        assert proc.poll() is None, (d / 'simulator.log').read_text()
        try:
            if httpx.get(f'{url}/api/v3/ping', timeout=2).status_code == 200: break
        except httpx.TransportError: pass
        assert time.monotonic() < deadline, 'the simulator did not answer in 120 s'
        time.sleep(0.2)
    yield url
    proc.send_signal(signal.SIGINT)                 # Ctrl-C: how it is meant to stop
    try: proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def botcore(tmp_path, url: str, *args) -> subprocess.CompletedProcess:
    "`botcore ARGS` with its own home and data dir, `[exchange] rest_url` set to the simulator."
    env = clean_env(HOME=str(tmp_path), BOTCORE_DATA_DIR=str(tmp_path / 'data'), BOTCORE_EXCHANGE__REST_URL=url)
    return subprocess.run([str(botcore_script()), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)


def test_download_goes_to_the_data_dir_honours_since_and_leaves_the_bundle_alone(tmp_path, simulator):
    before = bundle_digest()
    mine = tmp_path / 'data' / 'candles' / 'BTCUSDT-1h.parquet'
    bundled = load_candles('BTCUSDT', '1h')

    r = botcore(tmp_path, simulator, 'download', '--symbol', 'BTCUSDT', '--timeframe', '1h', '--since', '2024-01-10',
                '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    first = load_candles(path=mine)
    assert (first.index[0], first.index[-1]) == (pd.Timestamp('2024-01-10', tz='UTC'), pd.Timestamp('2024-01-31 23:00', tz='UTC'))
    assert r.stdout.splitlines()[0] == f'{mine}: 528 candles, 2024-01-10 00:00 to 2024-01-31 23:00 UTC'
    assert 'BTCUSDT 1h is bundled too' in r.stdout and f'--data-path {mine}' in r.stdout, r.stdout

    # an earlier --since than the file's first candle: the candles before it are fetched too, none repeated
    r = botcore(tmp_path, simulator, 'download', '--since', '2024-01-01', '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    got = load_candles(path=mine)
    pd.testing.assert_frame_equal(got, bundled.loc['2024-01-01':'2024-01-31 23:00'], check_freq=False)
    assert r.stdout.splitlines()[0] == f'{mine}: 744 candles, 2024-01-01 00:00 to 2024-01-31 23:00 UTC'
    sources = (mine.parent / 'SOURCES.md').read_text()
    assert sources.count('| BTCUSDT-1h.parquet | 744 | 2024-01-01 00:00 | 2024-01-31 23:00 | 0 |') == 1, sources

    # a --since before the exchange's first candle: fetched from its first, and said so
    r = botcore(tmp_path, simulator, 'download', '--path', str(tmp_path / 'early.parquet'), '--since', '2017-01-01',
                '--until', '2017-08-20', '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_candles(path=tmp_path / 'early.parquet').index[0] == bundled.index[0]
    assert 'the exchange has no BTCUSDT 1h candles before 2017-08-17 04:00 UTC (asked from 2017-01-01)' in r.stdout

    # into the bundled folder: refused by name, nothing written
    for path in (bundled_dir() / 'BTCUSDT-1h.parquet', bundled_dir() / 'BTCUSDT-4h.parquet'):
        r = botcore(tmp_path, simulator, 'download', '--path', str(path), '--since', '2024-01-01', '--no-progress')
        assert r.returncode == 2 and f'is in the bundled candles ({bundled_dir()})' in r.stderr, r.stderr[-2000:]
        assert r.stderr.startswith('botcore download: path: ') and 'Traceback' not in r.stderr
    assert bundle_digest() == before
    pd.testing.assert_frame_equal(load_candles('BTCUSDT', '1h'), bundled)


def test_a_downloaded_series_that_is_not_bundled_is_found_by_name(tmp_path, simulator):
    "BTCUSDT 4h is not bundled: downloaded (the simulator forms it from 1h), `botcore data` shows and samples it."
    r = botcore(tmp_path, simulator, 'download', '--symbol', 'BTCUSDT', '--timeframe', '4h', '--since', '2023-12-01',
                '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    mine = tmp_path / 'data' / 'candles' / 'BTCUSDT-4h.parquet'
    assert 'botcore data, train and backtest find it: --symbol BTCUSDT --timeframe 4h' in r.stdout, r.stdout
    r = botcore(tmp_path, simulator, 'data', '--symbol', 'BTCUSDT', '--timeframe', '4h', '--rows', '2')
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'Downloaded with `botcore download` into {mine.parent}' in r.stdout
    assert f'Feature matrix of BTCUSDT 4h (downloaded: {mine})' in r.stdout
    row = next(line.split() for line in r.stdout.splitlines() if line.split()[:2] == ['BTCUSDT', '4h'])
    assert row[2] == f'{31 * 6 + 31 * 6:,}'                       # December and January, six 4h candles a day
