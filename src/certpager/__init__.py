"""certpager: TLS certificate triage and verified fixes for the on-call engineer."""

__version__ = "0.1.0"
