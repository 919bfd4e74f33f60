"""What changed between two bundles (pure): the cluster file as a unified diff, and the
files by certificate fingerprint (private keys are only ever "changed", never shown)."""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from node.bundle.format import Bundle, has_private_key


def fingerprints(data: bytes) -> list[str]:
    """SHA-256 fingerprints (with subject) of the certificates in a PEM file."""
    found = []
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return []
    for cert in certs:
        digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        found.append(f"{digest[:16]} {cert.subject.rfc4514_string()}")
    return found


def diff(old: Bundle, new: Bundle, old_name: str, new_name: str) -> dict[str, Any]:
    config = list(difflib.unified_diff(
        old.cluster_yaml.splitlines(), new.cluster_yaml.splitlines(),
        f"cluster.yaml@{old_name}", f"cluster.yaml@{new_name}", lineterm=""))  # fmt: skip
    files = []
    for name in sorted(set(old.files) | set(new.files)):
        before, after = old.files.get(name), new.files.get(name)
        if before == after:
            continue
        change = "added" if before is None else "removed" if after is None else "changed"
        entry: dict[str, Any] = {"file": name, "change": change}
        secret = has_private_key(before or b"") or has_private_key(after or b"")
        if secret:
            entry["note"] = "holds a private key: content not shown"
        entry["certificates_before"] = fingerprints(before or b"")
        entry["certificates_after"] = fingerprints(after or b"")
        files.append(entry)
    return {"from": old_name, "to": new_name, "config": config, "files": files}


def format_diff(result: dict[str, Any]) -> list[str]:
    lines = [f"bundle {result['from']} -> {result['to']}"]
    lines += result["config"] or ["cluster.yaml: unchanged"]
    for entry in result["files"]:
        lines.append(f"{entry['change']:>8} {entry['file']}" +
                     (f"  ({entry['note']})" if entry.get("note") else ""))  # fmt: skip
        gone = set(entry["certificates_before"]) - set(entry["certificates_after"])
        new = set(entry["certificates_after"]) - set(entry["certificates_before"])
        lines += [f"         - {c}" for c in sorted(gone)] + [
            f"         + {c}" for c in sorted(new)
        ]
    return lines
