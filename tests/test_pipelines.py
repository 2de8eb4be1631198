"""`botcore train` runs pipelines/train.ipynb with papermill, keeps the executed report and promotes the model
(or says why the promotion gate refused it)."""
import json, os, subprocess

from support import botcore_script


def test_botcore_train_runs_the_pipeline(tmp_path):
    env = {**os.environ, 'BOTCORE_DATA_DIR': str(tmp_path / 'data')}
    env.pop('BOTCORE_CONFIG', None)
    r = subprocess.run([str(botcore_script()), 'train', '--symbol', 'ETHUSDT', '--timeframe', '15m', '--epochs', '1',
                        '--max-train-seconds', '20', '--runs-dir', str(tmp_path / 'runs')],
                       env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
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
