"""The method: what FEED computes (feature taps, connectors, Eq. 1-2 losses, the student wrapper, summary features).

Allowed imports: torch, timm, and nothing else of feed_hf."""
