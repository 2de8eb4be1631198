"""`botcore lab` as a researcher meets it: JupyterLab in a browser, the guide open, a notebook run.

`botcore lab` runs as the console script does, in a subprocess, on a free loopback port, with a
fresh data dir and a HOME of its own (so nobody's ~/.jupyter is read or written), and
BOTCORE_QUICK=1 as the guide's quick parameters. The tests check what a user would:

- a request without the token (or with a wrong one) is refused, and the token is the one
  `botcore config token --name lab_token` prints, also in the URL `botcore lab` prints;
- the `botcore` kernel, running this environment's Python, is registered and is the default;
- the first start opened the guide: its notebooks are the tabs of the default workspace;
- in headless Chromium, the first notebook (guide/01_data.ipynb), run through the UI (Run > Run
  All Cells), shows its outputs: every code cell ran, in order, none raised, its plotly figures
  drew; an ipywidgets slider added in a new cell renders as a widget;
- SIGTERM (and Ctrl-C, SIGINT) stop JupyterLab with exit status 0, its kernels with it; a second
  start leaves the workspace the user left.

The notebook is never saved (autosave is off in the test's HOME): the file in guide/ is checked
unchanged. Screenshots, the server's log and the run time go to tests/artifacts/ (or
$BOTCORE_TEST_ARTIFACTS) as lab-*. Without Chromium or Playwright the tests skip, unless
BOTCORE_REQUIRE_SERVICES=1, where they fail.
"""
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import ARTIFACTS, botcore_script, chromium, clean_env, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = 'guide/01_data.ipynb'
RUN_ALL_TIMEOUT = 600            # s for the notebook's cells, with its quick parameters, on 2 cores
pytestmark = pytest.mark.timeout(1200)
TIMINGS: dict = {}


def guide() -> list[str]:
    "The guide's notebooks in the checkout, in reading order."
    return [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / 'guide').glob('[0-9][0-9]_*.ipynb'))]


class Lab:
    "`botcore lab --port N` in a subprocess, with its own data dir and HOME; its log in data_dir/<name>.log."
    def __init__(self, env: dict, data_dir: Path, name: str = 'lab'):
        self.env, self.port = env, free_port()
        self.url, self.log_path = f'http://127.0.0.1:{self.port}', data_dir / f'{name}.log'
        self.log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen([str(botcore_script()), 'lab', '--port', str(self.port)], cwd=env['HOME'],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.token = subprocess.run([str(botcore_script()), 'config', 'token', '--name', 'lab_token'], env=env,
                                    capture_output=True, text=True, check=True).stdout.strip()
        try:
            wait_until(self.up, timeout=180, every=0.5, what=f'botcore lab on {self.url}')
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def logs(self) -> str: return self.log_path.read_text(errors='replace')

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f'botcore lab exited {self.proc.returncode}:\n{self.logs()[-5000:]}')
        return 'botcore lab: JupyterLab on' in self.logs()        # printed once the server listens

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={'Authorization': f'token {self.token}'}, timeout=30, **kw)

    def kernels(self) -> list:
        "The kernel processes JupyterLab started."
        import psutil
        try: return [p for p in psutil.Process(self.proc.pid).children(recursive=True) if 'ipykernel' in ' '.join(p.cmdline())]
        except psutil.Error: return []

    def stop(self, sig=signal.SIGTERM) -> int:
        "Stop with `sig` (SIGTERM as a service manager, SIGINT as Ctrl-C); the exit status."
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope='module')
def lab_env(tmp_path_factory):
    """A fresh data dir and a HOME whose JupyterLab user settings turn autosave off (the test must not write the
    guide's notebook) and the news prompt away (it would cover the screenshots)."""
    home, data = tmp_path_factory.mktemp('lab-home'), tmp_path_factory.mktemp('lab-data')
    settings = home / '.jupyter' / 'lab' / 'user-settings' / '@jupyterlab'
    for plugin, value in (('docmanager-extension/plugin', {'autosave': False}),
                          ('apputils-extension/notification', {'fetchNews': 'false'})):
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f'{plugin}.jupyterlab-settings').write_text(json.dumps(value))
    env = clean_env(BOTCORE_DATA_DIR=str(data), HOME=str(home), BOTCORE_QUICK='1')
    return {k: v for k, v in env.items() if not k.startswith('JUPYTER')}, data


@pytest.fixture(scope='module')
def lab(lab_env):
    if not (ROOT / NOTEBOOK).is_file(): pytest.fail(f'{NOTEBOOK} is missing')
    before = hashlib.sha256((ROOT / NOTEBOOK).read_bytes()).hexdigest()
    checkpoints = ROOT / 'guide' / '.ipynb_checkpoints'     # JupyterLab makes one per notebook it opens
    kept = set(checkpoints.iterdir()) if checkpoints.is_dir() else None
    server = Lab(*lab_env)
    yield server
    kernels = server.kernels()
    server.stop(signal.SIGTERM)                         # (done already unless a test failed)
    for k in kernels:                                   # never leave a kernel behind
        try: k.kill()
        except Exception: pass
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.log_path, ARTIFACTS / 'lab-server.log')
    (ARTIFACTS / 'lab-timings.json').write_text(json.dumps(TIMINGS, indent=2))
    for made in set(checkpoints.glob('*')) - (kept or set()): made.unlink()   # the checkout as it was
    if kept is None and checkpoints.is_dir() and not any(checkpoints.iterdir()): checkpoints.rmdir()
    assert hashlib.sha256((ROOT / NOTEBOOK).read_bytes()).hexdigest() == before, f'{NOTEBOOK} was written'


@pytest.fixture(scope='module')
def browser():
    path = chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True)
        yield b
        b.close()


def shot(page, name: str, element=None):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (element or page).screenshot(path=str(ARTIFACTS / f'lab-{name}.png'))


# ---------------------------------------------------------------- the server

def test_the_token_is_required(lab):
    assert lab.token and lab.api('GET', '/api/status').status_code == 200   # `botcore config token`'s token
    assert httpx.get(lab.url + '/api/contents').status_code == 403
    assert httpx.get(lab.url + '/api/contents', headers={'Authorization': 'token not-the-token'}).status_code == 403
    page = httpx.get(lab.url + '/lab')
    assert page.status_code == 302 and page.headers['location'].startswith('/login'), page
    assert httpx.get(lab.url + '/lab?token=not-the-token').status_code == 302
    assert httpx.get(lab.url + f'/lab?token={lab.token}').status_code == 200
    # what `botcore lab` printed: the URL with this token, and where to find it again
    printed = re.search(r'botcore lab: JupyterLab on (\S+)', lab.logs()).group(1)
    assert printed == f'{lab.url}/lab?token={lab.token}'
    assert '`botcore config token --name lab_token`' in lab.logs()


def test_the_botcore_kernel_is_this_environment(lab):
    specs = lab.api('GET', '/api/kernelspecs').json()
    assert specs['default'] == 'botcore'
    spec = specs['kernelspecs']['botcore']['spec']
    assert spec['display_name'] == f'botcore (Python {sys.version_info[0]}.{sys.version_info[1]})'
    assert Path(spec['argv'][0]).resolve() == Path(sys.executable).resolve()


def test_the_first_start_opened_the_guide(lab, lab_env):
    layout = lab.api('GET', '/lab/api/workspaces/default').json()['data']['layout-restorer:data']['main']
    assert layout['dock']['widgets'] == [f'notebook:{p}' for p in guide()]
    assert layout['current'] == f'notebook:{guide()[0]}' == f'notebook:{NOTEBOOK}'
    assert 'first start: the guide is open' in lab.logs()
    # botcore's JupyterLab files are in the data dir; the user's Jupyter folders get none of them
    env, data = lab_env
    assert (data / 'lab' / 'guide-opened').is_file() and list((data / 'lab' / 'workspaces').glob('default-*'))
    assert list((data / 'lab' / 'runtime').glob('jpserver-*.json'))
    home = Path(env['HOME'])
    assert not (home / '.jupyter' / 'lab' / 'workspaces').exists()
    assert not list(home.glob('.local/share/jupyter/runtime/jpserver-*'))


# ---------------------------------------------------------------- the browser

def kernel_state(lab: Lab, path: str) -> str | None:
    "The execution state of the kernel of the notebook at `path`, as the server sees it."
    for s in lab.api('GET', '/api/sessions').json():
        if s['path'] == path: return s['kernel']['execution_state']
    return None


def code_prompts(panel) -> list[str]:
    """The code cells' prompts, `[ ]:` before a run, `[*]:` while queued, `[3]:` after (text_content: innerText is
    empty for cells the browser has not laid out, below the fold)."""
    return [p.strip() for p in panel.locator('.jp-CodeCell .jp-InputArea-prompt').all_text_contents()]


def test_run_the_first_notebook_through_the_ui(lab, browser):
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(f'{lab.url}/lab?token={lab.token}')
        current = page.locator('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current')
        current.first.wait_for(timeout=120_000)
        tabs = page.locator('#jp-main-dock-panel .lm-TabBar-tab .lm-TabBar-tabLabel').all_inner_texts()
        assert tabs == [Path(p).name for p in guide()]                    # the workspace JupyterLab restored
        assert current.first.inner_text().strip() == Path(NOTEBOOK).name
        panel = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)')
        n_code = sum(c['cell_type'] == 'code' for c in json.loads((ROOT / NOTEBOOK).read_text())['cells'])
        wait_until(lambda: panel.locator('.jp-CodeCell').count() == n_code, timeout=120, what='the cells shown')
        # the notebook's kernel is up: JupyterLab started it when it restored the tab
        wait_until(lambda: kernel_state(lab, NOTEBOOK) == 'idle', timeout=120, every=0.5, what='an idle kernel')
        shot(page, 'guide-opened')
        assert n_code > 0 and all(p == '[ ]:' for p in code_prompts(panel))        # not run yet

        panel.locator('.jp-Cell').first.click()
        t0 = time.monotonic()
        page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()
        page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()

        def ran():
            prompts = code_prompts(panel)
            return all(re.fullmatch(r'\[\d+\]:', p) for p in prompts) and prompts
        prompts = wait_until(ran, timeout=RUN_ALL_TIMEOUT, every=1, what=f'every cell of {NOTEBOOK} run')
        TIMINGS['run_all_seconds'] = round(time.monotonic() - t0, 1)
        counts = [int(p[1:-2]) for p in prompts]
        assert counts == list(range(counts[0], counts[0] + n_code)), counts  # top to bottom, each once
        outputs = panel.locator('.jp-OutputArea-output')
        assert outputs.count() > 0
        text = ' '.join(outputs.all_text_contents())
        assert 'Traceback' not in text, text[-3000:]                       # an error output is a traceback
        plots = panel.locator('.js-plotly-plot')                            # plotly's mime renderer drew them
        assert plots.count() >= 1 and panel.locator('.js-plotly-plot .main-svg').count() >= plots.count()
        figure_cell = panel.locator('.jp-Cell', has=page.locator('.js-plotly-plot')).first
        figure_cell.scroll_into_view_if_needed()
        figure_cell.locator('.jp-InputArea-editor').click()                 # the active cell: JupyterLab shows it
        page.keyboard.press('Escape')
        page.wait_for_timeout(1000)                                         # the scroll settles, for the picture
        shot(page, 'run-all')
        shot(page, 'plotly-figure', plots.last)

        # an ipywidgets widget in a new cell at the end (never saved): the widget manager renders it
        panel.locator('.jp-Cell').last.click()
        page.keyboard.press('Escape')
        page.keyboard.press('b')
        page.keyboard.press('Enter')
        page.keyboard.insert_text("import ipywidgets as widgets; widgets.IntSlider(value=7, description='botcore')")
        page.keyboard.press('Shift+Enter')
        slider = panel.locator('.jp-OutputArea-output .widget-slider')
        slider.first.wait_for(timeout=60_000)
        assert 'botcore' in slider.first.inner_text() and '7' in slider.first.inner_text()
        slider.first.scroll_into_view_if_needed()
        shot(page, 'widget')
    except Exception:
        shot(page, 'failure')
        raise
    finally:
        page.close()


# ---------------------------------------------------------------- stopping, and the second start

def alive(process) -> bool:
    import psutil
    try: return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess: return False


def test_sigterm_stops_it_cleanly_and_a_second_start_keeps_the_workspace(lab, lab_env):
    # the user closes every tab but the first (as the browser would save it)
    space = lab.api('GET', '/lab/api/workspaces/default').json()
    main = space['data']['layout-restorer:data']['main']
    main['dock'] = {'type': 'tab-area', 'currentIndex': 0, 'widgets': [f'notebook:{NOTEBOOK}']}
    assert lab.api('PUT', '/lab/api/workspaces/default', json=space).status_code == 204

    kernels = lab.kernels()
    assert kernels, 'JupyterLab started no kernel'
    assert lab.stop(signal.SIGTERM) == 0
    assert not [k for k in kernels if alive(k)], 'kernels left running'
    with pytest.raises(httpx.TransportError): httpx.get(lab.url + '/api/status', timeout=5)

    again = Lab(*lab_env, name='lab-again')
    try:
        assert 'first start' not in again.logs()
        layout = again.api('GET', '/lab/api/workspaces/default').json()['data']['layout-restorer:data']['main']
        assert layout['dock']['widgets'] == [f'notebook:{NOTEBOOK}']
        assert again.token == lab.token                                     # kept in the data dir
    finally:
        assert again.stop(signal.SIGINT) == 0                               # Ctrl-C: one is enough
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(again.log_path, ARTIFACTS / 'lab-server-second-start.log')
