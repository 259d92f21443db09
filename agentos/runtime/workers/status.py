"""What ``agentos status`` shows: the workers, the syscall queues, the leases held, the backlog."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agentos.runtime.workers._protocol import BUS_PREFIX, GROUP, KINDS, WORKERS_KEY, topic

__all__ = ["ClusterStatus", "Lease", "QueueStatus", "WorkerStatus", "cluster_status"]


@dataclass(frozen=True)
class WorkerStatus:
    """One worker's last heartbeat; ``alive`` when it is younger than three heartbeats."""

    id: str
    pid: int
    host: str
    alive: bool
    seen_s_ago: float
    running: int
    concurrency: int
    done: int
    failed: int
    replayed: int
    poisoned: int


@dataclass(frozen=True)
class Lease:
    """A syscall a worker holds (pending in the group): for how long, after how many tries."""

    topic: str
    offset: int
    worker: str
    idle_s: float
    deliveries: int


@dataclass(frozen=True)
class QueueStatus:
    """One syscall topic: messages kept, waiting (not yet taken), held, dead-lettered."""

    topic: str
    length: int
    waiting: int
    held: int
    dead: int

    @property
    def backlog(self) -> int:
        """Syscalls not finished yet: waiting plus held."""
        return self.waiting + self.held


@dataclass(frozen=True)
class ClusterStatus:
    """Workers, queues and leases of one Redis."""

    url: str
    workers: list[WorkerStatus] = field(default_factory=list)
    queues: list[QueueStatus] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)


def _seq(stream_id: str) -> int:
    return int(stream_id.rpartition("-")[2])


def cluster_status(url: str, *, prefix: str = BUS_PREFIX, heartbeat: float = 1.0,
                   max_leases: int = 100) -> ClusterStatus:
    """Read the workers' heartbeats and the syscall topics from Redis.

    Raises:
        redis.exceptions.ConnectionError: Redis is unreachable.
    """
    import redis

    r = redis.Redis.from_url(url, decode_responses=True, protocol=2)
    try:
        now = time.time()
        workers = []
        for worker_id, raw in sorted(r.hgetall(WORKERS_KEY).items()):
            beat: dict[str, Any] = json.loads(raw)
            ago = max(0.0, now - float(beat["seen"]))
            workers.append(WorkerStatus(
                id=worker_id, pid=int(beat["pid"]), host=str(beat["host"]),
                alive=ago < 3 * max(heartbeat, float(beat.get("heartbeat", heartbeat))),
                seen_s_ago=ago, running=int(beat["running"]),
                concurrency=int(beat["concurrency"]), done=int(beat["done"]),
                failed=int(beat["failed"]), replayed=int(beat["replayed"]),
                poisoned=int(beat["poisoned"]),
            ))
        queues, leases = [], []
        for kind in KINDS:
            name = topic(kind)
            key = prefix + name
            length = int(r.xlen(key))
            dead = int(r.xlen(key + ".dead"))
            waiting = held = 0
            if length:
                groups = {g["name"]: g for g in r.xinfo_groups(key)}
                group = groups.get(GROUP)
                if group is not None:
                    last = r.xrevrange(key, "+", "-", count=1)
                    newest = _seq(last[0][0]) if last else 0
                    waiting = max(0, newest - _seq(group["last-delivered-id"]))
                    held = int(group["pending"])
                    for p in r.xpending_range(key, GROUP, "-", "+", max_leases):
                        leases.append(Lease(name, _seq(p["message_id"]) - 1,
                                            str(p["consumer"]),
                                            int(p["time_since_delivered"]) / 1000,
                                            int(p["times_delivered"])))
            queues.append(QueueStatus(name, length, waiting, held, dead))
        return ClusterStatus(url, workers, queues, leases)
    finally:
        r.close()
