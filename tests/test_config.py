"""A bad configuration stops a botcore process at start: exit status 2, and the file, key and reason on stderr.

These run real processes (`python -c ...` and the `botcore` console script) in a temporary working
directory, HOME and data directory, so nothing touches ~/.botcore.
"""
import json, os, stat, subprocess, sys

import pytest

from botcore.config import ENV_VARS
from support import botcore_script

LOAD = [sys.executable, '-c', 'from botcore.config import load_settings_or_exit; load_settings_or_exit()']
SHOW = [sys.executable, '-c', 'from botcore.config import load_settings_or_exit, show_settings; '
                              'print(show_settings(load_settings_or_exit()))']


def run(cmd, tmp_path, **env):
    "Run `cmd` in `tmp_path` with an environment free of botcore settings, plus `env`."
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith('BOTCORE_') and k not in ENV_VARS}
    base.update(HOME=str(tmp_path / 'home'), BOTCORE_DATA_DIR=str(tmp_path / 'data'), **env)
    return subprocess.run(cmd, cwd=tmp_path, env=base, capture_output=True, text=True, timeout=120)


BAD_FILES = [  # (botcore.toml text, key named in the error, part of the reason)
    ('[ai]\nlong_treshold = 0.7\n', 'ai.long_treshold', 'unknown key'),
    ('[risk]\nmax_drawdown = 0.2\n', 'risk', 'unknown section'),
    ('[api]\nport = "eighty"\n', 'api.port', 'valid integer'),
    ('[ai]\nlong_threshold = 1.5\n', 'ai.long_threshold', 'must be in 0..1 (got 1.5)'),
    ('[ai]\nlong_threshold = 0.3\n', 'ai.long_threshold', 'must be above short_threshold (0.4)'),
    ('[market_data]\nai_service_url = "ai:8000"\n', 'market_data.ai_service_url', 'malformed URL'),
    ('[api]\ncors_origins = ["nope"]\n', 'api.cors_origins[0]', 'malformed URL'),
    ('[api]\nport = 70000\n', 'api.port', 'must be in 1..65535 (got 70000)'),
    ('[auth]\nengine_api_key = ""\n', 'auth.engine_api_key', 'must not be empty'),
    ('[ai]\nsignal_policy = "sometimes"\n', 'ai.signal_policy', "Input should be 'fixed' or 'adaptive'"),
    ('[ai]\nadaptive_k = 0\n', 'ai.adaptive_k', 'greater than 0'),
    ('[ai]\nadaptive_lookback = 5\n', 'ai.adaptive_lookback', 'greater than or equal to 10'),
    ('[ai]\nadaptive_min_history = 600\n', 'ai.adaptive_min_history', 'must be at most adaptive_lookback (500)'),
    ('[api_integration]\nsignal_format = "verbose"\n', 'api_integration.signal_format',
     "Input should be 'simple' or 'detailed'"),
    ('[api_integration]\ninclude_indicators = "sometimes"\n', 'api_integration.include_indicators', 'valid boolean'),
    ('[api_integration]\ncache_ttl_seconds = 60\n[ai]\ncache_ttl_seconds = 300\n', 'api_integration.cache_ttl_seconds',
     'conflicts with ai.cache_ttl_seconds = 300: set it in one place (got 60)'),
]


@pytest.mark.parametrize('text,key,reason', BAD_FILES, ids=[k for _, k, _ in BAD_FILES])
def test_bad_file_exits_2_naming_file_key_reason(tmp_path, text, key, reason):
    cfg = tmp_path / 'bad.toml'
    cfg.write_text(text)
    r = run(LOAD, tmp_path, BOTCORE_CONFIG=str(cfg))
    assert r.returncode == 2, r.stderr
    assert f"{cfg}: {key}: " in r.stderr and reason in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    assert not (tmp_path / 'data' / 'secrets.json').exists()


def test_invalid_toml_names_line(tmp_path):
    (tmp_path / 'botcore.toml').write_text('[api]\nport = 8080\nhost 127.0.0.1\n')
    r = run(LOAD, tmp_path)
    assert r.returncode == 2
    assert 'botcore.toml: invalid TOML' in r.stderr and 'line 3' in r.stderr, r.stderr


def test_missing_named_file_exits_2(tmp_path):
    r = run(LOAD, tmp_path, BOTCORE_CONFIG=str(tmp_path / 'nope.toml'))
    assert r.returncode == 2 and f"{tmp_path / 'nope.toml'}: no such file" in r.stderr, r.stderr


def test_bad_env_value_names_the_variable(tmp_path):
    r = run(LOAD, tmp_path, PYTHON_AI_SERVICE_URL='python-ai-service')
    assert r.returncode == 2
    assert 'env PYTHON_AI_SERVICE_URL: market_data.ai_service_url: malformed URL' in r.stderr, r.stderr


def test_good_config_loads_and_keeps_generated_tokens_private(tmp_path):
    (tmp_path / 'botcore.toml').write_text('[ai]\nport = 8001\n')
    r1, r2 = run(SHOW, tmp_path, INTER_SERVICE_TOKEN='t0ken-from-env'), run(SHOW, tmp_path)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert 'port = 8001' in r1.stdout and 't0ken-from-env' not in r1.stdout
    path = tmp_path / 'data' / 'secrets.json'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = json.loads(path.read_text())
    assert set(tokens) == {'inter_service_token', 'engine_api_key', 'ai_api_key', 'dashboard_session_secret',
                           'lab_token'}
    assert all(len(v) >= 43 and v not in r1.stdout + r2.stdout for v in tokens.values())
    assert json.loads(path.read_text()) == tokens  # the second run reused them


def test_cli_config_show_refuses_bad_file(tmp_path):
    cfg = tmp_path / 'bad.toml'
    cfg.write_text('[ai]\nlong_threshold = 1.5\n')
    r = run([str(botcore_script()), 'config', 'show'], tmp_path, BOTCORE_CONFIG=str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{cfg}: ai.long_threshold: must be in 0..1 (got 1.5)" in r.stderr


def test_cli_config_show_masks_secrets(tmp_path):
    r = run([str(botcore_script()), 'config', 'show'], tmp_path, ENGINE_API_KEY='eng1ne-key-value')
    assert r.returncode == 0, r.stderr
    assert '[auth]' in r.stdout and 'eng1ne-key-value' not in r.stdout


def test_services_starting_together_share_one_generated_token(tmp_path):
    "Several processes loading at once (engine, AI service, dashboard) must agree on the generated tokens."
    code = 'from botcore.config import load_settings; print(load_settings().auth.inter_service_token.get_secret_value())'
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith('BOTCORE_') and k not in ENV_VARS}
    base.update(HOME=str(tmp_path / 'home'), BOTCORE_DATA_DIR=str(tmp_path / 'data'))
    procs = [subprocess.Popen([sys.executable, '-c', code], cwd=tmp_path, env=base, stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    seen = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    stored = json.loads((tmp_path / 'data' / 'secrets.json').read_text())['inter_service_token']
    assert seen == {stored}


def test_the_seeds_api_integration_table_is_read(tmp_path):
    "The seed's [api_integration] as it writes it: its cache keys set [ai]'s; `config show` shows both tables."
    (tmp_path / 'botcore.toml').write_text('[api_integration]\nsignal_format = "detailed"\ninclude_indicators = true\n'
                                           'cache_predictions = true\ncache_ttl_seconds = 120\n')
    r = run(SHOW, tmp_path, BOTCORE_AI__SIGNAL_POLICY='adaptive')
    assert r.returncode == 0, r.stderr
    ai = r.stdout.split('[ai]\n')[1].split('\n\n')[0].splitlines()
    assert 'cache_ttl_seconds = 120' in ai and 'signal_policy = "adaptive"' in ai, r.stdout
    assert '[api_integration]\nsignal_format = "detailed"\ninclude_indicators = true' in r.stdout


def test_bad_policy_env_value_names_the_variable(tmp_path):
    r = run(LOAD, tmp_path, BOTCORE_API_INTEGRATION__SIGNAL_FORMAT='xml')
    assert r.returncode == 2
    assert ("env BOTCORE_API_INTEGRATION__SIGNAL_FORMAT: api_integration.signal_format: "
            "Input should be 'simple' or 'detailed'") in r.stderr, r.stderr
