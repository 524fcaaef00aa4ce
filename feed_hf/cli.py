"""`python -m feed_hf.cli`: the `feed-hf` console script (`feed_hf_cli.main`, kept outside the package to stay fast)."""

from __future__ import annotations

from feed_hf_cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
