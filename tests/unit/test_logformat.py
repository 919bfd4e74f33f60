"""JSON log lines: one object per line, structured ``extra`` fields as keys."""

from __future__ import annotations

import json
import logging

import pytest

from node.observe.logformat import JsonFormatter, configure_logging


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("floatgate.election", logging.INFO, "x.py", 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_extra_fields_become_keys() -> None:
    line = JsonFormatter().format(_record(
        "%s: %s [fencing token %s]", "n1", "acquired the lease", 42,
        event="election", action="campaign", fencing_token=42, reason="acquired the lease",
    ))  # fmt: skip
    data = json.loads(line)
    assert data["message"] == "n1: acquired the lease [fencing token 42]"
    assert data["event"] == "election" and data["fencing_token"] == 42
    assert data["level"] == "info" and data["logger"] == "floatgate.election"
    assert data["ts"].endswith("+00:00")
    assert "args" not in data and "msg" not in data


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad" in json.loads(line)["exception"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        configure_logging("INFO", "xml")


def test_node_yaml_log_format_is_checked() -> None:
    from node.config import ConfigError
    from node.config.nodefile import parse_node

    assert parse_node("name: n1\nlog_format: json\n").log_format == "json"
    assert parse_node("name: n1\n").log_format == "text"
    with pytest.raises(ConfigError, match=r"log_format: .* is not one of text, json"):
        parse_node("name: n1\nlog_format: xml\n", "node.yaml")
