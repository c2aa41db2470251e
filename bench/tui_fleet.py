"""The TUI at fleet size: first frame, key latency while reports stream in, peak RSS.

Drives the real app headless (Textual's ``App.run_test``) on a generated config of N
endpoints. The probe is a stub (no network): it answers with reports made by the real
analysis from generated certificates, paced at ``--rate`` reports per second, and the
app's own scheduler re-probes so reports keep streaming while keys are pressed. What is
measured is the UI:

- first frame: from building the app to the first frame (a write to the headless
  terminal) with rows in the list;
- key latency: from a key event reaching the driver to the first frame in which what
  the key does is done (cursor on the endpoint the move chose, filter applied, detail
  screen shown, back);
- peak RSS of the process (``resource.getrusage``).

With ``--paged K``, K endpoints are paged about from the first frame on, and another K
every second while keys are pressed (as Alertmanager's alerts fire and resolve); code
without the Alertmanager pages (no ``set_pages``) runs without them, and says so.

Each size runs in its own process (peak RSS is per process). It measures, it does not
assert; every wait is bounded.

```
.venv/bin/python bench/tui_fleet.py                      # 1,000 and 10,000 endpoints
.venv/bin/python bench/tui_fleet.py --also-src main           # and main's code, interleaved
.venv/bin/python bench/tui_fleet.py --sizes 10000 --paged 50  # with 50 endpoints paged about
.venv/bin/python bench/tui_fleet.py --sizes 10000 --profile /tmp/keys  # cProfile of the key presses
```
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEY_TIMEOUT = 5.0
"""A key whose effect is not on screen after this long counts as this long (and is reported)."""

FIRST_FRAME_TIMEOUT = 60.0


def make_fleet(n: int, workdir: Path) -> Path:
    """A config of ``n`` endpoints (and the CA they trust) in ``workdir``; returns the config path."""
    from certpager.lab import certs

    now = dt.datetime.now(dt.UTC)
    root_key = certs.generate_key()
    root_name = certs.name("Fleet Bench Root")
    root = certs.build_cert(
        subject=root_name,
        key=root_key,
        issuer=None,
        not_before=now - dt.timedelta(days=400),
        not_after=now + dt.timedelta(days=3000),
        ca=True,
        eku=None,
    )
    (workdir / "root.pem").write_bytes(certs.cert_pem(root))
    tags = ("prod", "staging", "internal", "edge")
    lines = ["settings:", "  concurrency: 200", "  bell: false", "endpoints:"]
    for i in range(n):
        lines.append(
            f"  - {{name: ep-{i:05d}, host: ep{i:05d}.fleet.test, port: {443 + i % 3}, "
            f"tags: [{tags[i % 4]}], ca_file: root.pem}}"
        )
    path = workdir / "endpoints.yaml"
    path.write_text("\n".join(lines) + "\n")
    leaf_key = certs.generate_key()
    issuers = ("Fleet Bench Root", "R11 Let's Encrypt", "Internal Issuing CA 2")
    chains = []
    for j, days in enumerate((-2, 1.5, 2.5, 5, 6.5, 10, 12, 20, 30, 45, 60, 75, 85, 89)):
        leaf = certs.build_cert(
            subject=certs.name(f"leaf{j}.fleet.test", issuers[j % 3]),
            key=leaf_key,
            issuer=(root_name, root_key),
            not_before=now - dt.timedelta(days=90 - days),
            not_after=now + dt.timedelta(days=days),
            sans=certs.general_names(["*.fleet.test"]),
        )
        chains.append(_der(leaf))
    (workdir / "chains.json").write_text(json.dumps([c.hex() for c in chains]))
    return path


def _der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    der: bytes = cert.public_bytes(Encoding.DER)
    return der


class StubProbe:
    """Answers with real reports of generated chains, paced at ``rate`` reports a second."""

    def __init__(self, config: Any, workdir: Path, rate: float) -> None:
        from certpager.probe import Handshake, Timings
        from certpager.probe.engine import backend_result, build_report

        now = dt.datetime.now(dt.UTC)
        chains = [bytes.fromhex(h) for h in json.loads((workdir / "chains.json").read_text())]
        template = config.endpoints[0]
        self.templates = []
        for j, chain in enumerate(chains):
            hs = Handshake(
                address="127.0.0.1",
                port=template.port,
                sni=template.server_name,
                chain_der=(chain,),
                tls_version="TLSv1.3",
                cipher="TLS_AES_128_GCM_SHA256",
                timings=Timings(dns_ms=0.1, connect_ms=0.2, handshake_ms=3.0 + j, total_ms=3.3 + j),
            )
            self.templates.append(build_report(template, [backend_result(template, hs, now)], now))
        refused = Handshake(
            address="127.0.0.1",
            port=template.port,
            sni=template.server_name,
            error_code="connect_refused",
            error="connection refused",
        )
        self.templates.append(build_report(template, [backend_result(template, refused, now)], now))
        self.rate = rate
        self.start = time.monotonic()
        self.slot = 0
        self.answered = 0

    async def __call__(self, endpoint: Any) -> Any:
        self.slot += 1
        delay = self.start + self.slot / self.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.answered += 1
        i = int(endpoint.name[3:])
        template = self.templates[(i * 7) % len(self.templates)]
        return dataclasses.replace(
            template,
            name=endpoint.name,
            host=endpoint.host,
            port=endpoint.port,
            checked_at=dt.datetime.now(dt.UTC),
        )


class Frames:
    """Hooked into the app's display: the time of each frame, and of the first frame where a wait holds."""

    def __init__(self) -> None:
        self.count = 0
        self.first_rows: float | None = None
        self.rows_ready: Callable[[], bool] | None = None
        self.waiting: Callable[[], bool] | None = None
        self.hit: float | None = None
        self.changed = asyncio.Event()
        """Set when the first rows are shown or a wait holds."""

    def on_frame(self) -> None:
        now = time.perf_counter()
        self.count += 1
        if self.first_rows is None and self.rows_ready is not None and self.rows_ready():
            self.first_rows = now
            self.changed.set()
        if self.waiting is not None and self.waiting():
            self.hit = now
            self.waiting = None
            self.changed.set()


def page_map(n: int, k: int, turn: int) -> Any:
    """Alerts about ``k`` endpoints spread over the ``n`` (another ``k`` for each ``turn``)."""
    from certpager.fleet.pages import Page, PageMap

    now = dt.datetime.now(dt.UTC)
    names = [f"ep-{(i * (n // max(k, 1)) + turn * 7) % n:05d}" for i in range(k)]
    labels = {"alertname": "CertificateExpiringSoon", "severity": "page"}
    return PageMap(
        pages={
            name: (
                Page(
                    "CertificateExpiringSoon", "page", now, {**labels, "endpoint": name}, f"fp-{name}", name
                ),
            )
            for name in names
        }
    )


async def page_stream(screen: Any, n: int, k: int, stop: asyncio.Event) -> int:
    """Another set of ``k`` paged endpoints every second until ``stop`` (at most 600 sets)."""
    turns = 0
    while turns < 600 and not stop.is_set():
        turns += 1
        screen.set_pages(page_map(n, k, turns))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return turns


Step = tuple[str, str, str | None, Callable[[], Callable[[], bool]]]
"""(group, key, character, make_condition): the condition is made just before the key is sent."""


def key_script(table: Any, app: Any) -> list[Step]:
    """The keys pressed, in order, each with what must be on screen once it is handled."""
    from certpager.tui.widgets.summary import StatusSummary

    screen = app.endpoints_screen
    summary = screen.query_one(StatusSummary)

    # The row a cursor key lands on is known only when the key is handled: reports re-sort
    # the rows (and the cursor follows its endpoint) between the key being sent and handled,
    # so an index worked out at sending can match an unrelated frame, or none. The table's
    # move is watched instead: the key's effect is on screen in the first frame after the
    # move where the cursor is on the endpoint the move chose.
    moves: list[str | None] = []
    original_move = table._user_move

    def user_move(index: int) -> None:
        original_move(index)
        moves.append(table.highlighted)

    table._user_move = user_move

    def cursor_moved() -> Callable[[], bool]:
        seen = len(moves)
        return lambda: app.screen is screen and len(moves) > seen and table.highlighted == moves[-1]

    def filter_is(text: str) -> Callable[[], Callable[[], bool]]:
        return lambda: lambda: summary.filter_text == text.strip()

    def on_detail() -> Callable[[], bool]:
        return lambda: app.screen is not screen and type(app.screen).__name__ == "DetailScreen"

    def on_list() -> Callable[[], bool]:
        return lambda: app.screen is screen

    script: list[Step] = []
    for _ in range(3):
        script += [("j/k", "j", "j", cursor_moved) for _ in range(4)]
        script += [("j/k", "k", "k", cursor_moved) for _ in range(2)]
        script += [("PgDn/PgUp", "pagedown", None, cursor_moved) for _ in range(2)]
        script += [("PgDn/PgUp", "pageup", None, cursor_moved)]
        script += [("Enter (detail)", "enter", None, on_detail), ("Esc (back)", "escape", None, on_list)]
    script += [("G/g", "G", "G", cursor_moved), ("G/g", "g", "g", cursor_moved)]
    focused = lambda: lambda: screen.focused is not None and screen.focused.id == "filter"  # noqa: E731
    # Typing the start of every name ("ep-0" keeps all 10,000 rows, then 1,000, 100, 10), then
    # a tag: "t" keeps every row, "ta" and "tag" the staging quarter, "tag:" every row, "tag:p"
    # on the prod quarter (a few thousand rows at 10,000); backspaces go back to earlier filters.
    for group, text in (("/ filter typing", "ep-0123"), ("/ filter (tag)", "tag:prod")):
        script += [(group, "slash", "/", focused)]
        typed = ""
        for ch in text:
            typed += ch
            script.append((group, KEY_NAMES.get(ch, ch), ch, filter_is(typed)))
        for _ in range(3):
            typed = typed[:-1]
            script.append((group, "backspace", None, filter_is(typed)))
        script += [("Esc (clear filter)", "escape", None, filter_is(""))]
    return script


KEY_NAMES = {"-": "minus", ":": "colon"}
"""Key names of the characters typed into the filter that are not their own name."""


async def press_keys(app: Any, table: Any, frames: Frames) -> tuple[dict[str, list[float]], list[str]]:
    """Send each key of the script to the terminal driver, wait (bounded) for the frame showing
    its effect; returns the latencies in ms by group (and "all"), and the keys that timed out."""
    from textual import events

    latencies: dict[str, list[float]] = {}
    misses: list[str] = []
    driver = app._driver
    assert driver is not None
    for group, key, char, make in key_script(table, app):
        frames.hit = None
        frames.changed.clear()
        frames.waiting = make()
        event = events.Key(key, char)
        event.set_sender(app)
        sent = time.perf_counter()
        driver.send_message(event)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(frames.changed.wait(), KEY_TIMEOUT)
        took = ((frames.hit or time.perf_counter()) - sent) * 1000
        if frames.hit is None:
            misses.append(key)
            frames.waiting = None
        latencies.setdefault(group, []).append(took)
        latencies.setdefault("all", []).append(took)
        await asyncio.sleep(0.05)  # a fast typist
    return latencies, misses


async def drive(
    n: int, rate: float, workdir: Path, size: tuple[int, int], paged: int = 0, profile: Path | None = None
) -> dict[str, Any]:
    from textual.app import App

    from certpager.config import load_config
    from certpager.tui.app import build_app
    from certpager.tui.widgets.endpoint_table import EndpointTable

    config = load_config(make_fleet(n, workdir))
    frames = Frames()
    original = App._display

    def display(self: Any, screen: Any, renderable: Any) -> None:
        original(self, screen, renderable)
        frames.on_frame()

    App._display = display  # type: ignore[method-assign]
    t0 = time.perf_counter()
    probe = StubProbe(config, workdir, rate)
    app = build_app(config, checker=probe, auto_refresh=True, interval=n / rate, bell=False, seed=1)
    result: dict[str, Any] = {"n": n, "rate": rate, "size": list(size)}
    async with app.run_test(size=size) as pilot:
        del pilot
        table: Any = None

        def rows_ready() -> bool:
            nonlocal table
            if table is None:
                tables = app.screen.query(EndpointTable)
                table = tables.first() if tables else None
            return table is not None and len(table.rows) > 0 and table.size.height > 0

        frames.rows_ready = rows_ready
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(frames.changed.wait(), FIRST_FRAME_TIMEOUT)
        result["first_frame_ms"] = (frames.first_rows - t0) * 1000 if frames.first_rows else None
        screen = app.endpoints_screen
        paging = paged > 0 and hasattr(screen, "set_pages")
        result["paged"] = paged if paging else 0
        stop = asyncio.Event()
        if paging:
            screen.set_pages(page_map(n, paged, 0))
        await asyncio.sleep(1.0)  # reports are streaming now
        answered_before = probe.answered
        assert table is not None
        keys_started = time.perf_counter()
        cpu_started = time.process_time()
        pager = asyncio.create_task(page_stream(screen, n, paged, stop)) if paging else None
        profiler = cProfile.Profile() if profile is not None else None
        if profiler is not None:
            profiler.enable()
        latencies, misses = await press_keys(app, table, frames)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        stop.set()
        result["page_sets"] = await pager if pager is not None else 0
        elapsed = time.perf_counter() - keys_started
        result["reports_per_s_during_keys"] = (probe.answered - answered_before) / elapsed
        result["cpu_share_during_keys"] = (time.process_time() - cpu_started) / elapsed
        result["keys"] = {k: _stats(v) for k, v in latencies.items()}
        result["missed"] = misses
        result["frames"] = frames.count
        app.exit()
    App._display = original  # type: ignore[method-assign]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "p95": round(p95, 1),
        "max": round(ordered[-1], 1),
    }


def one(args: argparse.Namespace) -> None:
    # The app's package before Textual, as the certpager command imports them: it sets
    # TEXTUAL_FPS, which Textual reads when first imported (in this process only: the
    # parent's environment, which the next revision's process inherits, is untouched).
    import certpager.tui  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="tui-fleet-") as tmp:
        profile = Path(f"{args.profile}.{args.n}.prof").resolve() if args.profile else None
        size = (args.width, args.height)
        result = asyncio.run(drive(args.n, args.rate, Path(tmp), size, args.paged, profile))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="endpoint counts, one process each")
    parser.add_argument("--rate", type=float, default=1000.0, help="reports a second from the stub probe")
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--src", help="measure src/ of this git revision (git archive) instead of the tree")
    parser.add_argument("--also-src", help="also measure this git revision, each size right after the tree")
    parser.add_argument("--paged", type=int, default=0, help="endpoints paged about (a new set every second)")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="cProfile the key presses of each size into PREFIX.<n>.prof (read with python -m pstats)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per size")
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args()
    if args.n is not None:
        one(args)
        return
    variants: list[tuple[str, dict[str, str]]] = []
    with tempfile.TemporaryDirectory(prefix="tui-fleet-src-") as tmp:
        for label, ref in (("tree", args.src), ("also", args.also_src)):
            if label == "also" and not ref:
                continue
            env = dict(os.environ)
            if ref:
                sys.path.insert(0, str(Path(__file__).parent))
                from run import export_src

                env["PYTHONPATH"] = str(export_src(ref, Path(tmp) / label))
            variants.append((ref or "working tree", env))
        results = []
        for n in (int(s) for s in args.sizes.split(",")):
            for label, env in variants:
                results.append({"code": label, **_run_one(args, n, env, label)})
    for r in results:
        print(
            f"{r['code']}: n={r['n']}  paged {r.get('paged', 0)}  first frame {r['first_frame_ms']:.0f} ms  peak RSS {r['peak_rss_mb']:.0f} MB  "
            f"reports/s {r['reports_per_s_during_keys']:.0f}  CPU {r['cpu_share_during_keys']:.0%} of a core  "
            f"missed {r['missed'] or 'none'}"
        )
        for name, st in r["keys"].items():
            print(
                f"    {name:<18} n={st['count']:<3} p50 {st['p50']:>7.1f}  p95 {st['p95']:>7.1f}  max {st['max']:>7.1f} ms"
            )
    print(json.dumps(results))


def _run_one(args: argparse.Namespace, n: int, env: dict[str, str], label: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--n", str(n), "--rate", str(args.rate)]
    cmd += ["--width", str(args.width), "--height", str(args.height), "--paged", str(args.paged)]
    if args.profile:
        tag = "".join(c if c.isalnum() else "-" for c in label)
        cmd += ["--profile", f"{args.profile}.{tag}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"n={n} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
