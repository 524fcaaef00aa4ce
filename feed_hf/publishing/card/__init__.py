"""The model card, one owner: its metadata as the Hub reads it (`metadata.py`: `ModelCardData`, model-index,
licence, teachers, tags) and its body rendered from `templates/model_card.md` (`render.py`), both from the run's
results.json."""

from .metadata import card_metadata
from .render import CardArguments, render_model_card, write_model_card, write_model_card_from_results

__all__ = ["CardArguments", "card_metadata", "render_model_card", "write_model_card", "write_model_card_from_results"]
