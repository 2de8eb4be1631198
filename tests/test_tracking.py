"""Every run tracked: `botcore train`, the AI service's `/train` jobs, `botcore evaluate`, `botcore
tune` and `botcore sweep` leave their runs in MLflow, read back here with MLflow's own client from
the real local store under a fresh data dir (`<data_dir>/mlflow/mlflow.db`); the model a run trained
and its registry entry name each other. A tracking server that cannot be reached costs one warning
line, never the training. Every size is tiny (an MLP of 2 epochs, folds of a few hundred candles,
2-trial studies): what is tested is the record, not the models."""
import json
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from botcore.data.candles import candles_to_json
from support import UvicornServer, botcore_script, clean_env, free_port

pytestmark = [pytest.mark.slow,   # MLflow's own SQLAlchemy store, not ours:
              pytest.mark.filterwarnings('ignore:The ``noload`` loader strategy is deprecated')]
OPERATOR_KEY = 'operator-key-' + 'o' * 30
OPERATOR = {'Authorization': f'Bearer {OPERATOR_KEY}'}


def botcore(data_dir: Path, *argv, cwd: Path, **env) -> subprocess.CompletedProcess:
    "`botcore *argv` with its own data dir (and `env`), nothing else of this machine's settings."
    return subprocess.run([str(botcore_script()), *argv], capture_output=True, text=True,
                          timeout=600, cwd=cwd,
                          env=clean_env(BOTCORE_DATA_DIR=str(data_dir), **env))


def store(data_dir: Path) -> MlflowClient:
    "MLflow's client on the data dir's default local store, which must exist."
    db = data_dir / 'mlflow' / 'mlflow.db'
    assert db.is_file(), f'no local tracking store at {db}'
    return MlflowClient(f'sqlite:///{db}')


def runs_of(client: MlflowClient, kind: str) -> list:
    "The top-level runs of `kind` in the 'botcore' experiment, newest first."
    exp = client.get_experiment_by_name('botcore')
    runs = client.search_runs([exp.experiment_id], f"tags.`botcore.kind` = '{kind}'",
                              order_by=['attributes.start_time DESC'])
    return [r for r in runs if 'mlflow.parentRunId' not in r.data.tags]


def artifacts(client: MlflowClient, run_id: str, path: str = '') -> list[str]:
    "Every artifact file of the run under `path`, recursively."
    out = []
    for f in client.list_artifacts(run_id, path or None):
        out += artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return sorted(out)


def history(client, run_id, key) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


# ---------------------------------------------------------------- botcore train

TRAIN = ['train', '--symbol', 'ETHUSDT', '--timeframe', '15m', '--model-type', 'mlp', '--epochs', '2',
         '--max-train-seconds', '30', '--force']


def test_botcore_train_run_and_registry_point_at_each_other(tmp_path):
    data = tmp_path / 'data'
    r = botcore(data, *TRAIN, '--runs-dir', str(tmp_path / 'runs'), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'MLflow' not in r.stderr, r.stderr[-2000:]            # no tracking warning
    models = data / 'models'
    version = (models / 'CURRENT').read_text().strip()
    meta = json.loads((models / version / 'meta.json').read_text())
    client = store(data)
    (run,) = runs_of(client, 'train')
    rid = run.info.run_id
    # the run and the registry entry name each other
    assert meta['mlflow_run_id'] == rid
    assert run.data.tags['botcore.model_version'] == version and run.data.tags['botcore.promoted'] == 'true'
    assert run.info.status == 'FINISHED' and run.info.run_name == 'train ETHUSDT 15m mlp'
    # parameters: the pipeline's, the model's hyper-parameters and data
    p = run.data.params
    assert (p['pipeline.symbol'], p['pipeline.epochs'], p['model_type'], p['timeframe']) == ('ETHUSDT', '2', 'mlp', '15m')
    assert int(p['samples_train']) == meta['samples']['train']
    # loss per epoch, step = epoch, as the model's history has it; the final metrics
    for key in ('train_loss', 'val_loss'):
        assert history(client, rid, key) == [(h['epoch'], pytest.approx(h[key])) for h in meta['history']]
    assert len(meta['history']) >= 1
    m = run.data.metrics
    assert m['test_log_loss'] == pytest.approx(meta['metrics']['test']['log_loss'])
    assert m['baseline_majority_class_log_loss'] == pytest.approx(meta['metrics']['baselines']['majority class']['log_loss'])
    # the executed report notebook and the registry version's files
    (report,) = (tmp_path / 'runs').glob('train-ETHUSDT-15m-*.ipynb')
    files = sorted(f.name for f in (models / version).iterdir())
    assert artifacts(client, rid) == sorted([f'report/{report.name}'] + [f'model/{f}' for f in files])
    saved = json.loads(Path(client.download_artifacts(rid, 'model/meta.json', str(tmp_path))).read_text())
    assert saved['mlflow_run_id'] == rid and saved['version'] == version
    text = ''.join(''.join(o.get('text', '')) for c in json.loads(report.read_text())['cells'] for o in c.get('outputs', []))
    assert f'MLflow run {rid}' in text

    # botcore runs lists it, with its version, and says how to browse the store
    listed = botcore(data, 'runs', cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    row = next(line for line in lines if rid in line)
    assert 'train ETHUSDT 15m mlp' in row and 'FINISHED' in row and version in row and 'test_log_loss=' in row
    assert lines[-1] == (f"browse them: mlflow ui --backend-store-uri sqlite:///{data}/mlflow/mlflow.db "
                         f"--default-artifact-root file://{data}/mlflow/artifacts")


def test_an_unreachable_tracking_server_costs_one_warning_not_the_model(tmp_path):
    data, port = tmp_path / 'data', free_port()   # nothing listens there
    started = time.monotonic()
    r = botcore(data, 'train', '--symbol', 'ETHUSDT', '--timeframe', '15m', '--force',
                '--runs-dir', str(tmp_path / 'runs'), cwd=tmp_path, MLFLOW_TRACKING_URI=f'http://127.0.0.1:{port}')
    seconds = time.monotonic() - started
    assert r.returncode == 0, r.stderr[-3000:]
    models = data / 'models'
    version = (models / 'CURRENT').read_text().strip()
    assert f'promoted and served: {version}' in r.stdout
    warnings = [line for line in r.stderr.splitlines() if 'MLflow' in line or 'mlflow' in line]
    assert warnings == [f'MLflow tracking off for this train run: http://127.0.0.1:{port} unreachable: '
                        'Connection refused; the work goes on untracked'], r.stderr[-3000:]
    assert 'mlflow_run_id' not in json.loads((models / version / 'meta.json').read_text())
    assert not (data / 'mlflow').exists()
    print(f'botcore train with an unreachable tracking server: {seconds:.0f} s')


# ---------------------------------------------------------------- the AI service's /train

def test_a_train_job_of_the_ai_service_is_a_run(tmp_path, btc_1h):
    env = clean_env(INTER_SERVICE_TOKEN='engine-token-' + 'e' * 30, AI_API_KEY=OPERATOR_KEY)
    server = UvicornServer('botcore.api.ai.app:app', tmp_path, env, name='ai', health_timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            body = {'model_type': 'mlp', 'epochs': 2, 'retrain': True,
                    'candles': candles_to_json(btc_1h.iloc[-3000:])}
            r = c.post('/train', json=body, headers=OPERATOR)
            assert r.status_code == 202, r.text
            job_id = r.json()['job_id']
            deadline = time.monotonic() + 300
            while (job := c.get(f'/train/{job_id}', headers=OPERATOR).json())['status'] in ('queued', 'running'):
                assert time.monotonic() < deadline, job
                time.sleep(0.3)
    finally:
        server.stop()
    assert 'Traceback' not in server.logs(), server.logs()[-3000:]
    client = store(tmp_path)
    (run,) = runs_of(client, 'train')
    rid, tags = run.info.run_id, run.data.tags
    assert (tags['botcore.job_id'], tags['botcore.source']) == (job_id, 'ai-service')
    assert (run.data.params['request.model_type'], run.data.params['request.candles']) == ('mlp', '3000')
    models = tmp_path / 'models'
    (version,) = [d.name for d in models.iterdir() if (d / 'meta.json').is_file()]
    meta = json.loads((models / version / 'meta.json').read_text())
    assert meta['mlflow_run_id'] == rid and tags['botcore.model_version'] == version
    assert history(client, rid, 'val_loss') == [(h['epoch'], pytest.approx(h['val_loss'])) for h in meta['history']]
    assert artifacts(client, rid) == sorted(f'model/{f.name}' for f in (models / version).iterdir())
    if job['status'] == 'succeeded':       # served: the run finished, promoted
        assert job['model_version'] == version == (models / 'CURRENT').read_text().strip()
        assert (run.info.status, tags['botcore.promoted']) == ('FINISHED', 'true')
    else:                                  # the promotion gate refused it: saved, the job and its run failed
        assert job['error'].startswith('PromotionRefused'), job
        assert (run.info.status, tags['botcore.promoted']) == ('FAILED', 'false')


# ---------------------------------------------------------------- evaluate, tune, sweep

@pytest.fixture(scope='module')
def research(tmp_path_factory):
    "One data dir (and its tracking store) for the evaluate, tune and sweep runs."
    return tmp_path_factory.mktemp('research')


def test_botcore_evaluate_logs_every_fold(research):
    out = research / 'eval'
    r = botcore(research / 'data', 'evaluate', '--symbols', 'BTCUSDT', '--timeframes', '1h', '--models', 'lightgbm',
                '--folds', '2', '--train-size', '600', '--test-size', '200', '--holdout', '1', '--workers', '0',
                '--out', str(out), cwd=research)
    assert r.returncode == 0, r.stderr[-3000:]
    client = store(research / 'data')
    (run,) = runs_of(client, 'evaluate')
    rid = run.info.run_id
    assert run.info.status == 'FINISHED' and run.data.params['pipeline.n_folds'] == '2'
    folds = pd.read_csv(out / 'folds.csv')
    for cand in ('lightgbm', 'logistic'):
        f = folds[folds.candidate == cand].drop_duplicates('fold').sort_values('fold')
        assert history(client, rid, f'{cand}/BTCUSDT-1h/log_loss') == [
            (k, pytest.approx(v)) for k, v in zip(f.fold, f.log_loss)]
    rules = folds[folds.candidate == 'rules'].sort_values('fold')
    assert history(client, rid, 'rules/BTCUSDT-1h/sharpe') == [(k, pytest.approx(v)) for k, v in zip(rules.fold, rules.sharpe)]
    verdict = (out / 'verdict.txt').read_text().strip()
    assert run.data.tags['botcore.verdict'] == verdict
    (report,) = out.glob('evaluate-*.ipynb')
    assert artifacts(client, rid) == sorted(
        [f'report/{report.name}'] + [f'leaderboard/{n}' for n in ('folds.csv', 'leaderboard.csv', 'leaderboard.md', 'verdict.txt')])
    assert 'pick_log_loss' in run.data.metrics and 'heldout_pick_log_loss' in run.data.metrics


def test_botcore_tune_logs_each_trial_with_its_folds(research):
    import optuna
    r = botcore(research / 'data', 'tune', '--model-type', 'logistic', '--trials', '2', '--train-size', '1200',
                '--test-size', '300', '--folds', '4', '--holdout', '2', '--start', '2024-01-01', '--no-progress',
                cwd=research)
    assert r.returncode == 0, r.stderr[-3000:]
    study = optuna.load_study(study_name='BTCUSDT-1h-logistic', storage=f"sqlite:///{research / 'data' / 'botcore-optuna.db'}")
    client = store(research / 'data')
    (run,) = runs_of(client, 'tune')
    rid = run.info.run_id
    assert run.info.status == 'FINISHED' and run.data.params['trials'] == '2'
    assert run.data.metrics['best_log_loss'] == pytest.approx(study.best_value)
    kids = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{rid}'")
    assert sorted(k.info.run_name for k in kids) == ['trial 0', 'trial 1']
    for kid in kids:
        trial = study.trials[int(kid.info.run_name.split()[1])]
        folds = history(client, kid.info.run_id, 'fold_log_loss')
        assert folds == [(k, pytest.approx(v)) for k, v in enumerate(trial.user_attrs['fold_log_loss'])]
        assert kid.data.params == {k: str(v) for k, v in trial.params.items()}
    best = json.loads(Path(client.download_artifacts(rid, 'best_config.json', str(research))).read_text())
    said = r.stdout.strip().splitlines()[-1]
    assert said.startswith('best config: ') and json.loads(said[len('best config: '):]) == best


def test_botcore_sweep_logs_its_best_and_all_rows(research):
    r = botcore(research / 'data', 'sweep', '--grid', 'stop_loss_pct=1,3;take_profit_pct=2,6', '--start', '2024-03-01',
                '--workers', '1', '--no-progress', '--out', str(research / 'sweep.csv'), cwd=research)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = pd.read_csv(research / 'sweep.csv')
    client = store(research / 'data')
    (run,) = runs_of(client, 'sweep')
    rid = run.info.run_id
    assert run.info.status == 'FINISHED' and run.data.params['grid'] == 'stop_loss_pct=1,3;take_profit_pct=2,6'
    assert run.data.metrics['backtests'] == len(rows) == 4
    assert run.data.metrics['best_sharpe_ratio'] == pytest.approx(rows.sharpe_ratio.iloc[0])
    assert run.data.tags['best.stop_loss_pct'] == str(rows.stop_loss_pct.iloc[0])
    logged = pd.read_csv(client.download_artifacts(rid, 'sweep.csv', str(research)))
    pd.testing.assert_frame_equal(logged, rows)
    # all three kinds in one store, newest first
    listed = botcore(research / 'data', 'runs', cwd=research)
    kinds = [line.split()[2] for line in listed.stdout.splitlines()[1:4]]
    assert kinds == ['sweep', 'tune', 'evaluate'], listed.stdout
