"""FeedTrainer's Hub side: `create_model_card` and `push_to_hub` with the Trainer's keywords, as the FEED card.

`HubPublisher` is a collaborator the trainer holds (`trainer.hub`); FeedTrainer's `create_model_card`,
`push_to_hub` and `_push_from_checkpoint` hand their work to it.

transformers' `Trainer.create_model_card` writes a transformers card over `output_dir/README.md` and its
`push_to_hub` uploads `output_dir` as it is. Here both keep the FEED card: the facts given (licence, tags, language,
datasets, base model, …) join the run's record (`results.json` "card") and the card is rendered again from the
record, so a later `evaluate()` or push keeps them too.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo

from ..training.hub_callbacks import ExportPushCallback
from .export import has_export
from .hub import push_export
from .portable import portable_dataset, portable_folder

__all__ = ["CARD_KEYWORDS", "HubPublisher", "declared_card_facts"]

# Trainer.create_model_card's keywords, each recorded and shown on the card.
CARD_KEYWORDS = (
    "language",
    "license",
    "tags",
    "model_name",
    "finetuned_from",
    "tasks",
    "dataset_tags",
    "dataset",
    "dataset_args",
)
_LIST_KEYWORDS = ("language", "tags", "tasks", "dataset_tags", "dataset", "dataset_args")


def declared_card_facts(given: dict[str, Any]) -> dict[str, Any]:
    """create_model_card's keywords as recorded: lists where the Trainer takes `str | list[str]`, and a local
    `finetuned_from` or `dataset` by name (a record names no path of this machine)."""
    facts: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str) else value
        if key in _LIST_KEYWORDS and not (isinstance(values, list | tuple) and all(isinstance(v, str) for v in values)):
            raise ValueError(f"create_model_card {key}={value!r}: give a string or a list of strings")
        if key not in _LIST_KEYWORDS and not isinstance(value, str):
            raise ValueError(f"create_model_card {key}={value!r}: give a string")
        if key == "dataset":
            values = [portable_dataset(v) for v in values]
        facts[key] = list(values) if key in _LIST_KEYWORDS else value
    if "finetuned_from" in facts and facts["finetuned_from"].count("/") != 1:
        facts["finetuned_from"] = portable_folder(facts["finetuned_from"])  # a folder of this machine, by name
    return facts


class HubPublisher:
    """The card facts a FeedTrainer was told and its pushes: it reads the trainer's `args`, `state`, `control`,
    `callback_handler`, `exporter` (export, record) and `is_world_process_zero`."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.card_facts: dict[str, Any] | None = None  # what create_model_card / push_to_hub were told (results.json)

    def create_model_card(self, given: dict[str, Any]) -> None:
        """Trainer.create_model_card's keywords (`given`) join the run's record and the FEED card of the export in
        `output_dir` is rendered again with them. Without an export yet, they wait for the one training writes."""
        given = declared_card_facts(given)
        earlier = dict(self.card_facts or {})
        if "tags" in given:  # as Trainer.create_model_card: the card's earlier tags stay
            given["tags"] = [*earlier.get("tags", []), *(t for t in given["tags"] if t not in earlier.get("tags", []))]
        self.card_facts = {**earlier, **given}
        args = self.trainer.args
        if args.should_save and has_export(args.output_dir):
            self.trainer.exporter.write_record(args.output_dir)

    def push(
        self,
        commit_message: str | None,
        blocking: bool,
        token: str | None,
        revision: str | None,
        private: bool | None,
        card: dict[str, Any],
    ) -> CommitInfo | Future | None:
        """Trainer.push_to_hub for FEED: export the bare student to `output_dir` (if not already there), record the
        card facts `card` (create_model_card's keywords) and push the export to `args.hub_model_id`."""
        unknown = sorted(set(card) - set(CARD_KEYWORDS))
        if unknown:
            raise TypeError(
                f"push_to_hub() got unexpected keyword arguments {unknown}: it takes commit_message, blocking, token, "
                f"revision, private and create_model_card's {', '.join(CARD_KEYWORDS)}"
            )
        trainer, args = self.trainer, self.trainer.args
        trainer.callback_handler.on_push_begin(args, trainer.state, trainer.control)
        output_dir = Path(args.output_dir)
        if not has_export(output_dir):
            trainer.exporter.export(str(output_dir))
        if card:
            self.create_model_card(card)
        if not trainer.is_world_process_zero():
            return None
        self.wait_for_pushes()
        return push_export(
            output_dir,
            args.hub_model_id or output_dir.resolve().name,
            token=token if token is not None else args.hub_token,
            private=private if private is not None else args.hub_private_repo,
            revision=revision if revision is not None else args.hub_revision,
            push_connectors=args.push_connectors,
            commit_message=commit_message or "Upload FEED student (feed-hf)",
            blocking=blocking,
        )

    def wait_for_pushes(self) -> None:
        """Wait for the `hub_strategy='every_save'` pushes still running (feed_hf.training.hub_callbacks)."""
        for callback in self.trainer.callback_handler.callbacks:
            if isinstance(callback, ExportPushCallback):
                callback.wait()
