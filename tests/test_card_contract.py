"""The Trainer's own ways to measure, save and publish, kept by FEED's export and card (issue 19, items 2, 4, 5):
a `compute_metrics` of the user's reaches the card's tables and model-index, `preprocess_logits_for_metrics` works
with the default metric, `processing_class` is saved with the export, `create_model_card` / `push_to_hub` render
the FEED card with every fact given, and `every_save` pushes run in the background."""

import json
import threading

import numpy as np
import pytest
import yaml
from conftest import HUB_TOKEN, SyntheticImages, make_feed_config
from huggingface_hub import ModelCard
from test_card_metadata import markdown_rows
from transformers import TrainerCallback, ViTImageProcessor

from feed_hf import FeedTrainer
from feed_hf.evaluation.metrics import top_k_from_logits
from feed_hf.publishing.trainer_hub import CARD_KEYWORDS


def _balanced_accuracy(eval_prediction) -> dict[str, float]:
    predictions = eval_prediction.predictions.argmax(-1)
    labels = eval_prediction.label_ids
    recalls = [float((predictions[labels == c] == c).mean()) for c in np.unique(labels)]
    return {"balanced_accuracy": float(np.mean(recalls))}


def test_a_custom_compute_metrics_reaches_the_card_tables_and_model_index(tmp_path):
    args = make_feed_config(tmp_path / "run", eval_strategy="steps", eval_steps=2)
    trainer = FeedTrainer(
        args=args,
        train_dataset=SyntheticImages(32),
        eval_dataset=SyntheticImages(32, seed=1),
        compute_metrics=_balanced_accuracy,
    )
    trainer.train()
    metrics = trainer.evaluate()
    card = ModelCard.load(tmp_path / "run" / "README.md")
    by_type = {result.metric_type: result for result in card.data.eval_results}
    assert set(by_type) == {"balanced_accuracy"}  # what was measured, and nothing else
    assert by_type["balanced_accuracy"].metric_value == round(metrics["eval_balanced_accuracy"], 4)
    epochs = markdown_rows(card.text.split("### Training results")[1].split("##")[0])
    assert [row["Step"] for row in epochs] == ["2", "4"] and all(row["Balanced Accuracy"] != "—" for row in epochs)
    results = card.text.split("## Results")[1].split("##")[0]
    assert f"| balanced_accuracy | {metrics['eval_balanced_accuracy']:.4g} |" in results
    assert "| this model | — | — |" not in results  # no empty top-1 row for a metric that was not measured


def test_preprocess_logits_for_metrics_works_with_the_default_metric(tmp_path):
    data, eval_data = SyntheticImages(32), SyntheticImages(40, seed=1)
    plain = FeedTrainer(args=make_feed_config(tmp_path / "a"), train_dataset=data, eval_dataset=eval_data)
    logits = plain.predict(eval_data).predictions
    expected = top_k_from_logits(logits, eval_data.labels.numpy())
    for preprocess, measured in (
        (lambda logits, labels: logits.argmax(-1), {"top1"}),  # class ids: top-1
        (lambda logits, labels: logits.topk(5).indices, {"top1", "top5"}),  # ranked ids: both
    ):
        trainer = FeedTrainer(
            model=plain.student,
            args=make_feed_config(tmp_path / "b"),
            train_dataset=data,
            eval_dataset=eval_data,
            preprocess_logits_for_metrics=preprocess,
        )
        metrics = trainer.evaluate()
        assert {key for key in metrics if key in ("eval_top1", "eval_top5")} == {f"eval_{m}" for m in measured}
        for name in measured:
            assert metrics[f"eval_{name}"] == pytest.approx(expected[name])
    odd = FeedTrainer(
        model=plain.student,
        args=make_feed_config(tmp_path / "c"),
        train_dataset=data,
        eval_dataset=eval_data,
        preprocess_logits_for_metrics=lambda logits, labels: logits.max(-1).values,  # scores, not classes
    )
    with pytest.raises(ValueError, match=r"predictions of shape \(40,\) \(float32\).*preprocess_logits_for_metrics"):
        odd.evaluate()


def test_processing_class_is_saved_with_the_export_and_pushed(loopback_hub, tmp_path):
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    args = make_feed_config(tmp_path / "run", hub_model_id="tester/with-processor", hub_token=HUB_TOKEN)
    trainer = FeedTrainer(args=args, train_dataset=SyntheticImages(32), processing_class=processor)
    trainer.train()
    trainer.save_model(str(tmp_path / "saved"))
    for folder in (tmp_path / "run", tmp_path / "saved"):
        # As Trainer.save_model saves it (AutoImageProcessor prefers the timm config's own processor for a timm
        # model folder, in transformers as here).
        assert ViTImageProcessor.from_pretrained(folder).to_dict() == processor.to_dict()
    trainer.push_to_hub()
    pushed = loopback_hub.files("tester/with-processor")
    assert json.loads(pushed["preprocessor_config.json"])["image_std"] == [0.25] * 3


_FACTS = dict(
    language="en",
    license="apache-2.0",
    tags=["my-tag"],
    model_name="my-student",
    finetuned_from="timm/resnet18.a1_in1k",
    tasks="image-classification",
    dataset_tags="tester/shapes",
    dataset="Shapes",
    dataset_args="small",
)


def _assert_card_holds_every_fact(card: ModelCard, facts: dict) -> None:
    assert "## What FEED is" in card.text  # the FEED card, never a transformers card over it
    data, header = card.data, yaml.safe_load(card.content.split("---")[1])
    assert data.language == [facts["language"]] and data.license == facts["license"]
    assert set(facts["tags"]) <= set(data.tags) and "feed-hf" in data.tags
    assert header["model-index"][0]["name"] == facts["model_name"] and card.text.startswith(
        f"\n# {facts['model_name']}"
    )
    assert data.base_model == facts["finetuned_from"] and data.pipeline_tag == facts["tasks"]
    assert data.datasets == [facts["dataset_tags"]]
    result = data.eval_results[0]
    assert (result.task_type, result.dataset_name, result.dataset_config) == (facts["tasks"], "Shapes", "small")
    assert f"declared fine-tuned from `{facts['finetuned_from']}`" in card.text


def test_create_model_card_and_push_to_hub_render_the_feed_card_with_every_fact(loopback_hub, tmp_path):
    assert set(_FACTS) == set(CARD_KEYWORDS)  # every keyword of Trainer.create_model_card is tested
    args = make_feed_config(tmp_path / "run", hub_model_id="tester/facts", hub_token=HUB_TOKEN)
    trainer = FeedTrainer(args=args, train_dataset=SyntheticImages(32), eval_dataset=SyntheticImages(16, seed=1))
    trainer.train()
    trainer.evaluate()
    trainer.create_model_card(**_FACTS)
    _assert_card_holds_every_fact(ModelCard.load(tmp_path / "run" / "README.md"), _FACTS)
    recorded = json.loads((tmp_path / "run" / "results.json").read_text())
    assert recorded["card"]["license"] == "apache-2.0" and recorded["license"]["id"] == "apache-2.0"
    trainer.evaluate()  # a later record keeps what the card was told
    _assert_card_holds_every_fact(ModelCard.load(tmp_path / "run" / "README.md"), _FACTS)

    future = trainer.push_to_hub(license="mit", tags=["other-tag"], blocking=False)
    commit = future.result(timeout=120)  # blocking=False: a Future, as the Trainer returns
    assert loopback_hub.commits("tester/facts")[0] == commit.oid
    pushed = ModelCard(loopback_hub.files("tester/facts")["README.md"].decode())
    _assert_card_holds_every_fact(pushed, {**_FACTS, "license": "mit", "tags": ["my-tag", "other-tag"]})
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['licence'\].*create_model_card's language"):
        trainer.push_to_hub(licence="mit")
    with pytest.raises(ValueError, match=r"create_model_card tags=3: give a string or a list of strings"):
        trainer.create_model_card(tags=3)


def test_a_processing_class_that_cannot_be_saved_is_refused_before_training(tmp_path):
    trainer = FeedTrainer(
        args=make_feed_config(tmp_path / "run"), train_dataset=SyntheticImages(16), processing_class=object()
    )
    with pytest.raises(ValueError, match=r"processing_class object has no save_pretrained\(\); .*image processor"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_save_model_with_push_to_hub_pushes_as_the_trainer_does(loopback_hub, tmp_path):
    args = make_feed_config(
        tmp_path / "run", push_to_hub=True, hub_strategy="end", hub_model_id="tester/saved", hub_token=HUB_TOKEN
    )
    trainer = FeedTrainer(args=args, train_dataset=SyntheticImages(16))
    trainer.train()
    trainer.save_model()
    assert "model.safetensors" in loopback_hub.files("tester/saved")


class _OpenTheHubAtTheEnd(TrainerCallback):
    """At the end of training (before FeedTrainer waits for its pushes): note whether the Hub still holds the first
    commit, then let it through."""

    def __init__(self, hub, repo: str) -> None:
        self.hub, self.repo, self.commits_before_the_end = hub, repo, None

    def on_train_end(self, args, state, control, **kwargs):
        self.commits_before_the_end = len(self.hub.commits(self.repo)) if self.repo in self.hub._repos else 0
        self.hub.commit_gate.set()


@pytest.mark.parametrize("always_push", [False, True])
def test_every_save_pushes_in_the_background_without_stalling_training(loopback_hub, tmp_path, always_push):
    repo = f"tester/every-save-{always_push}".lower()
    args = make_feed_config(
        tmp_path / "run",
        push_to_hub=True,
        hub_strategy="every_save",
        hub_model_id=repo,
        hub_token=HUB_TOKEN,
        save_strategy="steps",
        save_steps=1,
        max_steps=3,
        hub_always_push=always_push,
    )
    at_the_end = _OpenTheHubAtTheEnd(loopback_hub, repo)
    trainer = FeedTrainer(args=args, train_dataset=SyntheticImages(48), callbacks=[at_the_end])
    loopback_hub.commit_gate = threading.Event()  # the Hub answers no commit until training has ended
    try:
        trainer.train()
    finally:
        loopback_hub.commit_gate.set()
        loopback_hub.commit_gate = None
    # All three steps and saves ran while the first push was still waiting on the Hub (a blocking push would have
    # held training at the first save until the Hub answered).
    assert trainer.state.global_step == 3 and at_the_end.commits_before_the_end in (0, 1)  # 1: the repo's creation
    pushed_steps = [
        json.loads(loopback_hub.files(repo, revision=sha)["results.json"])["compute"]["optimizer_steps"]
        for sha in reversed(loopback_hub.commits(repo)[:-1])  # oldest first, without the repo's first commit
    ]
    # As the Trainer: a save during a running push is skipped, unless hub_always_push (then each, in order); all
    # pushes are done when train() returns.
    assert pushed_steps == ([1, 2, 3] if always_push else [1])
