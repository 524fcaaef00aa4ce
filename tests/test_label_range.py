"""Labels are checked on every path, before they reach the model (issue 18, item 8)."""

import datasets
import pytest
import torch
from recipe_helpers import tiny_argv

from feed_hf import FeedTrainer
from feed_hf.data.label_range import with_label_checks
from feed_hf_cli import main

OUT_OF_RANGE = (
    r"split '{}' has labels outside the student's 5 classes: \[12\] \(1 rows\); labels are class indices 0\.\.4"
)


class _Items(torch.utils.data.Dataset):
    """A plain torch dataset that does not list its labels."""

    def __init__(self, labels):
        self._labels = labels

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, index):
        return {"pixel_values": torch.randn(3, 32, 32), "labels": torch.tensor(self._labels[index])}


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, labels):
        self._labels = labels

    def __iter__(self):
        for label in self._labels:
            yield {"pixel_values": torch.randn(3, 32, 32), "labels": label}


def _hf(values, label_feature):
    pixels = [torch.randn(3, 32, 32).numpy() for _ in values]
    features = datasets.Features(pixel_values=datasets.Array3D((3, 32, 32), "float32"), labels=label_feature)
    dataset = datasets.Dataset.from_dict({"pixel_values": pixels, "labels": values}, features=features)
    return dataset.with_format("torch")


LABELS = [0, 1, 2, 12, 3, 4, 0, 1]  # 12 in the first batch of 16
FORMS = {
    "datasets.Dataset of plain integers": lambda: _hf(LABELS, datasets.Value("int64")),
    "a torch Dataset": lambda: _Items(LABELS),
    "a datasets stream": lambda: _hf(LABELS, datasets.Value("int64")).to_iterable_dataset(),
    "a torch IterableDataset": lambda: _Stream(LABELS),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_label_beyond_the_students_classes_stops_before_the_first_update(form, tmp_path, feed_config_factory):
    config = feed_config_factory(tmp_path, max_steps=2, per_device_train_batch_size=16)
    with pytest.raises(ValueError, match=OUT_OF_RANGE.format("train_dataset")):
        trainer = FeedTrainer(args=config, train_dataset=FORMS[form]())
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        try:
            trainer.train()
        finally:
            assert trainer.state.global_step == 0
            assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_the_api_dataset_is_refused_when_the_trainer_is_made(tmp_path, feed_config_factory):
    """A datasets.Dataset is read whole when FeedTrainer is made: nothing is built after the refusal."""
    config = feed_config_factory(tmp_path)
    with pytest.raises(ValueError, match=OUT_OF_RANGE.format("train_dataset")):
        FeedTrainer(args=config, train_dataset=_hf(LABELS, datasets.Value("int64")))
    with pytest.raises(ValueError, match=OUT_OF_RANGE.format("eval_dataset")):
        FeedTrainer(args=config, train_dataset=_Items([0, 1]), eval_dataset=_hf(LABELS, datasets.Value("int64")))
    missing = _hf([0, -1, 1], datasets.ClassLabel(names=list("abcde")))
    with pytest.raises(ValueError, match=r"split 'train_dataset' has 1 rows without a label \(None, NaN or -1\)"):
        FeedTrainer(args=config, train_dataset=missing)


def test_a_dataset_that_lists_its_labels_is_checked_whole_first(synthetic_images):
    data = synthetic_images(12)
    data.labels[9] = 40  # torchvision-style datasets keep every label in an attribute
    with pytest.raises(ValueError, match=r"outside the student's 5 classes: \[40\]"):
        with_label_checks(data, 5, "train_dataset")


def test_soft_labels_and_class_names_are_not_class_indices_and_pass(synthetic_images):
    class Soft(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return {"pixel_values": torch.zeros(3), "labels": torch.tensor([0.25, 0.75])}

    assert with_label_checks(Soft(), 2, "train_dataset")[1]["labels"].shape == (2,)
    names = datasets.Dataset.from_dict({"label": ["cat", "dog"]})
    assert with_label_checks(names, 2, "train_dataset") is names


def test_cli_stream_of_integers_with_too_small_num_labels_is_one_line(tmp_path, capsys):
    features = datasets.Features(image=datasets.Image(), label=datasets.Value("int64"))
    digits = datasets.load_dataset("parquet", data_files={"train": str(_digits_parquet(tmp_path))}, split="train")
    assert digits.features == features
    argv = ["--baseline", "ce", "--streaming", "true", "--max_steps", "2", "--num_labels", "3"]
    argv += ["--dataset", str(tmp_path / "digits.parquet")]
    with pytest.raises(SystemExit) as exit_info:
        main(["baselines", *tiny_argv(tmp_path / "run", *argv)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2
    assert error.startswith("feed-hf: error: split 'train_dataset' has labels outside the student's 3 classes: [")


def _digits_parquet(folder):
    from feed_hf.data.loading import digits_dataset

    path = folder / "digits.parquet"
    digits_dataset().cast_column("label", datasets.Value("int64")).to_parquet(str(path))
    return path


def test_an_empty_eval_dataset_is_refused_when_the_trainer_is_made(tmp_path, feed_config_factory, synthetic_images):
    with pytest.raises(ValueError, match="eval_dataset is empty: check the dataset path, split and max_eval_samples"):
        FeedTrainer(args=feed_config_factory(tmp_path), train_dataset=synthetic_images(8), eval_dataset=_Items([]))


def test_a_wrapped_dataset_with_batched_access_is_still_checked(tmp_path, feed_config_factory):
    subset = torch.utils.data.Subset(_Items(LABELS), range(len(LABELS)))  # torch's Subset has __getitems__
    assert hasattr(subset, "__getitems__")
    trainer = FeedTrainer(args=feed_config_factory(tmp_path, per_device_train_batch_size=16), train_dataset=subset)
    with pytest.raises(ValueError, match=OUT_OF_RANGE.format("train_dataset")):
        next(iter(trainer.get_train_dataloader()))
