"""FeedConfig's options for agglomerating foundation teachers: a summary term per teacher, a distance per teacher
for maps and summaries, and the teachers balanced onto a common scale (docs/balancing_and_probes.md).

Every default is FEED as published: no summary term, FEED's normalised distance (Eq. 2 with `feed_p`) for the maps,
no balancing; a run that sets none of them computes exactly the loss it computed before these options existed, and
its feed_config.json records none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .checks import broadcast_per_teacher, check_per_teacher
from .summary_features import FeatureDistance

__all__ = ["AGGLOMERATION_ARGS_DOC", "AgglomerationOptions", "check_agglomeration_options"]

BalanceMethod = Literal["none", "standardize", "phi_s"]

AGGLOMERATION_ARGS_DOC = """
        feed_map_distance (`list[str]`, *optional*, defaults to `['feed_l1']`):
            Distance between connector n's output and teacher n's map, one for all teachers or one per teacher:
            `"feed_l1"` (Eq. 2 with `feed_p` and `feed_reduction`, the paper), `"cosine"` (per position, as
            AM-RADIO) or `"smooth_l1"` (raw values: use it with `feed_balance`).
        feed_summary_weight (`list[float]`, *optional*, defaults to `[0.0]`):
            Weight w_n (finite, >= 0) of a summary term per teacher: the student's pooled map through a small MLP
            (`SummaryConnector`) against the feature the teacher's own head reads. `0`: no summary term (FEED).
        feed_summary_distance (`list[str]`, *optional*, defaults to `['feed_l1']`):
            Distance of the summary term, one for all teachers or one per teacher (as `feed_map_distance`).
        feed_balance (`str`, *optional*, defaults to `"none"`):
            Teachers' maps on a common scale before the distance: `"none"` (FEED as published), `"standardize"`
            (per channel) or `"phi_s"` (PCA + Hadamard rotation + one scale), fitted once on the train set.
        feed_balance_samples (`int`, *optional*, defaults to `512`):
            Train images (the first ones) the balancing statistics are fitted on, >= 2.
"""


@dataclass
class AgglomerationOptions:
    """The fields (FeedConfig inherits them) and their read-outs per teacher."""

    feed_map_distance: list[str] = field(
        default_factory=lambda: ["feed_l1"],
        metadata={
            "help": "Map distance, one or per teacher: feed_l1 (Eq. 2 with feed_p, the paper), cosine, smooth_l1."
        },
    )
    feed_summary_weight: list[float] = field(
        default_factory=lambda: [0.0],
        metadata={"help": "Weight (>= 0) of a pooled-summary term per teacher (one or per teacher); 0 = none (FEED)."},
    )
    feed_summary_distance: list[str] = field(
        default_factory=lambda: ["feed_l1"],
        metadata={"help": "Summary distance, one or per teacher: feed_l1, cosine, smooth_l1."},
    )
    feed_balance: str = field(
        default="none",
        metadata={"help": "Teachers' maps on a common scale: none (FEED as published), standardize or phi_s."},
    )
    feed_balance_samples: int = field(
        default=512, metadata={"help": "Train images (>= 2) the feed_balance statistics are fitted on."}
    )

    def map_distances(self, num_teachers: int) -> list[str]:
        return broadcast_per_teacher("feed_map_distance", self.feed_map_distance, num_teachers)

    def summary_weights(self, num_teachers: int) -> list[float]:
        return broadcast_per_teacher("feed_summary_weight", self.feed_summary_weight, num_teachers)

    def summary_distances(self, num_teachers: int) -> list[str]:
        return broadcast_per_teacher("feed_summary_distance", self.feed_summary_distance, num_teachers)

    def uses_summaries(self) -> bool:
        return any(weight > 0 for weight in self.feed_summary_weight)

    def agglomeration_settings(self) -> dict[str, Any]:
        """What feed_config.json records of these options: nothing when every one is at FEED's default."""
        settings = {
            "feed_map_distance": list(self.feed_map_distance),
            "feed_summary_weight": list(self.feed_summary_weight),
            "feed_summary_distance": list(self.feed_summary_distance),
            "feed_balance": self.feed_balance,
            "feed_balance_samples": self.feed_balance_samples,
        }
        defaults = AgglomerationOptions()
        used = any(
            getattr(defaults, name) != value for name, value in settings.items() if name != "feed_balance_samples"
        )
        return settings if used else {}


def check_agglomeration_options(config: Any) -> None:
    """Each value checked with the field, the value and what is allowed named (FeedConfig.__post_init__)."""
    num_teachers = len(config.teachers)
    for name in ("feed_map_distance", "feed_summary_weight", "feed_summary_distance"):
        check_per_teacher(name, getattr(config, name), num_teachers)
    for name in ("feed_map_distance", "feed_summary_distance"):
        for value in getattr(config, name):
            if value not in get_args(FeatureDistance):
                raise ValueError(f"{name} entry {value!r}: expected one of {list(get_args(FeatureDistance))}")
    for weight in config.feed_summary_weight:
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"feed_summary_weight must be finite and >= 0, got {weight}; 0 turns the term off")
    if config.feed_balance not in get_args(BalanceMethod):
        raise ValueError(f"feed_balance={config.feed_balance!r}: expected one of {list(get_args(BalanceMethod))}")
    if config.feed_balance_samples < 2:
        raise ValueError(f"feed_balance_samples must be >= 2 images, got {config.feed_balance_samples}")
    stores = config.teacher_store or config.cache_teacher_features
    if config.uses_summaries() and stores:
        raise ValueError(
            f"feed_summary_weight={config.feed_summary_weight} needs each teacher's summary, which the teacher store "
            "and cache_teacher_features do not keep; set feed_summary_weight=0 or run the teachers live"
        )
    if config.uses_summaries() and all(beta == 0 for beta in config.feed_beta):
        raise ValueError(
            f"feed_summary_weight={config.feed_summary_weight} with every feed_beta 0: the summary is pooled from the "
            "student map FEED taps; give feed_beta > 0"
        )
