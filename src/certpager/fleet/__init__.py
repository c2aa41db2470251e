"""certpager in a Prometheus fleet (docs/fleet.md, docs/alertmanager.md).

``metrics`` turns a report into Prometheus series, ``exporter`` serves them
(``certpager exporter``), ``prometheus`` imports endpoints from a Prometheus server;
``alertmanager`` and ``pages`` bring Alertmanager's pages to the endpoints, ``blackbox``
explains blackbox's expiry figure, ``silence`` silences an endpoint's alerts during a run.
"""
