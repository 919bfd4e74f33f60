"""Typed VIP errors."""

from __future__ import annotations


class VipError(Exception):
    """Adding, refreshing, removing or announcing the VIP failed; says what to check."""
