"""The front server's observer, made by the composition root (gateway.assemble).

The front measured end to end over real processes is in
tests/integration/metrics/; these pin what the observer does at each hook.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from gateway.assemble import MetricsObserver, observer
from gateway.http.app import GatewayApp, ProblemGuard
from gateway.http.asgi import WsgiBridge
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.parsing import ProblemProtocol
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.observe import Observed


def test_no_observability_means_no_observer() -> None:
    assert observer(None) is None


def test_an_observer_wraps_each_worker_app_and_counts_parser_refusals(tmp_path: Path) -> None:
    config = GatewayHttpConfig(routes=(Route("/files", "static", directory=str(tmp_path)),))
    gateway = GatewayApp(config)
    bridge = WsgiBridge(ProblemGuard(gateway), threads=1, gateway=gateway)
    saved = ProblemProtocol.on_refusal
    try:
        quiet = MetricsObserver(ObservabilityConfig(metrics=False))
        assert quiet.wrap(bridge, config) is bridge  # nothing to measure: not wrapped
        logged = observer(ObservabilityConfig(metrics=False,
                                              access_log=str(tmp_path / "access.log")))
        assert logged is not None
        app: Any = logged.wrap(bridge, config)
        assert isinstance(app, Observed) and app.app is bridge
        assert ProblemProtocol.on_refusal == app.refused
    finally:
        ProblemProtocol.on_refusal = saved
        bridge.close()


def test_the_master_keeps_its_metrics_directory(tmp_path: Path) -> None:
    # In a process of its own: preparing the directory points this process's
    # prometheus_client at it, which must not leak into the other tests.
    script = textwrap.dedent(f"""
        import os, subprocess, sys
        from gateway.assemble import observer
        from gateway.metrics.config import ObservabilityConfig
        obs = observer(ObservabilityConfig(metrics_dir={str(tmp_path)!r}))
        obs.master_started()
        path = obs.metrics_path
        assert path == os.path.join({str(tmp_path)!r}, "front-%d" % os.getpid()), path
        assert os.path.isdir(path) and os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        obs.worker_exited(child.pid)      # a dead worker: its gauges stop counting
        obs.master_stopped()
        assert not os.path.exists(path)
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
