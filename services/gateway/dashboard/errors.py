"""The dashboard's expected failures: gateway errors, so they answer in the spec's error shape
(``{"success": false, "message": ...}``) through the gateway's one mapping."""

from __future__ import annotations

from services.gateway.errors import GatewayError


class DashboardError(GatewayError):
    """Root of the dashboard's expected failures."""


class SessionMissing(DashboardError):
    status, code, message = 401, "session_missing", "Dashboard session missing or expired"


class CrossSiteRefused(DashboardError):
    status, code, message = 403, "cross_site", "Cross-site request refused"


class ReadOnlySession(DashboardError):
    status, code, message = 403, "read_only", "This dashboard session is read-only"


class RecordingNotFound(DashboardError):
    status, code, message = 404, "recording_not_found", "Recording not found"
