"""The bundle document (pure): round trip, private keys sealed, every kind of damage
and a wrong secret refused with the matching error; the secret file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from node.bundle import secret as secret_file
from node.bundle.errors import BundleCorrupt, BundleUnauthenticated, SecretError
from node.bundle.format import Bundle, seal, unseal

KEY = b"k" * 32
PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
PEM_CERT = b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
BUNDLE = Bundle("cluster: edge\n", {"app.pem": PEM_CERT + PEM_KEY, "ca.pem": PEM_CERT},
                {"author": "ops", "message": "first"})  # fmt: skip


def test_round_trip_and_keys_never_in_clear() -> None:
    sha, document = seal(BUNDLE, KEY)
    assert hashlib.sha256(document).hexdigest() == sha
    assert b"PRIVATE KEY" not in document and b"MIIB" not in document
    assert PEM_CERT.decode() in json.loads(document)["files"]["ca.pem"]["pem"]
    opened = unseal(sha, document, KEY)
    assert opened.files == BUNDLE.files and opened.cluster_yaml == BUNDLE.cluster_yaml
    assert opened.meta == BUNDLE.meta


def test_wrong_secret_is_named() -> None:
    sha, document = seal(BUNDLE, KEY)
    with pytest.raises(SecretError, match="does not verify with this cluster secret"):
        unseal(sha, document, b"x" * 32)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_documents_fail_the_hash(damage: str) -> None:
    sha, document = seal(BUNDLE, KEY)
    broken = {"flip": document.replace(b"edge", b"edgy"), "truncate": document[:-10],
              "empty": b""}[damage]  # fmt: skip
    with pytest.raises(BundleCorrupt, match="does not match its SHA-256"):
        unseal(sha, broken, KEY)


def test_consistent_but_forged_documents_are_refused() -> None:
    """Someone rewrote the document AND its name: the format or the AEAD catches it."""
    _, document = seal(BUNDLE, KEY)
    data = json.loads(document)
    sealed = bytearray(base64.b64decode(data["files"]["app.pem"]["sealed"]))
    sealed[-1] ^= 1
    data["files"]["app.pem"]["sealed"] = base64.b64encode(bytes(sealed)).decode()
    forged = json.dumps(data).encode()
    with pytest.raises(SecretError):
        unseal(hashlib.sha256(forged).hexdigest(), forged, KEY)
    not_json = b"{not json"
    with pytest.raises(BundleCorrupt, match="not a bundle document"):
        unseal(hashlib.sha256(not_json).hexdigest(), not_json, KEY)
    other = json.dumps({"format": 99}).encode()
    with pytest.raises(BundleCorrupt, match="format 99 unknown"):
        unseal(hashlib.sha256(other).hexdigest(), other, KEY)


@pytest.mark.parametrize("part", ["cluster_yaml", "plain file", "meta", "added file"])
def test_plaintext_changed_by_someone_without_the_secret_is_refused(part: str) -> None:
    """Whoever can write to etcd but lacks the cluster secret can recompute the SHA-256,
    not the MAC: a changed backend, CA list or author is refused, never applied."""
    _, document = seal(BUNDLE, KEY)
    data = json.loads(document)
    if part == "cluster_yaml":
        data["cluster_yaml"] = "cluster: edge\nbackends: [{servers: [evil]}]\n"
    elif part == "plain file":
        data["files"]["ca.pem"]["pem"] = "-----BEGIN CERTIFICATE-----\nEVIL\n"
    elif part == "meta":
        data["meta"]["author"] = "someone else"
    else:
        data["files"]["extra.pem"] = {"pem": "-----BEGIN CERTIFICATE-----\nEVIL\n"}
    forged = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BundleUnauthenticated, match="MAC"):
        unseal(hashlib.sha256(forged).hexdigest(), forged, KEY)


def test_a_document_without_a_mac_is_refused_with_what_to_do() -> None:
    """Documents of format 1 (before bundles carried a MAC) cannot be told from forged
    ones: refused, and the message says to push again."""
    _, document = seal(BUNDLE, KEY)
    data = json.loads(document)
    del data["mac"]
    data["format"] = 1
    old = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BundleUnauthenticated, match="push it again"):
        unseal(hashlib.sha256(old).hexdigest(), old, KEY)


def test_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    secret_file.generate(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(secret_file.load(path)) == 32
    with pytest.raises(SecretError, match="exists"):
        secret_file.generate(path)  # never overwrites
    (tmp_path / "short").write_text(base64.b64encode(b"x" * 5).decode())
    with pytest.raises(SecretError, match="holds 5 bytes"):
        secret_file.load(tmp_path / "short")
    (tmp_path / "junk").write_text("not base64 !!")
    with pytest.raises(SecretError, match="not a cluster secret"):
        secret_file.load(tmp_path / "junk")
    with pytest.raises(SecretError, match="secret generate"):
        secret_file.load(None)
