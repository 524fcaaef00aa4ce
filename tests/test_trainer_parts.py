"""FeedTrainer's collaborators, each through its own small interface: FreshStudents (model_init), StudentExporter
(export + record) and HubPublisher (card facts + push)."""

from types import SimpleNamespace

import pytest
import timm
from timm.data import resolve_model_data_config

from feed_hf import FeedStudent, FeedTrainer
from feed_hf.publishing.export import has_export
from feed_hf.publishing.student_export import StudentExporter
from feed_hf.publishing.trainer_hub import HubPublisher
from feed_hf.training.model_init import FreshStudents
from feed_hf.training.resolution import set_student_input_size


@pytest.fixture
def trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    args = feed_config_factory(tmp_path / "run")
    return FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(32))


def test_fresh_students_connect_a_student_to_the_distilled_teachers(trainer):
    probe = timm.create_model("resnet8_cifar", num_classes=5)
    set_student_input_size(probe, (40, 40))
    fresh = FreshStudents(probe=probe)
    student = timm.create_model("resnet8_cifar", num_classes=5)
    connected = fresh.connect(student, trainer.teachers, [500.0, 500.0], trainer.args, searching=False)
    assert isinstance(connected, FeedStudent) and len(connected.connectors) == 2
    assert resolve_model_data_config(student)["input_size"][1:] == (40, 40)  # every trial's student at that size
    assert fresh.probe is None and fresh.input_size() == (40, 40)  # the probe's size, kept once read
    plain = fresh.connect(
        timm.create_model("resnet8_cifar", num_classes=5), trainer.teachers, [0.0, 0.0], trainer.args, False
    )
    assert len(plain.connectors) == 0  # every β is 0 and no search: logit KD or CE only
    searched = fresh.connect(
        timm.create_model("resnet8_cifar", num_classes=5), trainer.teachers, [0.0], trainer.args, True
    )
    assert len(searched.connectors) == 2  # a search may suggest β > 0 later: every teacher gets a connector
    assert fresh.connect(connected, trainer.teachers, [500.0], trainer.args, False) is connected


def test_fresh_students_setup_trial_reads_a_suggested_beta_as_a_list(trainer):
    seen = []
    trainer.hp_search_backend = "optuna"
    trainer.hp_space = lambda trial: {"feed_beta": 3}
    trial_betas = FreshStudents.setup_trial(trainer, {"feed_beta": 7}, lambda trial: seen.append(trial))
    assert seen == [{"feed_beta": [7.0]}]
    assert trial_betas == [500.0, 500.0]  # re-read from args, which the Trainer's setup (here a stub) would set
    assert FreshStudents.setup_trial(trainer, None, seen.append) is None and seen[-1] is None


def test_student_exporter_writes_the_bare_student_and_remembers_where(trainer, tmp_path):
    exporter = StudentExporter(trainer)
    exporter.export(str(tmp_path / "export"))
    assert has_export(tmp_path / "export") and exporter.exported_to == str(tmp_path / "export")
    assert (tmp_path / "export" / "results.json").exists()  # the record follows the model
    assert exporter.feed_config()["teachers"] == trainer.teacher_sources


def test_student_exporter_writes_no_record_on_another_rank():
    owner = SimpleNamespace(args=SimpleNamespace(should_save=False, output_dir="unused"))
    assert StudentExporter(owner).write_record("unused", ["earlier failure"]) == ["earlier failure"]


def test_hub_publisher_keeps_earlier_tags_and_refuses_a_bad_value():
    owner = SimpleNamespace(args=SimpleNamespace(should_save=False, output_dir="unused"))
    hub = HubPublisher(owner)
    hub.create_model_card({"tags": "a", "license": "mit"})
    hub.create_model_card({"tags": ["b", "a"], "language": None})
    assert hub.card_facts == {"tags": ["a", "b"], "license": "mit"}
    with pytest.raises(ValueError, match="tags=3"):
        hub.create_model_card({"tags": 3})


def test_hub_publisher_refuses_an_unknown_keyword_by_name_before_any_work():
    hub = HubPublisher(SimpleNamespace())  # nothing of the trainer is read before the check
    with pytest.raises(TypeError, match=r"\['colour'\]"):
        hub.push("msg", True, None, None, None, {"colour": "red"})
