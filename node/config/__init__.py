"""Configuration: ``cluster.yaml`` (replicated) and ``node.yaml`` (this machine)."""

from node.config.cluster import load_cluster, parse_cluster
from node.config.errors import ConfigError
from node.config.model import ClusterConfig, NodeConfig
from node.config.nodefile import parse_node

__all__ = [
    "ClusterConfig",
    "ConfigError",
    "NodeConfig",
    "load_cluster",
    "parse_cluster",
    "parse_node",
]
