"""`botcore.research.tune`: Optuna studies on validation folds, kept in SQLite or PostgreSQL.

Every study is tiny (logistic regression, 3-4 trials, two validation folds of the last 2,600 real
BTCUSDT 1h candles) and kept in a temporary SQLite file, or in a PostgreSQL schema of its own
(dropped afterwards) when 127.0.0.1:5432 is reachable; without the server that test skips, naming
the reason, unless BOTCORE_REQUIRE_SERVICES=1, where it fails.
"""
import uuid

import numpy as np
import optuna
import pytest
import sqlalchemy as sa

from botcore.config import Settings
from botcore.model.samples import iso_utc
from botcore.research.tune import best_config, open_storage, storage_url, tune, tune_report
from support import PG_URL, pg_unreachable, unavailable

TRAIN, TEST = 1200, 300
KW = dict(train_size=TRAIN, test_size=TEST, n_folds=4, holdout=2, progress=False)


@pytest.fixture(scope='module')
def candles(btc_1h):
    "The last 2,600 real candles: two held-out blocks of 300 after two validation folds."
    return btc_1h.iloc[-2600:].copy()


@pytest.fixture(scope='module')
def first(tmp_path_factory, candles):
    "A 3-trial study in a temporary SQLite file, and its URL."
    url = f"sqlite:///{tmp_path_factory.mktemp('tune')}/study.db"
    return tune('logistic', n_trials=3, storage=url, candles=candles, **KW), url


def values(study):
    return [(t.number, t.params, t.value, t.user_attrs['fold_log_loss']) for t in study.trials]


def test_trials_persist_and_reload(first, candles):
    study, url = first
    again = optuna.load_study(study_name='BTCUSDT-1h-logistic', storage=url)
    assert values(again) == values(study) and len(again.trials) == 3
    for t in again.trials:
        assert t.state.name == 'COMPLETE'
        folds = t.user_attrs['fold_log_loss']
        assert len(folds) == 2 and t.value == pytest.approx(np.mean(folds), abs=1e-12)
        assert 0.5 < t.value              # no direction forecast of real prices is far better
        assert sorted(t.intermediate_values) == [0, 1]   # reported after each fold, for pruning
    assert len({t.params['C'] for t in again.trials}) == 3
    best = best_config(again)
    assert (best.model_type, best.C) == ('logistic', again.best_params['C'])
    report = tune_report(again)
    assert report.loc[report.best].index.tolist() == [again.best_trial.number]
    assert report.value.min() == again.best_value


def test_held_out_tail_is_never_read(first, candles, tmp_path):
    study, _ = first
    cut = len(candles) - 2 * TEST
    assert study.user_attrs['last_candle'] == iso_utc(candles.index[cut - 1])
    junk = candles.copy()
    rng = np.random.default_rng(1)
    junk.iloc[cut:, :4] = rng.uniform(1, 1e6, (len(junk) - cut, 4))   # finite garbage prices
    junk.iloc[cut + 100:, :5] = np.nan
    other = tune('logistic', n_trials=3, storage=f'sqlite:///{tmp_path}/junk.db', candles=junk,
                 **KW)
    assert values(other) == values(study)


def test_resume_adds_trials_and_refuses_other_folds(first, candles, tmp_path):
    _, url = first
    import shutil
    copy = tmp_path / 'copy.db'
    shutil.copy(url.removeprefix('sqlite:///'), copy)
    url = f'sqlite:///{copy}'
    study = tune('logistic', n_trials=1, storage=url, candles=candles, **KW)
    assert len(study.trials) == 4
    # the resumed trial is a new point, not the first trial's again
    assert study.trials[3].params != study.trials[0].params
    with pytest.raises(ValueError, match='train_size=1200'):
        tune('logistic', n_trials=1, storage=url, candles=candles, **(KW | dict(train_size=1000)))


def test_two_dask_workers_share_one_sqlite_study(candles, tmp_path):
    url = f'sqlite:///{tmp_path}/shared.db'
    study = tune('logistic', n_trials=4, storage=url, candles=candles, n_workers=2, **KW)
    again = optuna.load_study(study_name='BTCUSDT-1h-logistic', storage=url)
    assert len(again.trials) == 4
    assert {t.state.name for t in again.trials} == {'COMPLETE'}
    assert len({t.user_attrs['worker'] for t in again.trials}) == 2   # two processes ran them
    assert len({t.params['C'] for t in again.trials}) == 4    # the workers did not repeat
    assert study.best_value == again.best_value


@pytest.fixture
def pg_schema():
    "A schema name of this test's own, dropped afterwards (tune creates it)."
    if (why := pg_unreachable()) is not None: unavailable(why)
    schema = f'test_tune_{uuid.uuid4().hex[:16]}'
    yield schema
    admin = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    with admin.begin() as c: c.exec_driver_sql(f'DROP SCHEMA IF EXISTS {schema} CASCADE')
    admin.dispose()


def test_postgresql_study(candles, pg_schema):
    url = storage_url(Settings(store=dict(url=PG_URL)), schema=pg_schema)
    study = tune('logistic', n_trials=2, storage=url, candles=candles, study_name='pg', **KW)
    again = optuna.load_study(study_name='pg', storage=open_storage(url, create=False))
    assert values(again) == values(study) and len(again.trials) == 2
    with sa.create_engine(PG_URL, poolclass=sa.NullPool).connect() as c:
        tables = {r[0] for r in c.exec_driver_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (pg_schema,))}
    assert {'studies', 'trials', 'alembic_version'} <= tables   # in the schema, not the store's
