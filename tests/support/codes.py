"""Finding-code groups the tests check, derived from the catalogue
(:data:`certpager.probe.findings.SPECS`) so that a code added, renamed or removed there
changes them too."""

from __future__ import annotations

from certpager.probe.findings import ERROR_CODES as _ERRORS
from certpager.probe.findings import SPECS

_ALL = tuple(SPECS)

LAST_ANALYSIS_CODE = "weak_signature"
"""The catalogue lists the certificate and chain analysis codes first, ending with this one."""

ANALYSIS_CODES: tuple[str, ...] = _ALL[: _ALL.index(LAST_ANALYSIS_CODE) + 1]
"""Every code the certificate/chain analysis produces (issue 2's acceptance bar), catalogue order."""

ERROR_CODES: tuple[str, ...] = tuple(code for code in _ALL if code in _ERRORS)
"""Every code of an endpoint that could not be checked (DNS, connect, handshake), catalogue order."""

assert not set(ANALYSIS_CODES) & _ERRORS, "the analysis block of the catalogue holds error codes"
assert set(ERROR_CODES) == _ERRORS, sorted(_ERRORS - set(ERROR_CODES))

__all__ = ["ANALYSIS_CODES", "ERROR_CODES", "LAST_ANALYSIS_CODE"]
