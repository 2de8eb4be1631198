"""`botcore schedule`: real papermill runs of pipelines/train.ipynb fired by APScheduler cron triggers.

- a cron-fired retrain (tiny: one epoch on a slice of the real BTCUSDT 1h candles) promotes a model,
  keeps its executed notebook under runs_dir, is recorded in the store, is not started twice while
  it runs, and the AI service (uvicorn in a subprocess on the same model_dir) serves the new model
  without a restart;
- a run that fails for real (a symbol with no candles) is logged and recorded as an error event with
  its notebook, and the scheduler keeps firing;
- `--once NAME` exits with the run's status; the command runs until SIGTERM;
- a bad cron expression or an unknown pipeline parameter is refused at start, naming the key.
"""
import json, logging, signal, subprocess, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger

from botcore.config import ConfigError, load_settings
from botcore.data.candles import load_candles, open_times_ms
from botcore.model.registry import ModelRegistry
from botcore.jobs.schedule import PipelineScheduler, schedule_cmd
from botcore.store.store import Store
from support import UvicornServer, clean_env

EVERY_SECOND = dict(second='*', timezone=timezone.utc)


@pytest.fixture(scope='module')
def candles_file(tmp_path_factory) -> Path:
    "The last 3,000 real BTCUSDT 1h candles as a Parquet file: a train run of seconds, not minutes."
    btc = load_candles('BTCUSDT', '1h').iloc[-3000:]
    path = tmp_path_factory.mktemp('candles') / 'btc-1h.parquet'
    btc.assign(timestamp=open_times_ms(btc)).reset_index(drop=True).to_parquet(path)
    return path


def write_config(tmp_path: Path, runs: str) -> Path:
    "A botcore.toml with its own data_dir and runs_dir, and the `[[schedule.runs]]` tables `runs`."
    path = tmp_path / 'botcore.toml'
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n\n[schedule]\nruns_dir = "{tmp_path / "runs"}"\n\n{runs}')
    return path


def train_run(name: str, cron: str, candles_file: Path, **params) -> str:
    "A `[[schedule.runs]]` table: the train pipeline with tiny parameters (None: the pipeline's default; TOML has no null)."
    # force_promote: a one-epoch model; these tests are about the schedule, not the model's quality
    p = dict(symbol='BTCUSDT', timeframe='1h', data_path=str(candles_file), epochs=1, max_train_seconds=10,
             force_promote=True) | params
    p = {k: v for k, v in p.items() if v is not None}
    table = ', '.join(f'{k} = {json.dumps(v)}' for k, v in p.items())
    return f'[[schedule.runs]]\nname = "{name}"\npipeline = "train"\ncron = "{cron}"\nparameters = {{{table}}}\n\n'


def schedule_events(settings) -> list[dict]:
    with Store.from_settings(settings) as store: return store.events(limit=200, kind='schedule')


def wait_for(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline: raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(every)
    return result


def notebook_text(path) -> str:
    "Every output and error of an executed notebook, as text."
    nb = json.loads(Path(path).read_text())
    outs = [o for c in nb['cells'] for o in c.get('outputs', [])]
    return '\n'.join(''.join(o.get('text', '')) + o.get('ename', '') + ': ' + o.get('evalue', '') for o in outs)


def test_cron_fired_retrain_is_served_without_restart(tmp_path, candles_file):
    from botcore.model.training import TrainConfig, train_model
    config = write_config(tmp_path, train_run('retrain', '0 3 * * *', candles_file))
    settings = load_settings(config, env=clean_env())
    registry = ModelRegistry(settings.model_dir)
    old = registry.promote(train_model(load_candles(path=candles_file, timeframe='1h').iloc[-1500:],
                                       TrainConfig(epochs=1, seed=1), 'BTCUSDT', '1h', progress=False),
                           force=True)   # the old model only has to be served
    ai = UvicornServer('botcore.api.ai.app:app', settings.data_dir, clean_env(), name='ai')
    try:
        pid = ai.proc.pid
        assert httpx.get(f'{ai.url}/health').json()['model_version'] == old
        sched = PipelineScheduler(settings)
        # every second, for 3 seconds: the first fire starts the run, the later ones find it still going
        sched.scheduler.reschedule_job('retrain', trigger=CronTrigger(**EVERY_SECOND, end_date=datetime.now(timezone.utc) + timedelta(seconds=3)))
        sched.start()
        try: done = wait_for('the scheduled run to end', lambda: [e for e in schedule_events(settings) if e['data']['status'] != 'skipped'], 300)
        finally: sched.shutdown()
        (event,) = done
        assert (event['level'], event['data']['status']) == ('info', 'succeeded'), event
        new = registry.current()
        assert new != old and event['data']['model_version'] == new
        notebooks = list((tmp_path / 'runs' / 'retrain').glob('*.ipynb'))
        assert [str(p) for p in notebooks] == [event['data']['notebook']]   # one run, its notebook kept under runs_dir
        assert f'promoted {new}' in notebook_text(notebooks[0])
        skipped = [e for e in schedule_events(settings) if e['data']['status'] == 'skipped']
        assert skipped and all(e['level'] == 'warning' and 'still running' in e['message'] for e in skipped)

        served = wait_for('the AI service to serve the new model',
                          lambda: (v := httpx.get(f'{ai.url}/health').json()['model_version']) == new and v, 30)
        assert served == new and ai.proc.poll() is None and ai.proc.pid == pid   # same process: no restart
        token = settings.auth.ai_api_key.get_secret_value()
        info = httpx.get(f'{ai.url}/model/info', headers={'Authorization': f'Bearer {token}'}).json()
        assert info['version'] == new and info['model_loaded'] is True
    finally: ai.stop()


def test_failing_run_is_reported_and_the_scheduler_keeps_running(tmp_path, candles_file, caplog):
    config = write_config(tmp_path, train_run('unknown-symbol', '0 4 * * *', candles_file, symbol='NOPEUSDT', data_path=None))
    settings = load_settings(config, env=clean_env())
    sched = PipelineScheduler(settings)
    sched.scheduler.reschedule_job('unknown-symbol', trigger=CronTrigger(**EVERY_SECOND))
    with caplog.at_level(logging.INFO, logger='botcore.jobs.schedule'):
        sched.start()
        try:
            failed = wait_for('two failed runs', lambda: len(f := [e for e in schedule_events(settings) if e['data']['status'] == 'failed']) >= 2 and f, 120)
            assert sched.scheduler.running and sched.jobs()[0]['next_run'] is not None   # still firing after two failures
            sched.scheduler.pause_job('unknown-symbol')
        finally: sched.shutdown()
    for e in failed:
        assert e['level'] == 'error' and 'unknown-symbol' in e['message'] and 'UnknownSeriesError' in e['message'], e
        nb = Path(e['data']['notebook'])
        assert nb.parent == tmp_path / 'runs' / 'unknown-symbol' and nb.is_file()
        assert 'UnknownSeriesError: no bundled candles for NOPEUSDT 1h' in notebook_text(nb)   # the notebook shows where it stopped
    assert len({e['data']['notebook'] for e in failed}) == len(failed)
    errors = [r.getMessage() for r in caplog.records if r.name == 'botcore.jobs.schedule' and r.levelno == logging.ERROR]
    for e in failed:
        assert any('unknown-symbol' in m and 'UnknownSeriesError' in m and e['data']['notebook'] in m for m in errors), errors


def test_once_exits_with_the_run_status(tmp_path, candles_file, capsys):
    config = write_config(tmp_path, train_run('unknown-symbol', '0 4 * * *', candles_file, symbol='NOPEUSDT', data_path=None))
    assert schedule_cmd(config=str(config), once='unknown-symbol') == 1
    (event,) = schedule_events(load_settings(config, env=clean_env()))
    assert event['level'] == 'error' and Path(event['data']['notebook']).is_file()
    assert schedule_cmd(config=str(config), once='nightly') == 2
    assert "no scheduled run 'nightly'; [schedule] runs: unknown-symbol" in capsys.readouterr().err


def test_schedule_command_runs_until_sigterm(tmp_path, candles_file):
    config = write_config(tmp_path, train_run('retrain', '30 2 * * 1', candles_file))
    out = tmp_path / 'out.txt'
    with open(out, 'w') as f:
        proc = subprocess.Popen([sys.executable, '-c', 'import sys; from botcore.jobs.schedule import schedule_cmd; sys.exit(schedule_cmd(config=sys.argv[1]))',
                                 str(config)], cwd=tmp_path, env=clean_env(), stdout=f, stderr=subprocess.STDOUT)
    try:
        line = wait_for('the runs table', lambda: next((l for l in out.read_text().splitlines() if l.strip().startswith('retrain')), None), 60, 0.2)
        assert line.split()[:3] == ['retrain', 'train', '30'] and line.endswith('02:30'), line
        assert datetime.strptime(line.split('next ')[1], '%Y-%m-%d %H:%M').weekday() == 0   # a Monday
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert 'stopping' in out.read_text()
    finally:
        if proc.poll() is None: proc.kill()


@pytest.mark.parametrize('cron', ['0 25 * * *', '* * * * * *', 'nightly'])
def test_bad_cron_is_refused_at_start_naming_the_key(tmp_path, candles_file, capsys, cron):
    config = write_config(tmp_path, train_run('retrain', cron, candles_file))
    with pytest.raises(ConfigError) as e: load_settings(config, env=clean_env())
    assert (e.value.file, e.value.key) == (str(config), 'schedule.runs[0].cron') and 'bad cron expression' in e.value.reason
    with pytest.raises(SystemExit) as stop: schedule_cmd(config=str(config))
    assert stop.value.code == 2 and f'schedule.runs[0].cron: bad cron expression {cron!r}' in capsys.readouterr().err


def test_unknown_parameter_is_refused_at_start_naming_the_key(tmp_path, candles_file, capsys):
    config = write_config(tmp_path, train_run('retrain', '0 3 * * *', candles_file, epoch=1))
    assert schedule_cmd(config=str(config)) == 2
    assert 'schedule.runs[0].parameters.epoch: not a parameter of pipelines/train.ipynb' in capsys.readouterr().err


def test_weekday_numbers_are_read_as_cron_reads_them(tmp_path, candles_file, capsys):
    "crontab's 1 is Monday (APScheduler 3's from_crontab would fire on Tuesday); day-of-month with weekday is refused."
    config = write_config(tmp_path, train_run('weekly', '0 6 * * 1', candles_file) + train_run('sundays', '0 6 * * 0', candles_file))
    jobs = {j['name']: j['next_run'] for j in PipelineScheduler(load_settings(config, env=clean_env())).jobs()}
    assert (jobs['weekly'].strftime('%a %H:%M'), jobs['sundays'].strftime('%a %H:%M')) == ('Mon 06:00', 'Sun 06:00')
    config = write_config(tmp_path, train_run('retrain', '0 3 1 * 1', candles_file))
    assert schedule_cmd(config=str(config)) == 2
    assert "schedule.runs[0].cron: '0 3 1 * 1' restricts both the day of the month and the day of the week" in capsys.readouterr().err
