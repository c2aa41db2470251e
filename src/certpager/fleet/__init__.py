"""Fleet work: Prometheus and Alertmanager around certpager (docs/fleet.md).

``metrics`` turns a report into Prometheus series, ``exporter`` serves them
(``certpager exporter``), ``prometheus`` imports endpoints from a Prometheus server.
"""
