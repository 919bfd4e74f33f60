"""maxconn split among worker processes: each takes ceil(maxconn / N), unlimited stays
unlimited, one worker (or none) keeps the configured limits."""

from __future__ import annotations

from node.config import parse_cluster
from node.config.share import share, split_limits

CONFIG = """
cluster: t
frontends: [{name: web, bind: "127.0.0.1:8080", default_backend: app, maxconn: 1001}]
backends:
  - name: app
    servers:
      - {name: s1, address: "127.0.0.1:9001", maxconn: 10}
      - {name: s2, address: "127.0.0.1:9002"}
"""


def test_each_worker_takes_its_share_rounded_up() -> None:
    assert [share(10, n) for n in (0, 1, 2, 3, 4, 10, 11)] == [10, 10, 5, 4, 3, 1, 1]
    assert share(0, 4) == 0  # unlimited stays unlimited


def test_split_limits_rewrites_frontends_and_servers_only() -> None:
    config = parse_cluster(CONFIG)
    assert split_limits(config, 1) is config
    split = split_limits(config, 2)
    assert split.frontends[0].maxconn == 501
    assert [s.maxconn for s in split.backends[0].servers] == [5, 0]
    assert split.frontends[0].bind == config.frontends[0].bind
    assert split.backends[0].maxqueue == config.backends[0].maxqueue
