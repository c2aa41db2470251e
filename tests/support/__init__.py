"""Test support: a certificate factory, loopback TLS servers, the hostile-server zoo, nginx.

Everything here runs on loopback, on ports the kernel picks, and cleans up after
itself (threads joined, processes stopped by PID, temp dirs removed by pytest).
"""
