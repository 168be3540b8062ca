"""The operations routers beyond Cortex's API (metrics, audit, retention, verdicts, bulk, health), so that
the application factory includes them in one place."""

from __future__ import annotations

from neurocortex.api.routes import audit, bulk, health, metrics, observables, retention

ROUTERS = (health.router, metrics.router, audit.router, retention.router, observables.router, bulk.router)
