"""etcd_loss: failsafe -- the question to the other members (no network: these cases
are decided before anyone is asked)."""

from __future__ import annotations

from election.view import Member
from node.cluster.failsafe import ask_for_promises
from node.config.model import NodeConfig

NODE = NodeConfig(name="a")


async def test_nobody_to_ask_is_no_promise() -> None:
    """A leader that knows no other member (it never saw one, or its list is empty) has
    nobody who could promise: the seat ends at the deadline, it is not kept forever."""
    assert await ask_for_promises(NODE, "token", [], 2.0) is False


async def test_no_token_or_a_member_without_an_address_is_no_promise() -> None:
    peer = Member("b", 100, True, {"admin": "https://192.0.2.2:9100"})
    assert await ask_for_promises(NODE, None, [peer], 2.0) is False
    silent = Member("c", 100, True, {})  # registered no admin address: cannot be asked
    assert await ask_for_promises(NODE, "token", [silent], 2.0) is False
