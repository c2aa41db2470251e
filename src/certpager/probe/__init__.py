"""Probe engine: fresh handshakes, chain and expiry analysis, endpoint reports."""

from certpager.probe.engine import check_endpoint, check_endpoints, sort_reports
from certpager.probe.model import (
    BackendResult,
    CertInfo,
    ChainAnalysis,
    EndpointReport,
    Finding,
    Handshake,
    Severity,
    Status,
    Timings,
)

__all__ = [
    "BackendResult",
    "CertInfo",
    "ChainAnalysis",
    "EndpointReport",
    "Finding",
    "Handshake",
    "Severity",
    "Status",
    "Timings",
    "check_endpoint",
    "check_endpoints",
    "sort_reports",
]
