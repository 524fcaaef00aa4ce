"""FeedConfig, its one owner: the fields (`feed_config.py`), their types (`field_types.py`), their checks
(`checks.py`) and their read-outs (`readouts.py`: `betas(config, n)`, `feed_settings(config)`, ...)."""

from .feed_config import FeedConfig

__all__ = ["FeedConfig"]
