"""The Textual app: endpoint list, detail, runbook flow.

Uses the core (``certpager.probe``, ``certpager.runbook``) unchanged; the core
never imports this package.
"""
