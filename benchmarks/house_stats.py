"""The house's shape in figures: modules per folder, the largest module, code-cell sizes, long lines,
tests per exported cell. Prints them for a checkout (default: this one), so a redesign can give
its before and after.

    python benchmarks/house_stats.py [ROOT]
"""
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

TEST_MARKS = ('test_eq', 'test_fail', 'test_ne', 'test_close', 'test_is', 'test_warns', 'assert ',
              'test_shuffled', 'test_stdout', 'test_sig', 'test_fig_exists', 'test_eq_type')


def modules(root: Path) -> list[tuple[str, int]]:
    "Every generated module but the index and `__init__`s, with its line count."
    lib = root / 'botcore'
    out = []
    for p in sorted(lib.rglob('*.py')):
        if p.name in ('_modidx.py', '__init__.py'): continue
        out.append((p.relative_to(lib).as_posix(), len(p.read_text().splitlines())))
    return out


def cells(root: Path):
    "Code cells of the library notebooks: (notebook, source lines, exported?)."
    for nb in sorted((root / 'nbs').rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb.parts: continue
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] != 'code': continue
            src = ''.join(c['source']).splitlines()
            flags = [s for s in src if s.startswith('#|')]
            code = [s for s in src if s.strip() and not s.startswith('#|')]
            exported = any(f.split()[1:2] in (['export'], ['exports']) for f in flags)
            yield nb, code, exported, flags


def main(root: Path):
    mods = modules(root)
    folders = Counter(m.rsplit('/', 1)[0] if '/' in m else '.' for m, _ in mods)
    big = max(mods, key=lambda m: m[1])
    rows = list(cells(root))
    sizes = [len(code) for _, code, _, flags in rows if code and not any('default_exp' in f for f in flags)]
    exported = sum(e for _, _, e, _ in rows)
    tests = sum(1 for _, code, e, _ in rows if not e and any(m in s for s in code for m in TEST_MARKS))
    lines = [s for _, code, _, _ in rows for s in code]
    lines += [s for p in (root / 'botcore').rglob('*.py') if p.name != '_modidx.py'
              for s in p.read_text().splitlines()]
    long = sum(len(s) > 100 for s in lines)
    print(f'checkout: {root}')
    print(f'modules: {len(mods)} in {len(folders)} folders: '
          + ', '.join(f'{k} {v}' for k, v in sorted(folders.items())))
    print(f'largest module: {big[0]} ({big[1]} lines); modules over 400 lines: '
          + (', '.join(f'{m} ({n})' for m, n in mods if n > 400) or 'none'))
    print(f'code cells: {len(sizes)}; median {statistics.median(sizes):g} lines, largest {max(sizes)}; '
          f'over 30 lines: {sum(s > 30 for s in sizes)}')
    print(f'exported cells: {exported}; test cells: {tests}; tests per exported cell: {tests / exported:.2f}')
    print(f'lines over 100 characters (notebook code and modules): {long} of {len(lines)} '
          f'({100 * long / len(lines):.1f} %)')


if __name__ == '__main__':
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent).resolve())
