"""The container files: docker-compose.yml is accepted by Docker Compose and keeps the seed's start order and health checks.

Docker cannot run on these machines, so the images are not built here; `docker compose config` (or the
`docker-compose` v1 command, which reads the same Compose Specification) must accept the file.
"""
import os, shutil, subprocess
from pathlib import Path

import yaml

from support import unavailable

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {k: 'x' * 40 for k in ('INTER_SERVICE_TOKEN', 'ENGINE_API_KEY', 'AI_API_KEY', 'DASHBOARD_SESSION_SECRET')}


def compose_command() -> list[str]:
    if shutil.which('docker') and subprocess.run(['docker', 'compose', 'version'], capture_output=True).returncode == 0:
        return ['docker', 'compose']
    if shutil.which('docker-compose'): return ['docker-compose']
    unavailable('neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)')


def config(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*compose_command(), '-f', str(ROOT / 'docker-compose.yml'), 'config'], cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k not in SECRETS} | env, capture_output=True, text=True, timeout=60)


def test_compose_accepts_the_file_and_keeps_the_seeds_order():
    r = config(SECRETS)
    assert r.returncode == 0, r.stderr
    services = yaml.safe_load(r.stdout)['services']
    ai, engine = services['python-ai-service'], services['trading-engine']
    assert ai['healthcheck']['test'] == ['CMD', 'curl', '-f', 'http://localhost:8000/health']
    assert engine['healthcheck']['test'] == ['CMD', 'curl', '-f', 'http://localhost:8080/health']
    assert engine['depends_on']['python-ai-service']['condition'] == 'service_healthy'
    assert engine['environment']['PYTHON_AI_SERVICE_URL'] == 'http://python-ai-service:8000'
    assert engine['environment']['DATABASE_URL'].startswith('postgresql+psycopg://')
    assert all(s['environment'][k] == SECRETS[k] for s in (ai, engine) for k in SECRETS)
    dash = services['dashboard']
    assert {k: v['condition'] for k, v in dash['depends_on'].items()} == {'trading-engine': 'service_healthy', 'python-ai-service': 'service_healthy'}
    assert dash['healthcheck']['test'] == ['CMD', 'curl', '-f', 'http://localhost:3000/health']


def test_compose_refuses_to_start_without_secrets():
    r = config({})
    assert r.returncode != 0 and 'INTER_SERVICE_TOKEN' in r.stderr


def test_dockerfile_pins_the_cpu_torch_and_runs_the_main_job():
    text = (ROOT / 'Dockerfile').read_text()
    assert 'torch==2.13.0' in text and 'download.pytorch.org/whl/cpu' in text
    assert 'CMD ["botcore", "run"]' in text
    for path in ('pyproject.toml', 'botcore', 'data', 'pipelines', 'dashboards'): assert f'COPY {path}' in text
