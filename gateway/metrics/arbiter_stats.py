"""Arbiter metrics from its control socket's ``status`` document, for one scrape.

::

    # handed in by the arbiter's layer (gateway.arbiter.estate), which owns both
    ask = lambda timeout: control.call(sock, {"cmd": "status"}, timeout=timeout)
    families = list(ArbiterStats(ask, [s.value for s in State], timeout=0.5).collect())

``status(timeout)`` is one round trip bounded by ``timeout`` that returns
the arbiter's ``status`` document (the control channel,
:mod:`gateway.arbiter.control`); ``states`` are the state names a program
can be in, so every one is exported (0 or 1). An arbiter that is not
running or does not answer (``status`` raises) yields ``gateway_arbiter_up
0`` and nothing else, never an exception. Metrics sit below the arbiter, so
they are handed these two rather than importing them.

Restarts are the sum of ``restarts`` over a program's current replicas (a
reload replaces replicas, so the counter may go back: Prometheus' ``rate``
and ``increase`` treat that as a reset). Reloads are the program's
generation: the number of completed rollouts since the arbiter started.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.metrics.sources import StatusReader

FATAL = "FATAL"  # the state the arbiter gives a program it stopped restarting


class ArbiterStats:
    """A prometheus_client custom collector over the arbiter's ``status``."""

    def __init__(self, status: StatusReader, states: Sequence[str],
                 timeout: float = 0.5) -> None:
        self.status = status
        self.states = tuple(states)
        self.timeout = timeout

    def collect(self) -> Iterator[Metric]:
        """The arbiter's families; only ``gateway_arbiter_up 0`` when it cannot be asked."""
        up = GaugeMetricFamily("gateway_arbiter_up", "1 when the arbiter answered status.")
        try:
            status = self.status(self.timeout)
        except Exception:  # a scrape must never fail on the estate's account
            status = None
        ok = isinstance(status, dict) and isinstance(status.get("programs"), list)
        up.add_metric([], 1.0 if ok else 0.0)
        yield up
        if ok:
            yield from families(status, self.states)


def families(status: dict[str, Any], states: Sequence[str]) -> Iterator[Metric]:
    """Metric families of one arbiter ``status`` document; ``states``: every state name."""
    state = GaugeMetricFamily("gateway_arbiter_program_state",
                              "1 for the state each program is in, 0 for the others.",
                              labels=["program", "state"])
    replicas = GaugeMetricFamily("gateway_arbiter_replicas",
                                 "Replicas per program by state (all generations).",
                                 labels=["program", "state"])
    wanted = GaugeMetricFamily("gateway_arbiter_replicas_wanted",
                               "Replicas the configuration asks for.", labels=["program"])
    restarts = CounterMetricFamily("gateway_arbiter_restarts",
                                   "Restarts of the program's current replicas.",
                                   labels=["program"])
    reloads = CounterMetricFamily("gateway_arbiter_reloads",
                                  "Completed reloads (rollouts) of the program.",
                                  labels=["program"])
    fatal = 0
    for program in status["programs"]:
        if not isinstance(program, dict):
            continue
        name = str(program.get("name", ""))
        current = str(program.get("state", ""))
        fatal += current == FATAL
        for value in states:
            state.add_metric([name, value], 1.0 if value == current else 0.0)
        counts: Counter[str] = Counter()
        total_restarts = 0
        for replica in program.get("replicas") or ():
            if isinstance(replica, dict):
                counts[str(replica.get("state", ""))] += 1
                total_restarts += int(replica.get("restarts") or 0)
        for value in states:
            replicas.add_metric([name, value], float(counts.get(value, 0)))
        wanted.add_metric([name], float(program.get("replicas_wanted") or 0))
        restarts.add_metric([name], float(total_restarts))
        reloads.add_metric([name], float(program.get("generation") or 0))
    yield state
    yield replicas
    yield wanted
    yield restarts
    yield reloads
    yield GaugeMetricFamily("gateway_arbiter_fatal_programs",
                            "Programs the arbiter gave up restarting (FATAL).", value=fatal)
