"""The `feed-hf` console script: a shim over the command table in `feed_hf.runs.commands`."""

from __future__ import annotations

from .runs.commands import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
