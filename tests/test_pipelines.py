"""`botcore train` runs pipelines/train.ipynb with papermill, keeps the executed report and promotes the model."""
import json, os, subprocess

from support import botcore_script


def test_botcore_train_runs_the_pipeline(tmp_path):
    env = {**os.environ, 'BOTCORE_DATA_DIR': str(tmp_path / 'data')}
    env.pop('BOTCORE_CONFIG', None)
    r = subprocess.run([str(botcore_script()), 'train', '--symbol', 'ETHUSDT', '--timeframe', '15m', '--epochs', '1',
                        '--max-train-seconds', '20', '--runs-dir', str(tmp_path / 'runs')],
                       env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = list((tmp_path / 'runs').glob('train-ETHUSDT-15m-*.ipynb'))
    assert len(reports) == 1
    nb = json.loads(reports[0].read_text())
    text = ''.join(''.join(o.get('text', '')) for c in nb['cells'] for o in c.get('outputs', []))
    assert 'promoted' in text and 'baseline' in text  # the verdict sentence compares with the baselines
    figures = [o['data']['application/vnd.plotly.v1+json'] for c in nb['cells'] for o in c.get('outputs', [])
               if 'application/vnd.plotly.v1+json' in o.get('data', {})]
    titles = [f['layout']['title']['text'] for f in figures]
    assert any('Loss per epoch' in t for t in titles) and any('Reliability diagram' in t for t in titles), titles
    calibration = next(f for f in figures if 'Reliability' in f['layout']['title']['text'])
    assert len(calibration['data']) == 3 and all(len(d['x']) >= 5 for d in calibration['data'][1:])  # LSTM and logistic regression
    models = tmp_path / 'data' / 'models'
    current = (models / 'CURRENT').read_text().strip()
    meta = json.loads((models / current / 'meta.json').read_text())
    assert meta['symbols'] == ['ETHUSDT'] and meta['timeframe'] == '15m'
    assert set(meta['metrics']['baselines']) == {'majority class', 'logistic regression', 'last candle direction'}
