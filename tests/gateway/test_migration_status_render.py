"""`gateway migrate status` rendering: route and service migrations side by side."""

from __future__ import annotations

from typing import Any

from gateway.migration.cli import render_status


def report(name: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name, "target": "/api/" + name, "state": {"mode": "shadow", "percent": 0},
        "evidence": {"samples": 31, "regressions": 0, "diff_rate": 0.0, "noise_rate": 0.0},
        "gate": {"ok": False, "reasons": ["31 comparisons, 50 needed"]},
        # The store's latency of the shadow copies, in every report (route or service).
        "shadow": {"py2": {"requests": 0}, "py3": {"requests": 31, "p50_ms": 3.0}}}
    base.update(extra)
    return base


def test_a_route_migration_renders_without_broker_copies() -> None:
    text = render_status([report("shop")])
    line = text.splitlines()[1]
    assert line.startswith("shop") and "31 comparisons, 50 needed" in line
    assert "copied" not in line


def test_a_service_migration_shows_the_broker_split_and_copies() -> None:
    text = render_status([report(
        "tax", split={"percent": 30, "candidate": "tax3", "sent": 3, "kept": 7},
        broker_shadow={"sent": 7, "answered": 6, "failed": 1, "skipped_cap": 2,
                       "skipped_down": 1})])
    line = text.splitlines()[1]
    assert "[broker: 30% to tax3, 3 sent, 7 kept]" in line
    assert "[shadow: 7 copied, 6 answered, 1 failed, 3 skipped]" in line
