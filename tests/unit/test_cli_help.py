"""Every command's --help ends with an example, and every example parses: its flags
and arguments exist (so the examples cannot drift from the parser)."""

from __future__ import annotations

import shlex
from importlib.metadata import version

import pytest

from node.cli.main import EXAMPLES, build_parser, subcommands

COMMANDS = [command for command, *_ in subcommands(build_parser())]


def test_every_command_has_an_example_and_every_example_a_command() -> None:
    assert sorted(COMMANDS) == sorted(EXAMPLES)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_ends_with_the_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(EXAMPLES[command]) and "\nexample:\n" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_the_example_parses(command: str) -> None:
    words = shlex.split(EXAMPLES[command])
    assert words[0] == "floatgate"
    args = build_parser().parse_args(words[1:])
    assert callable(args.run)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"floatgate {version('floatgate')}"
