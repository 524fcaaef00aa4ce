"""The dataset card of a Hub teacher store: which teachers (pinned by weights digest), which data, views, storage.

Rendered from the parts' manifests alone (their keys hold no path of the machine that built them), so the same
card comes from the files whoever pushes them; `huggingface_hub.DatasetCard` writes its YAML header.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

__all__ = ["part_summary", "store_card"]


def part_summary(fingerprint: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """One part's facts for a table row (`feed-hf store info` prints the same)."""
    key = manifest["key"]
    (teacher,) = key["teachers"]
    settings, data = key["settings"], key["data"]
    return {
        "part": fingerprint,
        "teacher": teacher["architecture"],
        "weights_sha256": teacher["weights_sha256"],
        "feature": teacher["feature_module"] or f"index {teacher['feature_index']}",
        "map_shape": "×".join(str(side) for side in teacher["map_shape"]),
        "images": data["num_images"],
        "data_fingerprint": data["datasets_fingerprint"] or data["sampled_pixels_sha256"][:16],
        "views": settings["views"],
        "augmentation": settings["augmentation"]
        + (f" (padding {settings['padding']})" if settings["augmentation"] != "none" else ""),
        "seed": settings["seed"],
        "storage": _storage(settings),
        "bytes": sum(shard["bytes"] for shard in manifest["shards"]),
    }


def _storage(settings: dict[str, Any]) -> str:
    compression = settings.get("compression", "none")  # absent from the key of an uncompressed store
    maps = settings["dtype"] if compression == "none" else f"{compression} (energy {settings['energy_share']})"
    logits = f" + logits {settings['dtype']}" if settings["with_logits"] else ""
    summaries = f" + summaries {settings['dtype']}" if settings.get("with_summaries") else ""  # absent: none kept
    return maps + logits + summaries


def store_card(repo_id: str, parts: dict[str, dict[str, Any]]) -> str:
    """README.md of the dataset repo `repo_id` holding `parts` {fingerprint: manifest}."""
    rows = [part_summary(fingerprint, manifest) for fingerprint, manifest in sorted(parts.items())]
    columns = ["part", "teacher", "weights SHA-256", "feature", "map", "images", "data", "views", "augmentation"]
    columns += ["seed", "storage", "size"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"`{row['part']}`", row["teacher"], f"`{row['weights_sha256'][:16]}…`", row["feature"]]
        cells += [row["map_shape"], str(row["images"]), f"`{row['data_fingerprint']}`", str(row["views"])]
        cells += [row["augmentation"], str(row["seed"]), row["storage"], f"{row['bytes'] / 2**20:.1f} MiB"]
        lines.append("| " + " | ".join(cells) + " |")
    body = f"""
# Teacher store `{repo_id}`

Feature maps of frozen teachers for FEED distillation (feed-hf), one folder per teacher ("part"), each named by
the fingerprint of its key: the teacher's weights (pinned by SHA-256), its feature and map shape, the data (image
count, `datasets` fingerprint, digest of sampled pixels), and the store's settings (views K with their recorded
crop/flip, seed, storage dtype). Adding a teacher adds a folder; no part is ever rewritten.

{chr(10).join(lines)}

A run uses a part only if its own key gives the same fingerprint, and verifies every row against the checksums in
the part's manifest before using it: `teacher_store_repo="{repo_id}"` (with `teacher_store=True`), or
`feed-hf store pull --repo_id {repo_id}`.
"""
    data = DatasetCardData(tags=["feed-hf", "teacher-store", "knowledge-distillation"])
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}"))
