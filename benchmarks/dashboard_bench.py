"""How fast the Voila dashboards come up in a browser: the monitor's first render, and how long until it is live.

Set-up, as in tests/test_dashboard_e2e.py: three real servers on loopback, in subprocesses, each with its own
data directory and the tokens from the environment:
- the AI service (`botcore.api.ai.app:app`) with a small LSTM (1 epoch on the last 2,500 real BTCUSDT 1h candles);
- the engine (`botcore.api.engine:app`) replaying real BTCUSDT 1h candles at 5 candles/s against the AI service;
- the dashboards (`botcore.dashboard.clients.serve_dashboard_cmd`: Voila with its token and kernel culling).

Headless Chromium (Debian's, driven by Playwright) then opens the monitor `--loads` times (5), each in a new page
that is closed before the next one, and the research page once. For each load it measures, from navigation:
- first render: the status bar (`.botcore-status`) on screen, i.e. Voila started a kernel, ran the notebook and
  the browser drew its widgets;
- live: the page's connection line says `live` (its first update from the engine has arrived);
and for the research page the time until its Run button is on screen. Printed: every load, then the min, median
and max. The first load also pays for a cold start of Voila's kernel machinery and the services' first requests.
Then the event lag on a live monitor page, over `--lag-seconds` (10): for each AI signal or trade row the engine
sends, the time from the engine sending it (the row's `data-sent`) to the browser showing it; the median, p90 and
max (goal: p90 under 1 s). tests/test_dashboard_e2e.py records the same figures without asserting them.

Run: .venv/bin/python benchmarks/dashboard_bench.py [--loads 5] [--lag-seconds 10] [--chromium /usr/bin/chromium]
Needs Chromium (apt-get install -y chromium) and Playwright (a dev dependency).
"""
import statistics, sys, tempfile, time
from pathlib import Path

from fastcore.script import call_parse

sys.path.insert(0, str(Path(__file__).parents[1] / 'tests'))
from support import Dashboards, UvicornServer, clean_env    # noqa: E402  the integration tests' servers

INTER, ENGINE_KEY, AI_KEY, SECRET = 'inter-service-' + 'i' * 32, 'engine-key-' + 'e' * 32, 'ai-key-' + 'a' * 32, 'dashboard-' + 'd' * 32


def services(root: Path) -> tuple[UvicornServer, UvicornServer, Dashboards]:
    "The AI service with a small trained model, the engine replaying candles against it, and the dashboards."
    from botcore.data.candles import load_candles
    from botcore.model.registry import ModelRegistry
    from botcore.model.training import TrainConfig, train_model
    ai_dir, engine_dir, dash_dir = (root / n for n in ('ai', 'engine', 'dashboard'))
    for d in (ai_dir, engine_dir, dash_dir): d.mkdir()
    model = train_model(load_candles('BTCUSDT', '1h').iloc[-2500:], TrainConfig(epochs=1), 'BTCUSDT', '1h', progress=False)
    ModelRegistry(ai_dir / 'models').promote(model, force=True)
    ai = UvicornServer('botcore.api.ai.app:app', ai_dir, clean_env(INTER_SERVICE_TOKEN=INTER, AI_API_KEY=AI_KEY), name='ai')
    engine = UvicornServer('botcore.api.engine:app', engine_dir, clean_env(
        INTER_SERVICE_TOKEN=INTER, ENGINE_API_KEY=ENGINE_KEY, PYTHON_AI_SERVICE_URL=ai.url,
        BOTCORE_MARKET_DATA__REPLAY_SPEED='5', BOTCORE_MARKET_DATA__REPLAY_CANDLES='6000'), name='engine')
    dashboards = Dashboards(dash_dir, clean_env(
        ENGINE_API_KEY=ENGINE_KEY, AI_API_KEY=AI_KEY, DASHBOARD_SESSION_SECRET=SECRET, INTER_SERVICE_TOKEN=INTER, HOME=str(dash_dir),
        BOTCORE_DATA_DIR=str(dash_dir), BOTCORE_AI__MODEL_DIR=str(ai_dir / 'models'), BOTCORE_DASHBOARD__ENGINE_URL=engine.url,
        BOTCORE_DASHBOARD__AI_URL=ai.url, BOTCORE_DASHBOARD__REFRESH_SECONDS='1'))
    return ai, engine, dashboards


def load(browser, url: str, ready: str, live: str | None = None) -> tuple[float, float | None]:
    "Seconds from navigation to `ready` on screen, and to `live` (a JS condition) being true; the page is closed after."
    page = browser.new_page(viewport={'width': 1400, 'height': 2000})
    try:
        t0 = time.monotonic()
        page.goto(url)
        page.wait_for_selector(ready, state='visible', timeout=120_000)
        first = time.monotonic() - t0
        if live is None: return first, None
        page.wait_for_function(live, timeout=120_000)
        return first, time.monotonic() - t0
    finally: page.close()


LAGS_JS = """() => {
    const rows = () => document.querySelectorAll('tr.botcore-signal[data-sent], tr.botcore-trade[data-sent]');
    window.__lags = [];
    const seen = new Set([...rows()].map(tr => tr.dataset.sent));     // shown already: not timed
    new MutationObserver(() => {
        for (const tr of rows()) {
            const sent = parseFloat(tr.dataset.sent);
            if (sent && !seen.has(tr.dataset.sent)) { seen.add(tr.dataset.sent); window.__lags.push(Date.now() / 1000 - sent); }
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def event_lags(browser, url: str, live: str, seconds: float) -> list[float]:
    "Seconds from the engine sending each event to a live monitor page showing it, over `seconds`; sorted."
    page = browser.new_page(viewport={'width': 1400, 'height': 2000})
    try:
        page.goto(url)
        page.wait_for_function(live, timeout=120_000)
        page.evaluate(LAGS_JS)
        time.sleep(seconds)
        return sorted(page.evaluate('window.__lags'))
    finally: page.close()


def summary(name: str, xs: list[float]) -> str:
    return f"  {name:<34} min {min(xs):6.2f} s   median {statistics.median(xs):6.2f} s   max {max(xs):6.2f} s"


@call_parse
def main(loads: int = 5,                       # monitor pages opened, one after another
         lag_seconds: float = 10,              # how long the event lag is watched on a live monitor page
         chromium: str = '/usr/bin/chromium'):  # the browser Playwright drives
    "Time the dashboards' first render and first live update in headless Chromium."
    from playwright.sync_api import sync_playwright
    if not Path(chromium).is_file(): sys.exit(f'{chromium} not found: apt-get install -y chromium, or pass --chromium')
    ai, engine, dashboards = services(Path(tempfile.mkdtemp(prefix='dashboard-bench-')))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            live = "document.querySelector('.botcore-connection')?.innerText.includes('live')"
            monitor = [load(browser, f'{dashboards.url}/?token={SECRET}', '.botcore-status', live) for _ in range(loads)]
            research, _ = load(browser, f'{dashboards.url}/voila/render/research.ipynb?token={SECRET}', '.botcore-run-backtest')
            lags = event_lags(browser, f'{dashboards.url}/?token={SECRET}', live, lag_seconds)
            browser.close()
    finally:
        for s in (dashboards, engine, ai): s.stop()
    print(f"Voila dashboards in headless Chromium ({chromium}), services on loopback, the engine replaying at 5 candles/s\n")
    for i, (first, up) in enumerate(monitor, 1): print(f"  monitor load {i}: first render {first:5.2f} s, live {up:5.2f} s")
    print(f"  research page: first render {research:5.2f} s\n")
    print(summary('monitor, first render', [f for f, _ in monitor]))
    print(summary('monitor, live', [u for _, u in monitor]))
    if lags:
        p90 = lags[int(0.9 * (len(lags) - 1))]
        print(f"  event lag over {lag_seconds:g} s ({len(lags)} events): median {statistics.median(lags):.3f} s, "
              f"p90 {p90:.3f} s, max {lags[-1]:.3f} s (goal: p90 < 1 s)")
    else: print(f"  event lag: no event reached the page in {lag_seconds:g} s")
