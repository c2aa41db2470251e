"""Every exception class certpager defines lives in certpager.errors, under CertpagerError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import certpager
from certpager import errors
from certpager.errors import CertpagerError, UserError


def _modules() -> list[str]:
    names = [certpager.__name__]
    for info in pkgutil.walk_packages(certpager.__path__, prefix=f"{certpager.__name__}."):
        names.append(info.name)
    return names


def test_the_walk_sees_the_whole_package() -> None:
    names = _modules()
    # Without these the test below would pass vacuously.
    for expected in (
        "certpager.errors",
        "certpager.probe.handshake",
        "certpager.runbook.engine",
        "certpager.tui.app",
    ):
        assert expected in names


def test_every_exception_class_is_defined_in_errors_under_certpager_error() -> None:
    misplaced: list[str] = []
    outside_tree: list[str] = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if not (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            if not obj.__module__.startswith("certpager"):
                continue  # a library's exception, imported
            if obj.__module__ != errors.__name__:
                misplaced.append(f"{obj.__module__}.{obj.__qualname__}")
            elif not issubclass(obj, CertpagerError):
                outside_tree.append(f"{name}.{attr}")
    assert misplaced == [], "exception classes must be defined in certpager.errors"
    assert outside_tree == [], "exception classes must derive from CertpagerError"


def test_the_moved_classes_are_still_importable_where_they_were() -> None:
    from certpager.check.stored import StoredCertError
    from certpager.inputs import InputFileError, InputValueError
    from certpager.probe.aia import AiaError, AiaRefused
    from certpager.probe.analysis import CertParseError
    from certpager.probe.handshake import ContextError, PeerClosed, ResolveError
    from certpager.probe.http import HttpFailure
    from certpager.probe.trust import TrustStoreError
    from certpager.runbook.audit import AuditLocationError
    from certpager.runbook.cli import HeadlessRefusedError
    from certpager.runbook.lock import LockDirError
    from certpager.runbook.template import TemplateError

    user_errors: tuple[type[Exception], ...] = (
        AuditLocationError,
        InputFileError,
        TrustStoreError,
        HeadlessRefusedError,
        LockDirError,
    )
    for cls in user_errors:
        assert issubclass(cls, UserError)  # bad input: exit 3, as before the move
    value_errors: tuple[type[Exception], ...] = (InputValueError, TemplateError, CertParseError)
    for cls in value_errors:
        assert issubclass(cls, ValueError)  # `except ValueError` still catches them
    assert issubclass(AiaRefused, AiaError)
    probe_errors: tuple[type[Exception], ...] = (
        ContextError,
        PeerClosed,
        ResolveError,
        HttpFailure,
        StoredCertError,
    )
    for cls in probe_errors:
        assert cls.__module__ == "certpager.errors"


def test_input_file_error_escapes_the_path() -> None:
    exc = errors.InputFileError("evil\x1b[2J.pem", "no such file")
    assert str(exc) == "evil\\x1b[2J.pem: no such file"
    assert isinstance(exc, UserError)
