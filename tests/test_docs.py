"""The documentation site (`make docs`, `botcore docs`) as a reader meets it.

The site is built once, from this checkout, into a temporary folder with `build_docs` (what
`make docs` runs), and the tests check what a reader would find:

- every module of `botcore/` has its page, and the `Docs:` link in its docstring (nbdev writes it
  from `[project.urls] Documentation`) names a file of the site: its page's Markdown twin, beside
  the HTML page, which shows the module's description and an anchor for each public function and
  class it exports;
- the front pages: the README's content is the home page (each of its sections), each guide
  notebook `guide/*.ipynb` has its page, and every page's sidebar reaches every page;
- no internal link is broken: each `href` and `src` of every produced page that stays in the site
  names a file the build produced, and its `#fragment` an id on that page; no link points at the
  site's absolute address (links are relative, so the site works from any port or from disk);
- `botcore docs` serves the site on 127.0.0.1 (a free port, the console script in a subprocess):
  the home page, a module's Markdown twin as `text/markdown`; Ctrl-C (SIGINT) stops it with exit
  status 0.
"""
import ast
import posixpath
import re
import signal
import subprocess
import time
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from support import botcore_script, clean_env, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCS_URL = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['urls']['Documentation']
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site of this checkout, built as `make docs` builds it (into a temporary folder)."
    from botcore.jobs.docs import build_docs
    t0 = time.perf_counter()
    out = build_docs(tmp_path_factory.mktemp('docs') / '_docs', root=ROOT)
    print(f'docs built in {time.perf_counter() - t0:.0f} s')
    return out


class Links(HTMLParser):
    "The `href`/`src` values and the ids of one HTML page."
    def __init__(self, text: str):
        super().__init__()
        self.links, self.ids = [], set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ('href', 'src') and v: self.links.append(v)
            if k == 'id' and v: self.ids.add(v)


@pytest.fixture(scope='module')
def pages(site) -> dict[str, Links]:
    "Every HTML page of the site, by its path in the site."
    return {p.relative_to(site).as_posix(): Links(p.read_text(encoding='utf-8'))
            for p in site.rglob('*.html')}


def modules() -> list[Path]:
    return sorted(p for p in (ROOT / 'botcore').rglob('*.py')
                  if p.name not in ('__init__.py', '_modidx.py') and '__pycache__' not in p.parts)


def test_every_module_has_its_page(site, pages):
    assert DOCS_URL.startswith('http://127.0.0.1:4000/'), DOCS_URL    # where `botcore docs` serves
    mods = modules()
    assert len(mods) > 50
    for py in mods:
        tree = ast.parse(py.read_text(encoding='utf-8'))
        doc = ast.get_docstring(tree) or ''
        m = re.search(r'^Docs: (\S+)$', doc, re.MULTILINE)
        assert m, f'{py.relative_to(ROOT)}: no Docs link in its docstring'
        url = m[1]
        assert url.startswith(DOCS_URL) and url.endswith('.html.md'), (py.name, url)
        twin = url[len(DOCS_URL):]
        assert (site / twin).is_file(), f'{py.name}: its Docs link {url} names no file'
        page = twin.removesuffix('.md')
        assert page in pages, f'{py.relative_to(ROOT)}: no page {page}'
        desc = ' '.join(doc.split('\n\nDocs:')[0].split())        # nbdev wraps a long one
        assert f'> {desc}' in (site / twin).read_text(encoding='utf-8'), (page, desc)
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        shown = [n.name for n in tree.body if isinstance(n, defs)]
        exported = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                         and any(getattr(t, 'id', '') == '__all__' for t in n.targets)), [])
        for name in (n for n in shown if n in exported):
            assert name.lower() in pages[page].ids, f'{page}: no entry for {name} of {py.name}'


def test_front_pages_and_navigation(site, pages):
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    home = (site / 'index.html').read_text(encoding='utf-8')
    sections = re.findall(r'^## (.+)$', readme, re.MULTILINE)
    assert len(sections) > 5
    text = re.sub(r'</?code>', '', home)
    for s in sections:
        assert re.search(rf'<h2 id="[^"]*">{re.escape(s.replace("`", ""))}', text), s
    from botcore.jobs.docs import page_file
    guide = sorted((ROOT / 'guide').glob('*.ipynb'))
    assert guide, 'no guide notebooks'
    nbs = sorted((ROOT / 'nbs').rglob('*.ipynb'))
    expected = {'index.html'} | {f'guide/{page_file(p.name)}' for p in guide} | {
        page_file(p.relative_to(ROOT / 'nbs')) for p in nbs if '.ipynb_checkpoints' not in p.parts}
    assert expected <= set(pages), expected - set(pages)
    for page, links in pages.items():
        reached = {posixpath.normpath(posixpath.join(posixpath.dirname(page), u.split('#')[0]))
                   for u in links.links if u.endswith('.html')}
        assert expected <= reached, f'{page}: its sidebar misses {sorted(expected - reached)[:5]}'
        assert (site / (page + '.md')).is_file(), f'{page}: no Markdown twin'


def test_no_internal_link_is_broken(site, pages):
    checked = 0
    for page, links in pages.items():
        for url in links.links:
            assert not url.startswith(DOCS_URL), f'{page}: absolute link into the site {url}'
            if re.match(r'^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)', url): continue     # leaves the site
            path, _, frag = url.partition('#')
            here = posixpath.dirname(page)
            target = posixpath.normpath(posixpath.join(here, path)) if path else page
            assert (site / target).is_file(), f'{page}: broken link {url}'
            if frag and target.endswith('.html'):
                assert frag in pages[target].ids, f'{page}: {url} names no id of {target}'
            checked += 1
    assert checked >= len(pages) ** 2, checked     # the sidebars alone link each page to every page


def test_botcore_docs_serves_the_site(site):
    port = free_port()
    proc = subprocess.Popen([str(botcore_script()), 'docs', '--port', str(port)], cwd=ROOT,
                            env=clean_env(BOTCORE_DOCS_DIR=str(site)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f'http://127.0.0.1:{port}/'
        assert base in proc.stdout.readline()

        def home():
            try: return httpx.get(base, timeout=5)
            except httpx.TransportError: return None
        r = wait_until(home, timeout=30, what='the home page')
        assert r.status_code == 200 and '<h1 id="botcore">botcore' in r.text
        md = httpx.get(f'{base}data/candles.html.md', timeout=5)
        assert md.status_code == 200 and md.headers['content-type'].startswith('text/markdown')
        assert md.text.startswith('# ')
        assert httpx.get(f'{base}no/such/page.html', timeout=5).status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'stopped' in out and 'Traceback' not in out
