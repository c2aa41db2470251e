"""``certpager demo``: a fire-drill lab on loopback with planted certificate incidents.

The lab is a child process (``python -m certpager.demo.lab``) that owns:

- a local CA (root + intermediate, EC P-256) that plays Let's Encrypt,
- one TLS server per scenario on 127.0.0.1 (real HTTP over TLS, plus a plain
  HTTP port), which re-reads its certificate files on a reload, as nginx does,
- an asyncssh server on 127.0.0.1 with its own host key (written to a lab
  ``known_hosts``) that runs commands in ``/bin/sh -c`` with the lab's stand-in
  ``certbot``, ``nginx`` and ``systemctl`` first on ``PATH``, and serves SFTP,
- a control socket the stand-ins use to make the servers reload.

:mod:`certpager.demo.process` starts and stops that child from the CLI and
tests; :mod:`certpager.demo.cli` is ``certpager demo``.
"""
