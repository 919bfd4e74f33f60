"""JSON log lines: one object per line, structured ``extra`` fields as keys."""

from __future__ import annotations

import json
import logging

import pytest

from node.config import ConfigError
from node.config.nodefile import parse_node
from node.observe.logformat import JsonFormatter, configure_logging
from node.observe.logsink import select_piece


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
    assert parse_node("name: n1\nlog_format: json\n").log_format == "json"
    assert parse_node("name: n1\n").log_format == "text"
    with pytest.raises(ConfigError, match=r"log_format: .* is not one of text, json"):
        parse_node("name: n1\nlog_format: xml\n", "node.yaml")


def test_node_yaml_access_log_settings_are_checked() -> None:
    default = parse_node("name: n1\n").access_log
    assert (default.target, default.format, default.flush_interval) == ("stderr", "text", 0.1)
    assert parse_node("name: n1\nlog_format: json\n").access_log.format == "json"
    chosen = parse_node(
        "name: n1\nlog_format: json\naccess_log: {target: /var/log/fg.log, format: text, "
        "flush_interval: 1s, max_pending_kib: 128}\n"
    ).access_log
    assert (chosen.target, chosen.format, chosen.flush_interval, chosen.max_pending_kib) == (
        "/var/log/fg.log", "text", 1.0, 128,
    )  # fmt: skip
    for bad, message in [
        ("{target: access.log}", "must be stderr or an absolute file path"),
        ("{flush_interval: 1m}", "must be at most 10s"),
        ("{max_pending_kib: 1}", "out of range"),
        ("{format: xml}", "is not one of text, json"),
        ("{where: stderr}", "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_node(f"name: n1\naccess_log: {bad}\n", "node.yaml")


def test_stderr_pieces_are_whole_lines_of_at_most_the_limit() -> None:
    data = b"aaaa\nbbbb\ncccccccccccc\ndd\n"
    pieces, start = [], 0
    while start < len(data):
        length = select_piece(data, start, 10)
        pieces.append(data[start : start + length])
        start += length
    assert pieces == [b"aaaa\nbbbb\n", b"cccccccccccc\n", b"dd\n"]  # a long line alone
    assert select_piece(b"tail without newline", 0, 4) == len(b"tail without newline")
