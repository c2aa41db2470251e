"""The certificate chain exactly as the server sent it, as a tree.

One branch per distinct chain (backends that disagree get one each), one node
per certificate in the order sent, expanded to its facts: subject, issuer,
validity with days left, SANs, key, signature algorithm, serial, SHA-256
fingerprint and SPKI pin. Labels are built as ``Text`` from plain strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from certpager.config import Thresholds
from certpager.probe import BackendResult, CertInfo, ChainAnalysis, EndpointReport, Status
from certpager.tui import view

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def chain_groups(report: EndpointReport) -> list[tuple[list[str], BackendResult]]:
    """Backends grouped by the chain they sent (same leaf fingerprints in the same order)."""
    groups: dict[tuple[str, ...], tuple[list[str], BackendResult]] = {}
    for backend in report.backends:
        analysis = backend.analysis
        if analysis is None:
            continue
        key = tuple(c.sha256 for c in analysis.chain)
        if key in groups:
            groups[key][0].append(backend.handshake.label)
        else:
            groups[key] = ([backend.handshake.label], backend)
    return list(groups.values())


def role(index: int, cert: CertInfo, analysis: ChainAnalysis) -> str:
    """``leaf``, ``intermediate``, ``root`` or ``extra`` for the certificate at ``index``."""
    if index == 0:
        return "leaf"
    if cert.self_signed:
        return "root"
    in_path = any(c.sha256 == cert.sha256 for c in analysis.verified_path)
    if cert.is_ca and (in_path or not analysis.verified_path):
        return "intermediate"
    return "extra" if not in_path else "intermediate"


class ChainTree(Tree[CertInfo | None]):
    """The chain as sent: certificates and their facts."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chain-tree--ok",
        "chain-tree--warning",
        "chain-tree--critical",
        "chain-tree--page",
        "chain-tree--error",
        "chain-tree--pending",
        "chain-tree--muted",
        "chain-tree--heading",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]
    """``j``/``k``/``g``/``G`` as in every other pane (on top of Tree's arrows, Space, Enter)."""

    report: reactive[EndpointReport | None] = reactive(None, init=False)
    """The report whose chain is shown."""
    now: reactive[datetime] = reactive(_EPOCH, init=False)
    """The clock validity is judged against."""

    def __init__(
        self, thresholds: Thresholds | None = None, *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(Text("Chain as sent"), id=id, classes=classes)
        self.guide_depth = 3
        self.thresholds = thresholds or Thresholds()
        """Days-left thresholds that colour each certificate's validity."""

    def _style(self, key: str) -> Style:
        return self.get_component_rich_style(f"chain-tree--{key}")

    def on_mount(self) -> None:
        self.call_later(self.rebuild)  # after the mount completes (is_mounted is set)

    def on_resize(self) -> None:
        # After the refresh: the layout of this resize is then known (a rebuild during the
        # first layout used the minimum width and left the tree wrapped at ~20 cells).
        self.call_after_refresh(self._rebuild_if_width_changed)

    def _rebuild_if_width_changed(self) -> None:
        if self.is_mounted and self._text_width() != self._built_width:
            self.rebuild()

    # -- wrapping: a tree line is one line, so long text becomes continuation lines ----

    _built_width = 0

    def _text_width(self) -> int:
        """Cells a line may use (the vertical scrollbar is always reserved: see detail.tcss)."""
        return max(self.scrollable_content_region.width, 20)

    def _room(self, depth: int, expandable: bool = False) -> int:
        """Cells left for the label of a node ``depth`` levels below the root."""
        return max(self._text_width() - self.guide_depth * depth - (2 if expandable else 0) - 1, 12)

    def _lines(self, body: Text, width: int, head: Text | None = None, hang: int = 2) -> list[Text]:
        """``head`` then ``body`` wrapped to ``width`` cells; continuation lines are indented
        under the body (by ``head``'s width, or ``hang`` cells without a head)."""
        indent = head.cell_len if head is not None else hang
        lines = list(body.wrap(self.app.console, max(width - indent, 8), overflow="fold")) or [Text("")]
        first = (head + lines[0]) if head is not None else lines[0]
        return [first, *(Text(" " * indent) + line for line in lines[1:])]

    def _leaf(
        self, parent: TreeNode[CertInfo | None], text: Text, depth: int, head: Text | None = None
    ) -> TreeNode[CertInfo | None]:
        """A leaf that wraps: the first line, then its continuation lines as sibling leaves."""
        first, *rest = self._lines(text, self._room(depth), head)
        node = parent.add_leaf(first, data=None)
        for line in rest:
            parent.add_leaf(line, data=None)
        return node

    def _branch(
        self,
        parent: TreeNode[CertInfo | None],
        text: Text,
        depth: int,
        *,
        data: CertInfo | None = None,
        expand: bool = True,
    ) -> TreeNode[CertInfo | None]:
        """A node with children whose label wraps: continuation lines are its first children."""
        first, *rest = self._lines(text, self._room(depth, expandable=True))
        node = parent.add(first, data=data, expand=expand)
        for line in rest:
            node.add_leaf(line, data=None)
        return node

    def watch_report(self) -> None:
        self.rebuild()

    def watch_now(self) -> None:
        self.rebuild()

    def show(self, report: EndpointReport | None, now: datetime, thresholds: Thresholds) -> None:
        """Show another report from the top, every certificate expanded as when first built."""
        self.thresholds = thresholds
        self.set_reactive(ChainTree.report, report)
        self.set_reactive(ChainTree.now, now)
        self.cursor_line = -1
        self.scroll_home(animate=False, immediate=True)
        self.rebuild(keep=False)

    @property
    def selected_cert(self) -> CertInfo | None:
        """The certificate under the cursor (or the one a fact under the cursor belongs to)."""
        node = self.cursor_node
        while node is not None:
            if isinstance(node.data, CertInfo):
                return node.data
            node = node.parent
        return None

    def _collapsed(self) -> set[str]:
        """Fingerprints of the certificates collapsed in the tree shown (Tree.clear leaves the
        nodes of earlier builds in its node map, so the tree is walked from its root)."""
        collapsed: set[str] = set()
        stack = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node.data, CertInfo) and not node.is_expanded:
                collapsed.add(node.data.sha256)
            stack.extend(node.children)
        return collapsed

    def rebuild(self, keep: bool = True) -> None:
        """Build the tree from the report; ``keep``: the certificates collapsed stay collapsed
        and the cursor stays on its line."""
        if not self.is_mounted:
            return
        collapsed = self._collapsed() if keep else set()
        line = self.cursor_line if keep else -1
        self._built_width = self._text_width()
        self.clear()
        report = self.report
        root = self.root
        if report is None:
            root.set_label(Text("Chain as sent: not checked yet", self._style("muted")))
            root.expand()
            return
        groups = chain_groups(report)
        if not groups:
            root.set_label(Text("Chain as sent: no handshake completed", self._style("error")))
            root.expand()
            return
        primary = report.primary
        sent = len(primary.analysis.chain) if primary is not None and primary.analysis is not None else 0
        root.set_label(
            Text.assemble(
                ("Chain as sent", self._style("heading")),
                (f"  {sent} certificate{'s' if sent != 1 else ''}", self._style("muted")),
            )
        )
        for labels, backend in groups:
            analysis = backend.analysis
            assert analysis is not None
            parent: TreeNode[CertInfo | None] = root
            depth = 1
            if len(groups) > 1:
                parent = self._branch(
                    root, Text(view.printable(f"from {', '.join(labels)}"), self._style("heading")), 1
                )
                depth = 2
            self._add_verdict(parent, analysis, depth)
            for i, cert in enumerate(analysis.chain):
                self._add_cert(
                    parent, i, cert, analysis, depth=depth, expand=cert.sha256 not in collapsed and i < 2
                )
        root.expand()
        if line >= 0:
            self.cursor_line = min(line, self.last_line)

    def _add_verdict(self, parent: TreeNode[CertInfo | None], analysis: ChainAnalysis, depth: int) -> None:
        if analysis.trusted:
            self._leaf(parent, Text("✓ verifies to a trusted root", self._style("ok")), depth)
        else:
            text = Text("✖ does not verify: ", self._style("critical"))
            text.append(view.printable(analysis.verify_error or "unknown reason"))
            self._leaf(parent, text, depth)
        if analysis.hostname_ok:
            self._leaf(parent, Text("✓ name matches", self._style("ok")), depth)
        else:
            self._leaf(parent, Text("✖ name does not match the certificate", self._style("critical")), depth)
        if analysis.verified_path:
            path = " → ".join(view.printable(view.dn_short(c.subject)) for c in analysis.verified_path)
            self._leaf(parent, Text.assemble(("trusted path: ", self._style("muted")), path), depth)

    def _add_cert(
        self,
        parent: TreeNode[CertInfo | None],
        index: int,
        cert: CertInfo,
        analysis: ChainAnalysis,
        *,
        depth: int,
        expand: bool,
    ) -> None:
        days = cert.days_left(self.now)
        status = _validity_status(days, self.now, cert, self.thresholds)
        label = Text()
        label.append(f"#{index} {role(index, cert, analysis)}  ", self._style("muted"))
        label.append(view.printable(view.dn_short(cert.subject)))
        label.append("  ")
        label.append(view.days_long(days), self._style(view.status_key(status)))
        node = self._branch(parent, label, depth, data=cert, expand=expand)
        muted = self._style("muted")

        def fact(name: str, value: str, style: Style | None = None) -> None:
            head = Text(f"{name:<10}", muted)
            self._leaf(node, Text(view.printable(value), style or Style()), depth + 1, head=head)

        fact("subject", cert.subject)
        fact("issuer", cert.issuer)
        fact(
            "valid",
            f"{view.datetime_text(cert.not_before)} → {view.datetime_text(cert.not_after)} ({view.days_long(days)})",
            self._style(view.status_key(status)) if status is not Status.OK else None,
        )
        if cert.sans:
            fact("SANs", ", ".join(cert.sans))
        elif index == 0:
            fact("SANs", "none (CN-only certificates match no name)", self._style("critical"))
        fact("key", cert.key_desc)
        fact("signature", cert.signature_algorithm)
        fact("serial", cert.serial)
        fact("sha256", cert.sha256)
        fact("SPKI pin", cert.spki_pin)


def _validity_status(days: float, now: datetime, cert: CertInfo, thresholds: Thresholds) -> Status:
    if days < thresholds.page_days or cert.not_before > now:
        return Status.PAGE
    if days < thresholds.critical_days:
        return Status.CRITICAL
    if days < thresholds.warning_days:
        return Status.WARNING
    return Status.OK
