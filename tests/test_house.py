"""The house rules a change can break without failing any other test:
- the OpenAPI documents of both services are byte-identical to the snapshots in tests/openapi/
  (a contract change shows up here, and the snapshot is updated on purpose);
- no import cycle among botcore's modules;
- the notebooks in dashboards/ and pipelines/ use botcore's public API only, and the dashboards
  reach the services over HTTP only (they import botcore.config and botcore.dashboard.*).
"""
import ast, importlib, importlib.util, json, os, re
from pathlib import Path

import pytest

from botcore.config import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).parent / 'openapi'
DASHBOARD_MODULES = ('botcore.config', 'botcore.dashboard')


# ---------------------------------------------------------------- the services' contracts

@pytest.fixture
def fresh_settings(tmp_path, monkeypatch):
    "No botcore setting from this environment (as support.clean_env); a fresh data dir and HOME."
    for k in list(os.environ):
        if k.upper().startswith('BOTCORE_') or k in ENV_VARS or k == 'DATABASE_URL':
            monkeypatch.delenv(k)
    monkeypatch.setenv('BOTCORE_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)                                   # no botcore.toml found here


def ai_app():
    from botcore.api.ai.app import create_app
    return create_app()


def engine_app():
    from botcore.api.engine import create_app
    return create_app()


@pytest.mark.parametrize('name, make', [('ai', ai_app), ('engine', engine_app)])
def test_openapi_documents_equal_the_snapshots(fresh_settings, name, make):
    got = json.dumps(make().openapi(), indent=1) + '\n'
    want = (SNAPSHOTS / f'{name}.json').read_text()
    assert got == want, f"{name}'s OpenAPI document differs from tests/openapi/{name}.json"


# ---------------------------------------------------------------- no import cycles

def strongly_connected(nodes: set, edges: dict) -> list[list]:
    "Tarjan's strongly connected components of the graph `edges` (node -> set of nodes)."
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on_stack.discard(comp[-1])
            out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index: visit(v)
    return out


def a_cycle(comp: list, edges: dict) -> list:
    "The shortest import cycle through the first module of the component `comp`."
    start, members = comp[0], set(comp)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(edges.get(path[-1], ())):
            if w == start: return path + [start]
            if w in members and w not in seen:
                seen.add(w)
                paths.append(path + [w])
    return comp


def test_tarjan_finds_a_cycle_and_names_it():
    edges = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert sorted(strongly_connected(set('abcd'), edges)) == [['a', 'b', 'c'], ['d']]
    assert a_cycle(['a', 'b', 'c'], edges) == ['a', 'b', 'c', 'a']


def test_no_import_cycles_among_botcores_modules():
    import grimp
    # Imports under `if TYPE_CHECKING:` never run, so they cannot make a cycle at import time.
    graph = grimp.build_graph('botcore', exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if not graph.find_children(m)}     # modules, not packages
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    comps = strongly_connected(modules, edges)
    cycles = [' -> '.join(a_cycle(c, edges)) for c in comps if len(c) > 1]
    assert len(modules) > 20 and not cycles, 'import cycles: ' + '; '.join(cycles)


# ---------------------------------------------------------------- dashboards and pipelines

def botcore_imports(path: Path) -> list[tuple[str, list[str]]]:
    "(module, names) of each `from botcore... import ...` and `import botcore...` in code cells."
    out = []
    for cell in json.loads(path.read_text())['cells']:
        if cell['cell_type'] != 'code': continue
        lines = ''.join(cell['source']).splitlines()
        code = '\n'.join('' if s.lstrip().startswith(('%', '!')) else s for s in lines)   # magics
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'botcore':
                out.append((node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                out += [(a.name, []) for a in node.names if a.name.split('.')[0] == 'botcore']
    return out


def test_botcore_imports_reads_code_cells_past_magics(tmp_path):
    source = ['%matplotlib inline\n', 'import botcore.core\n',
              'from botcore.config import _x, load_settings']
    nb = {'cells': [{'cell_type': 'markdown', 'source': ['from botcore.cli import main']},
                    {'cell_type': 'code', 'source': source}]}
    (tmp_path / 'nb.ipynb').write_text(json.dumps(nb))
    want = [('botcore.core', []), ('botcore.config', ['_x', 'load_settings'])]
    assert botcore_imports(tmp_path / 'nb.ipynb') == want


def api_misuse(folder: str, module: str, names: list[str]) -> list[str]:
    "What is wrong with `from module import names` in a notebook of `folder`."
    if importlib.util.find_spec(module) is None: return [f'{module}: no such module']
    public = getattr(importlib.import_module(module), '__all__', [])
    wrong = [f'{module}.{n}: not in its __all__' for n in names
             if n.startswith('_') or n not in public]
    allowed = any(module == m or module.startswith(m + '.') for m in DASHBOARD_MODULES)
    if folder == 'dashboards' and not allowed:
        wrong.append(f'{module}: dashboards import only botcore.config and botcore.dashboard.*'
                     ' (they reach the services over HTTP)')
    return wrong


def test_api_misuse_names_what_is_wrong():
    assert api_misuse('pipelines', 'botcore.config', ['load_settings']) == []
    assert api_misuse('pipelines', 'botcore.nope', ['x']) == ['botcore.nope: no such module']
    private = api_misuse('pipelines', 'botcore.config', ['_private'])
    assert private == ['botcore.config._private: not in its __all__']
    assert 'dashboards import only' in api_misuse('dashboards', 'botcore.core', [])[0]


NOTEBOOKS = [p for d in ('dashboards', 'pipelines') for p in sorted((ROOT / d).glob('*.ipynb'))]


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[f'{p.parent.name}/{p.name}' for p in NOTEBOOKS])
def test_notebooks_use_the_public_api(path):
    imports = botcore_imports(path)
    assert imports, f'{path.name} imports nothing from botcore'
    wrong = [w for module, names in imports for w in api_misuse(path.parent.name, module, names)]
    assert not wrong, f'{path.parent.name}/{path.name}: ' + '; '.join(wrong)


# ---------------------------------------------------------------- the README's map

def readme_map() -> dict[str, set[str]]:
    "The README's notebook -> module table: each notebook path it names, with the modules of its row."
    out = {}
    for row in (ROOT / 'README.md').read_text().splitlines():
        if not row.startswith('| `nbs/'): continue
        notebooks, modules = row.split('|')[1:3]
        first = re.search(r'`nbs/([^`]+)`', notebooks).group(1)
        folder = first.rsplit('/', 1)[0] + '/' if '/' in first else ''
        for nb in re.findall(r'`(?:nbs/)?([^`]+)`', notebooks):
            path = nb if nb.startswith(folder) else folder + nb
            out[path if path.endswith('.ipynb') else path + '.ipynb'] = set(re.findall(r'`(botcore[\w.]*)`', modules))
    return out


def test_readme_maps_every_notebook_to_its_module():
    "Every notebook in nbs/ has a row, every row names a notebook that exists and the module it exports."
    table = readme_map()
    notebooks = {p.relative_to(ROOT / 'nbs').as_posix() for p in (ROOT / 'nbs').rglob('*.ipynb')
                 if '.ipynb_checkpoints' not in p.parts}
    assert notebooks - set(table) == set(), 'notebooks missing from the README table'
    assert set(table) - notebooks == set(), 'README rows naming no notebook'
    for nb, modules in table.items():
        src = ''.join(''.join(c['source']) for c in json.loads((ROOT / 'nbs' / nb).read_text())['cells'])
        exp = re.search(r'#\| default_exp (\S+)', src).group(1)
        assert any(f'botcore.{exp}'.startswith(m) for m in modules), f'{nb} exports botcore.{exp}, not {modules}'
