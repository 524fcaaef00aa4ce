"""The rule for teacher stores across processes and nodes: one store folder, seen by every process, checked.

A store is built by every rank writing its block's shard into one `.building` folder, then rank 0 completing it
(`teacher_store`). Under `accelerate` multi-node (several `machine_rank`s) that works only if `teacher_store_dir`
is one folder every node sees (a shared filesystem): with a per-node disk, node 1's shards would never reach rank
0, and a node could read a stale store of its own. So, before any store is opened or built with more than one
process, every process:

1. sends its host, a fresh token and the fingerprints of the parts it wants to all others (`gather_object`):
   processes that computed other fingerprints (other data, other preprocessing, other teacher weights on a node)
   are refused, naming the ranks, before anything is built;
2. writes a marker named after its rank into `<teacher_store_dir>/.ranks-<rank 0's token>/`, waits for all, and
   lists the markers it sees: a process that does not see every rank's marker is on another folder, and every
   process refuses, naming the ranks and their hosts, with the fix (a shared folder).

Nothing is built or pulled per node, so a per-node mismatch is an error, never silent. One builder at a time,
the others wait (`store_lock`). Tested with two processes on this machine posing as two nodes (a folder per
node, data per node): `tests/test_store_nodes.py`.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .lock import folder_error

__all__ = ["StoreNotSharedError", "check_shared_store"]


class StoreNotSharedError(ValueError):
    """Processes of one run that would read different teacher stores (other folders or other fingerprints)."""


def check_shared_store(
    root: Path,
    fingerprints: Sequence[str],
    rank: int,
    world_size: int,
    barrier: Callable[[], None],
    gather_object: Callable[[list[Any]], list[Any]] | None,
) -> None:
    """Refuse, on every process, a run whose processes would not read one store (see the module docstring).

    Collective: every rank calls it. Nothing to check with one process.
    """
    if world_size <= 1:
        return
    if gather_object is None:
        raise ValueError(
            f"a teacher store opened by {world_size} processes needs gather_object (accelerate.utils.gather_object) "
            "to check that every process reads the same store folder"
        )
    facts = gather_object([(rank, socket.gethostname(), os.urandom(8).hex(), list(fingerprints))])
    _check_same_fingerprints(facts)
    hosts = {fact[0]: fact[1] for fact in facts}
    markers = root / f".ranks-{facts[0][2]}"
    try:
        markers.mkdir(parents=True, exist_ok=True)
        (markers / f"rank-{rank:05d}").write_text(socket.gethostname())
    except OSError as error:
        raise folder_error(root, error, "write a marker of this process into") from None
    barrier()
    seen = {path.name for path in markers.iterdir()}
    unseen = [other for other in range(world_size) if f"rank-{other:05d}" not in seen]
    reports = gather_object([(rank, unseen)])
    barrier()  # every process listed the markers before any is removed
    shutil.rmtree(markers, ignore_errors=True)
    blind = [(who, missing) for who, missing in reports if missing]
    if blind:
        who, missing = blind[0]
        raise StoreNotSharedError(
            f"teacher_store_dir is not one folder shared by every process of this run: rank {who} (host "
            f"{hosts[who]}) does not see the markers of rank(s) {missing} (host(s) "
            f"{sorted({hosts[m] for m in missing})}); nothing was built. Point teacher_store_dir at a folder every "
            "node mounts (a shared filesystem), or run on one node"
        )


def _check_same_fingerprints(facts: list[tuple[int, str, str, list[str]]]) -> None:
    reference_rank, reference_host, _, reference = facts[0]
    for rank, host, _, fingerprints in facts[1:]:
        if fingerprints != reference:
            raise StoreNotSharedError(
                f"the processes of this run want different teacher stores: rank {rank} (host {host}) computed parts "
                f"{fingerprints}, rank {reference_rank} (host {reference_host}) {reference} (other data, "
                "preprocessing or teacher weights on one node); nothing was built. Give every node the same data "
                "and teachers"
            )
