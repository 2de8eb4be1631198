"""`botcore train` runs pipelines/train.ipynb with papermill, keeps the executed report and promotes the model
(or says why the promotion gate refused it). It prints the model's test metrics beside the baselines and says
plainly what became of the model: promoted, and which model it replaced, or refused by the gate and why."""
import json
import os
import subprocess

import pandas as pd

from botcore.model.evaluation import evaluation_report
from support import botcore_script


def train(tmp_path, *args) -> subprocess.CompletedProcess:
    "`botcore train` on the real ETHUSDT 15m candles, one epoch, in `tmp_path` with its own data dir."
    env = {**os.environ, 'BOTCORE_DATA_DIR': str(tmp_path / 'data')}
    env.pop('BOTCORE_CONFIG', None)
    return subprocess.run([str(botcore_script()), 'train', '--symbol', 'ETHUSDT', '--timeframe', '15m', '--epochs', '1',
                           '--max-train-seconds', '20', '--runs-dir', str(tmp_path / 'runs'), *args],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def metrics_table(stdout: str) -> pd.DataFrame:
    "The test-metrics table `botcore train` prints after the report's path: the model's row, then the baselines'."
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split() == ['accuracy', 'roc_auc', 'log_loss', 'brier'])
    rows = []
    for line in lines[at + 2:]:
        *name, acc, auc, loss, brier = line.split()
        try: rows.append((' '.join(name), *map(float, (acc, auc, loss, brier))))
        except ValueError: break          # the verdict after the table
    return pd.DataFrame(rows, columns=['name', 'accuracy', 'roc_auc', 'log_loss', 'brier']).set_index('name')


def test_botcore_train_runs_the_pipeline_and_says_what_became_of_the_model(tmp_path):
    """The report, the model in the registry; then the printed table and the promotion line of this run and of a
    second one, forced past the gate, which replaces the first if that one was served."""
    r = train(tmp_path)
    models = tmp_path / 'data' / 'models'
    (version,) = [d.name for d in models.iterdir() if (d / 'meta.json').is_file()]
    meta = json.loads((models / version / 'meta.json').read_text())
    m = meta['metrics']
    refused = m['test']['log_loss'] > m['baselines']['majority class']['log_loss']   # the gate's rule
    if refused:   # saved, not served, said so, exit status 1
        assert r.returncode == 1 and 'NOT promoted' in r.stderr, (r.returncode, r.stderr[-3000:])
        assert not (models / 'CURRENT').exists()
    else:
        assert r.returncode == 0, r.stderr[-3000:]
        assert (models / 'CURRENT').read_text().strip() == version and 'promoted and served' in r.stdout
    reports = list((tmp_path / 'runs').glob('train-ETHUSDT-15m-*.ipynb'))
    assert len(reports) == 1
    nb = json.loads(reports[0].read_text())
    text = ''.join(''.join(o.get('text', '')) for c in nb['cells'] for o in c.get('outputs', []))
    assert 'promoted' in text and 'baseline' in text  # the verdict sentence compares with the baselines
    assert ('NOT promoted' in text) == refused
    figures = [o['data']['application/vnd.plotly.v1+json'] for c in nb['cells'] for o in c.get('outputs', [])
               if 'application/vnd.plotly.v1+json' in o.get('data', {})]
    titles = [f['layout']['title']['text'] for f in figures]
    assert any('Loss per epoch' in t for t in titles) and any('Reliability diagram' in t for t in titles), titles
    calibration = next(f for f in figures if 'Reliability' in f['layout']['title']['text'])
    names = [d['name'] for d in calibration['data'][1:]]   # the model before and after calibration, logistic
    assert len(names) == 3 and 'logistic regression' in names and all(len(d['x']) >= 5 for d in calibration['data'][1:]), names
    assert meta['symbols'] == ['ETHUSDT'] and meta['timeframe'] == '15m'
    assert set(meta['metrics']['baselines']) == {'majority class', 'logistic regression', 'last candle direction'}

    # the printed table is the model's test metrics beside the baselines, then the verdict, then what became of it
    first, second = r, train(tmp_path, '--force')
    v1, v2 = sorted(d.name for d in models.iterdir() if (d / 'meta.json').is_file())
    for run, v in ((first, v1), (second, v2)):
        assert run.stdout.splitlines()[0].startswith('report: '), run.stdout[:500]
        table = metrics_table(run.stdout)
        assert table.index.tolist() == ['lightgbm', 'majority class', 'logistic regression', 'last candle direction']
        want = evaluation_report(json.loads((models / v / 'meta.json').read_text()))
        pd.testing.assert_frame_equal(table, want.round(4).set_axis(table.index), check_names=False)
        assert f"\n{want.attrs['verdict']}\n" in run.stdout and 'baseline' in want.attrs['verdict']
    if refused:      # said why on stderr, nothing served; then forced in, and said so
        assert first.returncode == 1 and f'saved {v1}, NOT promoted: model {v1}: its test log loss' in first.stderr
        assert first.stderr.strip().endswith('no model is served'), first.stderr[-500:]
        assert f'promoted and served: {v2}; no model was served before (forced past the promotion gate: ' in second.stdout
    else:
        assert first.returncode == 0 and f'promoted and served: {v1}; no model was served before' in first.stdout
        assert f'promoted and served: {v2}; it replaced {v1}' in second.stdout, second.stdout[-1000:]
    assert second.returncode == 0 and (models / 'CURRENT').read_text().strip() == v2
