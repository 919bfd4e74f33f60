"""Operators' server states, as pure logic: parsing what operators type and what is
stored, and what a backend pool picks with drained, maintained or reweighed servers."""

from __future__ import annotations

import pytest

from node.config.cluster import parse_cluster
from node.proxy.errors import NoServerAvailable
from node.proxy.upstream.pool import BackendPool
from node.proxy.upstream.runtime import (
    AdminState,
    RuntimeStateError,
    ServerRuntime,
    UnknownServer,
    known,
    parse_server,
    parse_state,
    parse_table,
    parse_weight,
    stale,
    table_records,
    with_entry,
)

DRAIN = ServerRuntime(AdminState.DRAIN, None, "admin@n1", 1.0)
MAINT = ServerRuntime(AdminState.MAINT, None, "admin@n1", 2.0)


def test_what_operators_type_is_parsed_or_refused_with_the_way_out() -> None:
    assert parse_server("app/web1") == ("app", "web1")
    for bad in ("app", "/web1", "app/", "a/b/c"):
        with pytest.raises(RuntimeStateError, match="expected BACKEND/SERVER"):
            parse_server(bad)
    assert parse_state(" DRAIN ") is AdminState.DRAIN
    with pytest.raises(RuntimeStateError, match="use ready, drain or maint"):
        parse_state("down")
    assert parse_weight("7", 10) == 7
    assert parse_weight("50%", 10) == 5
    assert parse_weight("25%", 3) == 1  # rounded, as HAProxy's relative weights
    assert parse_weight("0", 10) == 0
    with pytest.raises(RuntimeStateError, match="out of range"):
        parse_weight("300", 1)
    with pytest.raises(RuntimeStateError, match="out of range"):
        parse_weight("200%", 200)
    for bad in ("-1", "1.5", "", "ten", "5 %"):
        with pytest.raises(RuntimeStateError, match="is not a weight"):
            parse_weight(bad, 1)


def test_unknown_servers_are_named_with_what_exists() -> None:
    servers = {"app": {"a": 1, "b": 1}}
    known(servers, "app", "a")
    with pytest.raises(UnknownServer, match=r"no server 'c' \(servers: a, b\)"):
        known(servers, "app", "c")
    with pytest.raises(UnknownServer, match=r"no backend 'api' \(backends: app\)"):
        known(servers, "api", "a")


def test_the_table_round_trips_and_drops_default_entries() -> None:
    table = with_entry({}, "app", "a", DRAIN)
    table = with_entry(table, "app", "b", ServerRuntime(AdminState.READY, 3, "cli", 3.0))
    assert parse_table(table_records(table)) == table
    assert with_entry(table, "app", "a", ServerRuntime()) == {"app": {"b": table["app"]["b"]}}
    assert with_entry(with_entry(table, "app", "a", ServerRuntime()), "app", "b",
                      ServerRuntime()) == {}  # fmt: skip
    assert table["app"]["a"] is DRAIN  # with_entry copies
    assert stale(table, {"app": {"b": 1}}) == [("app", "a")]
    assert stale(table, {}) == [("app", "a"), ("app", "b")]


@pytest.mark.parametrize(
    "record",
    [
        {"state": "sleep"},
        {"weight": 257},
        {"weight": -1},
        {"weight": "3"},
        {"weight": True},
        {"at": "noon"},
    ],
)
def test_a_malformed_stored_state_is_refused(record: dict[str, object]) -> None:
    with pytest.raises(RuntimeStateError, match="not a server state"):
        ServerRuntime.parse(record)


def _pool(balance: str = "roundrobin", extra: str = "") -> BackendPool:
    config = parse_cluster(f"""
cluster: t
frontends: [{{name: web, bind: "127.0.0.1:8080", default_backend: app}}]
backends:
  - name: app
    balance: {balance}
{extra}
    servers:
      - {{name: a, address: "127.0.0.1:9001"}}
      - {{name: b, address: "127.0.0.1:9002"}}
      - {{name: c, address: "127.0.0.1:9003", backup: true}}
""")
    return BackendPool(config.backends[0])


async def _picks(pool: BackendPool, count: int, key: str = "k") -> list[str]:
    names = []
    for i in range(count):
        slot = await pool.acquire(f"{key}{i}")
        names.append(slot.server.name)
        slot.release()
    return names


@pytest.mark.parametrize("balance", ["roundrobin", "leastconn", "source", "uri"])
async def test_a_drained_or_maintained_server_gets_nothing_new(balance: str) -> None:
    pool = _pool(balance)
    pool.set_runtime({"a": DRAIN})
    assert set(await _picks(pool, 20)) == {"b"}
    assert pool.usable_count() == 2  # b and the backup c
    assert pool.servers[0].up  # drain: still UP by its health
    pool.set_runtime({"a": MAINT})
    assert not pool.servers[0].up and set(await _picks(pool, 20)) == {"b"}
    pool.set_runtime({"a": DRAIN, "b": MAINT})  # no primary takes traffic: the backup does
    assert set(await _picks(pool, 10)) == {"c"}
    pool.set_runtime({"a": DRAIN, "b": MAINT, "c": DRAIN})
    with pytest.raises(NoServerAvailable):
        await pool.acquire("k")
    pool.set_runtime({})
    assert set(await _picks(pool, 20)) == {"a", "b"}


async def test_runtime_weights_replace_the_configured_ones() -> None:
    pool = _pool()
    pool.set_runtime({"a": ServerRuntime(weight=3)})
    assert sorted(await _picks(pool, 8)) == ["a"] * 6 + ["b"] * 2
    pool.set_runtime({"a": ServerRuntime(weight=0)})
    assert set(await _picks(pool, 6)) == {"b"}
    pool.set_runtime({})
    assert sorted(await _picks(pool, 4)) == ["a", "a", "b", "b"]


async def test_a_request_in_flight_on_a_drained_server_finishes_there() -> None:
    pool = _pool()
    slot = await pool.acquire("k")
    pool.set_runtime({slot.server.name: DRAIN})
    assert slot.server.active == 1  # not taken away
    slot.release()
    assert slot.server.active == 0


async def test_leaving_maintenance_a_checked_server_is_down_until_a_check_passes() -> None:
    pool = _pool(extra="    check: {type: tcp, interval: 1h, rise: 2}")
    a = pool.servers[0]
    pool.set_runtime({"a": MAINT})
    assert not a.up and a.health.up  # its last health is kept, the checks stopped
    changes: list[bool] = []
    pool.on_change = lambda: changes.append(a.up)
    pool.set_runtime({})
    assert a.admin is AdminState.READY and not a.up and changes == [False]
    assert a.health.successes == a.health.rise - 1  # the next passing check brings it UP
    assert set(await _picks(pool, 4)) == {"b"}
    await pool.close()


def test_a_reload_keeps_operators_states_by_server_name() -> None:
    old = _pool()
    old.set_runtime({"a": DRAIN, "b": ServerRuntime(weight=5)})
    new = BackendPool(old.config, old)
    assert [s.admin for s in new.servers] == [AdminState.DRAIN, AdminState.READY,
                                              AdminState.READY]  # fmt: skip
    assert new.servers[1].weight == 5
