"""``floatgate certs inspect FILE``: what a PEM certificate file holds, and whether it is usable."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from node.tls.certfile import describe, fingerprint, load_cert_file
from node.tls.errors import CertificateError


def inspect_file(path: Path, key: Path | None = None) -> dict[str, Any]:
    """A JSON-ready report. ``usable`` is False (with ``error``) when checks fail."""
    report: dict[str, Any] = {"file": str(path)}
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        return {**report, "usable": False, "error": f"{path}: no readable PEM certificate ({exc})"}
    now = datetime.datetime.now(datetime.UTC)
    report["chain"] = [
        {
            "subject": describe(c),
            "issuer": c.issuer.rfc4514_string(),
            "not_after": c.not_valid_after_utc.isoformat(),
            "days_left": (c.not_valid_after_utc - now).days,
            "sha256": fingerprint(c),
        }
        for c in certs
    ]
    try:
        san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        report["names"] = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        report["names"] = []
    try:
        cert = load_cert_file(path, key)
    except CertificateError as exc:
        return {**report, "usable": False, "error": str(exc)}
    return {**report, "usable": True, "key_matches": True, "warnings": list(cert.warnings)}


def format_report(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['file']}:"]
    for index, cert in enumerate(report.get("chain", [])):
        role = "leaf" if index == 0 else f"chain[{index}]"
        lines.append(f"  {role}: {cert['subject']}  (issuer {cert['issuer']})")
        lines.append(f"    expires {cert['not_after']} ({cert['days_left']} days), "
                     f"sha256 {cert['sha256']}")  # fmt: skip
    if report.get("names"):
        lines.append(f"  names: {', '.join(report['names'])}")
    if report["usable"]:
        lines.append("  key matches the certificate; chain in order: usable")
        lines.extend(f"  warning: {w}" for w in report.get("warnings", []))
    else:
        lines.append(f"  NOT USABLE: {report['error']}")
    return lines
