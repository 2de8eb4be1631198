"""How fast the Voila dashboards come up in a browser, and whether the monitor keeps up with the engine.

Set-up, as in tests/test_dashboard_e2e.py: three real servers on loopback, in subprocesses, each with its own
data directory and the tokens from the environment:
- the AI service (`botcore.api.ai.app:app`) with a small LSTM (1 epoch on the last 2,500 real BTCUSDT 1h candles),
  answering with the thresholds in force (`signal_format = "detailed"`);
- the engine (`botcore.api.engine:app`) trading 2 symbols, BTCUSDT and ETHUSDT, on real 5m candles replayed at
  `--speed` (10) candles/s each against the AI service, with thresholds that make it trade;
- the dashboards (`botcore.dashboard.clients.serve_dashboard_cmd`: Voila with its token and kernel culling).

Headless Chromium (Debian's, driven by Playwright) then opens the monitor `--loads` times (5), each in a new page
that is closed (as a tab is: Voila shuts its kernel down) before the next one, and the research page once. For each load it measures, from navigation:
- first render: the status bar (`.botcore-status`) on screen, i.e. Voila started a kernel, ran the notebook and
  the browser drew its widgets (goal: 3 s or less);
- live: the page's connection line says `live` (its first update from the engine has arrived);
- chart: the price chart (`.botcore-price-chart`) drawn with its candles, from the engine's window;
and for the research page the time until its Run button is on screen. Printed: every load, then the min, median
and max. The first load also pays for a cold start of Voila's kernel machinery and the services' first requests.
Then, on a live monitor page over `--lag-seconds` (10):
- the event lag: for each AI signal or trade row the engine sends, the time from the engine sending it (the row's
  `data-sent`) to the browser showing it; the median, p90 and max (goal: p90 under 1 s, i.e. the events do not
  queue up behind the chart's redraws);
- the chart: how often its last candle changed (redraws a second; the page throttles them to one a second) and
  how far it trails the engine, in candles, at the end.
tests/test_dashboard_e2e.py records the first render and the lag without asserting them.

Run: .venv/bin/python benchmarks/dashboard_bench.py [--loads 5] [--lag-seconds 10] [--speed 10] [--chromium /usr/bin/chromium]
Needs Chromium (apt-get install -y chromium) and Playwright (a dev dependency).
"""
import calendar
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastcore.script import call_parse

sys.path.insert(0, str(Path(__file__).parents[1] / 'tests'))
from support import Dashboards, UvicornServer, clean_env    # noqa: E402  the integration tests' servers

INTER, ENGINE_KEY, AI_KEY, SECRET = 'inter-service-' + 'i' * 32, 'engine-key-' + 'e' * 32, 'ai-key-' + 'a' * 32, 'dashboard-' + 'd' * 32
SYMBOLS, TIMEFRAME = ['BTCUSDT', 'ETHUSDT'], '5m'


def services(root: Path, speed: float) -> tuple[UvicornServer, UvicornServer, Dashboards]:
    "The AI service with a small trained model, the engine trading 2 symbols against it, and the dashboards."
    from botcore.data.candles import load_candles
    from botcore.model.registry import ModelRegistry
    from botcore.model.training import TrainConfig, train_model
    ai_dir, engine_dir, dash_dir = (root / n for n in ('ai', 'engine', 'dashboard'))
    for d in (ai_dir, engine_dir, dash_dir): d.mkdir()
    model = train_model(load_candles('BTCUSDT', '1h').iloc[-2500:], TrainConfig(epochs=1), 'BTCUSDT', '1h', progress=False)
    ModelRegistry(ai_dir / 'models').promote(model, force=True)
    ai = UvicornServer('botcore.api.ai.app:app', ai_dir, clean_env(
        INTER_SERVICE_TOKEN=INTER, AI_API_KEY=AI_KEY, BOTCORE_AI__LONG_THRESHOLD='0.5', BOTCORE_AI__SHORT_THRESHOLD='0.49',
        BOTCORE_API_INTEGRATION__SIGNAL_FORMAT='detailed'), name='ai')
    engine = UvicornServer('botcore.api.engine:app', engine_dir, clean_env(
        INTER_SERVICE_TOKEN=INTER, ENGINE_API_KEY=ENGINE_KEY, PYTHON_AI_SERVICE_URL=ai.url,
        BOTCORE_MARKET_DATA__SYMBOLS=json.dumps(SYMBOLS), BOTCORE_MARKET_DATA__TIMEFRAME=TIMEFRAME,
        BOTCORE_MARKET_DATA__REPLAY_SPEED=str(speed), BOTCORE_MARKET_DATA__REPLAY_CANDLES='8000',
        BOTCORE_MARKET_DATA__CONFIDENCE_THRESHOLD='0.5', BOTCORE_TRADING__STOP_LOSS_PCT='0.5',
        BOTCORE_TRADING__TAKE_PROFIT_PCT='0.5', BOTCORE_TRADING__COOLDOWN_LOSSES='0',
        BOTCORE_TRADING__DAILY_LOSS_LIMIT_PCT='0'), name='engine')
    dashboards = Dashboards(dash_dir, clean_env(
        ENGINE_API_KEY=ENGINE_KEY, AI_API_KEY=AI_KEY, DASHBOARD_SESSION_SECRET=SECRET, INTER_SERVICE_TOKEN=INTER, HOME=str(dash_dir),
        BOTCORE_DATA_DIR=str(dash_dir), BOTCORE_AI__MODEL_DIR=str(ai_dir / 'models'), BOTCORE_DASHBOARD__ENGINE_URL=engine.url,
        BOTCORE_DASHBOARD__AI_URL=ai.url, BOTCORE_DASHBOARD__REFRESH_SECONDS='1'))
    return ai, engine, dashboards


PRICE_CHART = "document.querySelector('.botcore-price-chart .js-plotly-plot')"
CHART_DRAWN = f"{PRICE_CHART}?.data?.[0]?.type === 'candlestick' && {PRICE_CHART}.data[0].x?.length > 0"
LIVE = "document.querySelector('.botcore-connection')?.innerText.includes('live')"


def load(browser, url: str, ready: str, *conditions: str) -> list[float]:
    "Seconds from navigation to `ready` on screen, then to each JS condition being true; the page is closed after."
    page = browser.new_page(viewport={'width': 1400, 'height': 2000})
    try:
        t0 = time.monotonic()
        page.goto(url)
        page.wait_for_selector(ready, state='visible', timeout=120_000)
        times = [time.monotonic() - t0]
        for c in conditions:
            page.wait_for_function(c, timeout=120_000)
            times.append(time.monotonic() - t0)
        return times
    finally: page.close(run_before_unload=True)     # as a tab closed: Voila shuts its kernel down


LAGS_JS = """() => {
    const rows = () => document.querySelectorAll('tr.botcore-signal[data-sent], tr.botcore-trade[data-sent]');
    window.__lags = []; window.__redraws = 0;
    const seen = new Set([...rows()].map(tr => tr.dataset.sent));     // shown already: not timed
    new MutationObserver(() => {
        for (const tr of rows()) {
            const sent = parseFloat(tr.dataset.sent);
            if (sent && !seen.has(tr.dataset.sent)) { seen.add(tr.dataset.sent); window.__lags.push(Date.now() / 1000 - sent); }
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
    let last = null;                                                   // the chart's last candle, polled
    setInterval(() => {
        const x = document.querySelector('.botcore-price-chart .js-plotly-plot')?.data?.[0]?.x?.at(-1);
        if (x !== last) { if (last !== null) window.__redraws += 1; last = x; }
    }, 50);
}"""


def live_page(browser, url: str, engine: UvicornServer, seconds: float) -> tuple[list[float], float, float | None]:
    "On a live monitor page over `seconds`: the event lags (sorted), the chart's redraws a second and how many candles it trails."
    page = browser.new_page(viewport={'width': 1400, 'height': 2000})
    try:
        page.goto(url)
        page.wait_for_function(f"({LIVE}) && ({CHART_DRAWN})", timeout=120_000)
        page.evaluate(LAGS_JS)
        time.sleep(seconds)
        lags, redraws = sorted(page.evaluate('window.__lags')), page.evaluate('window.__redraws')
        shown = page.evaluate(f"[{PRICE_CHART}.layout.title.text, {PRICE_CHART}.data[0].x.at(-1)]")
        candles = httpx.get(f'{engine.url}/api/candles', params={'symbol': shown[0].split()[0], 'limit': 1},
                            headers={'Authorization': f'Bearer {ENGINE_KEY}'}).json()
        behind = None
        if candles:
            step = 300_000                                   # 5m
            last = calendar.timegm(time.strptime(candles[-1]['timestamp'][:19], '%Y-%m-%dT%H:%M:%S'))
            drawn = calendar.timegm(time.strptime(shown[1], '%Y-%m-%d %H:%M:%S'))
            behind = (last - drawn) * 1000 / step
        return lags, redraws / seconds, behind
    finally: page.close(run_before_unload=True)


def summary(name: str, xs: list[float]) -> str:
    return f"  {name:<34} min {min(xs):6.2f} s   median {statistics.median(xs):6.2f} s   max {max(xs):6.2f} s"


@call_parse
def main(loads: int = 5,                       # monitor pages opened, one after another
         lag_seconds: float = 10,              # how long a live monitor page is watched
         speed: float = 10,                    # the engine's replay speed, candles/s for each of the 2 symbols
         chromium: str = '/usr/bin/chromium'):  # the browser Playwright drives
    "Time the dashboards' first render, the price chart and the first live update in headless Chromium."
    from playwright.sync_api import sync_playwright
    if not Path(chromium).is_file(): sys.exit(f'{chromium} not found: apt-get install -y chromium, or pass --chromium')
    ai, engine, dashboards = services(Path(tempfile.mkdtemp(prefix='dashboard-bench-')), speed)
    monitor_url = f'{dashboards.url}/?token={SECRET}'
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            monitor = [load(browser, monitor_url, '.botcore-status', LIVE, CHART_DRAWN) for _ in range(loads)]
            research, = load(browser, f'{dashboards.url}/voila/render/research.ipynb?token={SECRET}', '.botcore-run-backtest')
            lags, redraws, behind = live_page(browser, monitor_url, engine, lag_seconds)
            browser.close()
        processed = httpx.get(f'{engine.url}/api/status', headers={'Authorization': f'Bearer {ENGINE_KEY}'}).json()['candles_processed']
    finally:
        for s in (dashboards, engine, ai): s.stop()
    print(f"Voila dashboards in headless Chromium ({chromium}), services on loopback, the engine trading "
          f"{' and '.join(SYMBOLS)} {TIMEFRAME} replayed at {speed:g} candles/s each ({processed:,} candles processed)\n")
    for i, (first, up, chart) in enumerate(monitor, 1):
        print(f"  monitor load {i}: first render {first:5.2f} s, live {up:5.2f} s, price chart {chart:5.2f} s")
    print(f"  research page: first render {research:5.2f} s\n")
    print(summary('monitor, first render (goal: 3 s)', [m[0] for m in monitor]))
    print(summary('monitor, live', [m[1] for m in monitor]))
    print(summary('monitor, price chart drawn', [m[2] for m in monitor]))
    if lags:
        p90 = lags[int(0.9 * (len(lags) - 1))]
        print(f"  event lag over {lag_seconds:g} s ({len(lags)} events): median {statistics.median(lags):.3f} s, "
              f"p90 {p90:.3f} s, max {lags[-1]:.3f} s (goal: p90 < 1 s)")
    else: print(f"  event lag: no event reached the page in {lag_seconds:g} s")
    trail = 'unknown' if behind is None else f'{behind:.0f} candles behind the engine at the end'
    print(f"  price chart: {redraws:.2f} redraws/s (throttled to 1/s), {trail}")
