"""Run by test_store_nodes.py: one of two processes (gloo on localhost) posing as two nodes of one run.

Arguments: rank, port, then a JSON list of cases [store folder, part fingerprints (comma-separated)], each with
`{rank}` replaced by this rank (a folder per node, or data per node). Prints, per case, the outcome of
`check_shared_store` as one JSON list.
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from feed_hf.store.nodes import check_shared_store


def main(rank: str, port: str, cases: str) -> None:
    rank_number = int(rank)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank_number, world_size=2)

    def gather_object(objects):
        gathered = [None, None]
        dist.all_gather_object(gathered, objects)
        return [item for part in gathered for item in part]

    outcomes = []
    for root, fingerprints in json.loads(cases):
        try:
            check_shared_store(Path(root.format(rank=rank)), fingerprints.format(rank=rank).split(","), rank_number,
                               2, dist.barrier, gather_object)  # fmt: skip
            outcomes.append("ok")
        except ValueError as error:
            outcomes.append(f"{type(error).__name__}: {error}")
    print(json.dumps(outcomes))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
