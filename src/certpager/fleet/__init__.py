"""certpager in a Prometheus fleet: Alertmanager's pages (alertmanager, pages), and the
exporter and Prometheus import (docs/fleet.md)."""
