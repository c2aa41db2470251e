"""Checking endpoints: the orchestration above the probe.

- :mod:`certpager.check.monitor` -- one endpoint end to end (probe, deeper checks, stored read);
- :mod:`certpager.check.stored` -- the certificate stored on the server, compared with the served one;
- :mod:`certpager.check.report` -- the table and the JSON document;
- :mod:`certpager.check.parallel` -- many endpoints across worker processes;
- :mod:`certpager.check.cli` -- the ``certpager check`` command.
"""
