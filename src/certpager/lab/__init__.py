"""Loopback lab plumbing shared by the demo, the tests and the benchmark.

One implementation of each: :mod:`certpager.lab.ports` (free loopback ports) and
:mod:`certpager.lab.process` (start a child, wait until it is ready, stop it by PID).
Nothing here imports Textual or the TUI.
"""
