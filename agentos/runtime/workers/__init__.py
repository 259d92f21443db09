"""Kernel workers over Redis: kernels send LLM, tool and memory syscalls to ``agentos worker``
processes, which run them under shared limits, leases and a journal.

Importing this package imports the ``redis`` client only when a worker or client is built.
"""

from __future__ import annotations

from agentos.runtime.workers._protocol import GROUP, KINDS, Journal, topic
from agentos.runtime.workers.client import RemoteSyscalls, syscall_bus_config
from agentos.runtime.workers.status import ClusterStatus, cluster_status
from agentos.runtime.workers.worker import Worker, WorkerConfig, load_object

__all__ = [
    "GROUP",
    "KINDS",
    "ClusterStatus",
    "Journal",
    "RemoteSyscalls",
    "Worker",
    "WorkerConfig",
    "cluster_status",
    "load_object",
    "syscall_bus_config",
    "topic",
]
