"""Typed TLS errors."""

from __future__ import annotations


class CertificateError(Exception):
    """A certificate, key, CA or CRL file is unusable; the message names the file."""
