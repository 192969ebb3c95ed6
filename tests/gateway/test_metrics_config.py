"""``[metrics]`` and ``[http] access_log*``: defaults, paths, and errors that name the key."""

from __future__ import annotations

import pytest

from gateway.commands.frontcfg import http_config
from gateway.config import parse
from gateway.errors import ConfigError
from gateway.metrics import observability

BASE = '[gateway]\nrun_dir = "run"\n[services.s]\nruntime = "py2"\napp = "m:app"\n'


def test_defaults_put_the_access_log_in_the_run_dir() -> None:
    obs = observability(parse(BASE, base_dir="/srv/gw"))
    assert obs.metrics and obs.enabled
    assert obs.access_log == "/srv/gw/run/logs/access.log"
    assert obs.access_log_format == "combined"
    assert obs.metrics_dir == "/srv/gw/run/metrics"
    assert obs.runtimes == {"s": "py2"}
    assert obs.token_file == "/srv/gw/run/admin.token"


@pytest.mark.parametrize(("value", "want"), [('"-"', "-"), ('"off"', ""),
                                             ('"logs/a.log"', "/srv/gw/logs/a.log"),
                                             ('"/var/log/gw.log"', "/var/log/gw.log")])
def test_access_log_values(value: str, want: str) -> None:
    cfg = parse(BASE + f"[http]\naccess_log = {value}\naccess_log_format = \"json\"\n",
                base_dir="/srv/gw")
    obs = observability(cfg)
    assert obs.access_log == want and obs.access_log_format == "json"
    # The front's own keys never reach gateway.http, which would refuse them.
    assert http_config(cfg).routes == ()


def test_everything_off() -> None:
    obs = observability(parse(BASE + '[http]\naccess_log = "off"\n[metrics]\nenabled = false\n'))
    assert not obs.enabled


@pytest.mark.parametrize(("text", "key"), [
    ('[http]\naccess_log_format = "apache"\n', "http.access_log_format"),
    ("[http]\naccess_log = 1\n", "http.access_log"),
    ('[metrics]\nenabled = "yes"\n', "metrics.enabled"),
    ("[metrics]\nport = 9100\n", "metrics.port"),
    ('[tracing]\notlp_endpoint = "127.0.0.1:4318"\n', "tracing.otlp_endpoint"),
    ("[tracing]\notlp_endpoint = 4318\n", "tracing.otlp_endpoint"),
    ('[tracing]\nsampler = "always"\n', "tracing.sampler"),
])
def test_bad_values_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}"):
        parse(BASE + text)


def test_round_trip_through_the_arbiters_json() -> None:
    from gateway.config import from_dict
    cfg = parse(BASE + "[metrics]\nenabled = false\n")
    assert from_dict(cfg.to_dict()).metrics == {"enabled": False}


def test_otlp_export_is_off_by_default_and_turns_the_front_on() -> None:
    from gateway.config import from_dict
    assert observability(parse(BASE)).otlp_endpoint == ""
    text = BASE + ('[http]\naccess_log = "off"\n[metrics]\nenabled = false\n'
                   '[tracing]\notlp_endpoint = "http://127.0.0.1:4318/v1/traces"\n')
    cfg = parse(text)
    obs = observability(cfg)
    assert obs.otlp_endpoint == "http://127.0.0.1:4318/v1/traces" and obs.enabled
    assert from_dict(cfg.to_dict()).tracing == {"otlp_endpoint": obs.otlp_endpoint}


def test_metrics_need_their_directory() -> None:
    from gateway.metrics.config import ObservabilityConfig
    with pytest.raises(ConfigError, match="metrics directory"):
        ObservabilityConfig(access_log="-")
    assert not ObservabilityConfig(metrics=False).enabled
