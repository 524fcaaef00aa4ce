"""Students that start from pretrained weights: Hub, folder, timm NAME.TAG (issue 12.6)."""

import pytest
import safetensors.torch
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi
from timm.models import save_for_hf

from feed_hf import FeedTrainer
from feed_hf.training.students import StudentSourceError, create_student, student_base_model


def _source_folder(path, architecture="resnet8_cifar", num_classes=7, seed=3):
    torch.manual_seed(seed)
    model = timm.create_model(architecture, num_classes=num_classes)
    save_for_hf(model, path, safe_serialization=True)
    return model


def _assert_started_from(student, source, num_labels):
    source_state = source.state_dict()
    for key, value in student.state_dict().items():
        if key.startswith("fc."):
            continue
        torch.testing.assert_close(value, source_state[key], rtol=0, atol=0)
    assert student.num_classes == num_labels and student.fc.out_features == num_labels


def _train_a_few_steps(tmp_path, feed_config_factory, synthetic_images, student_spec, **overrides):
    args = feed_config_factory(tmp_path / "run", student=student_spec, **overrides)
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(n=16))
    before = trainer.student.fc.weight.detach().clone()
    trainer.train()
    assert not torch.equal(before, trainer.student.fc.weight)  # it trained
    return trainer


def test_local_dir_student_keeps_the_backbone_and_gets_a_new_classifier(
    tmp_path, feed_config_factory, synthetic_images
):
    source = _source_folder(tmp_path / "source")
    for spec in (f"local-dir:{tmp_path / 'source'}", str(tmp_path / "source")):
        student = create_student(feed_config_factory(tmp_path / "out", student=spec, num_labels=5))
        _assert_started_from(student, source, 5)
    trainer = _train_a_few_steps(tmp_path, feed_config_factory, synthetic_images, f"local-dir:{tmp_path / 'source'}")
    assert trainer.student.num_classes == 5
    assert student_base_model(trainer.args) is None  # a folder of this machine is no Hub id


def test_hub_student_is_pinned_and_named_as_base_model(loopback_hub, tmp_path, feed_config_factory, synthetic_images):
    source = _source_folder(tmp_path / "source", seed=4)
    api = HfApi(token=HUB_TOKEN)
    api.create_repo("tester/student-source", exist_ok=True)
    sha = api.upload_folder(repo_id="tester/student-source", folder_path=tmp_path / "source").oid
    args = feed_config_factory(tmp_path / "out", student="hf-hub:tester/student-source", num_labels=5)
    _assert_started_from(create_student(args), source, 5)
    assert student_base_model(args) == f"tester/student-source@{sha}"
    _train_a_few_steps(tmp_path, feed_config_factory, synthetic_images, "hf-hub:tester/student-source")


def test_timm_name_tag_loads_its_pretrained_weights(loopback_hub, tmp_path, feed_config_factory):
    # timm reads resnet10t.c3_in1k from the Hub repo timm/resnet10t.c3_in1k: here the loopback Hub's copy.
    torch.manual_seed(5)
    source = timm.create_model("resnet10t")
    safetensors.torch.save_file(source.state_dict(), tmp_path / "model.safetensors")
    api = HfApi(token=HUB_TOKEN)
    api.create_repo("timm/resnet10t.c3_in1k", exist_ok=True)
    api.upload_file(
        path_or_fileobj=tmp_path / "model.safetensors",
        path_in_repo="model.safetensors",
        repo_id="timm/resnet10t.c3_in1k",
    )
    args = feed_config_factory(tmp_path / "out", student="resnet10t.c3_in1k", num_labels=5)
    _assert_started_from(create_student(args), source, 5)
    assert student_base_model(args) == "timm/resnet10t.c3_in1k"
    assert student_base_model(feed_config_factory(tmp_path / "out", student="resnet10t")) is None  # fresh init


def test_pickle_weights_need_the_opt_in_and_bad_specs_are_named(tmp_path, feed_config_factory):
    source = timm.create_model("resnet8_cifar", num_classes=7)
    _source_folder(tmp_path / "pickled")
    (tmp_path / "pickled" / "model.safetensors").unlink()
    torch.save(source.state_dict(), tmp_path / "pickled" / "pytorch_model.bin")
    spec = f"local-dir:{tmp_path / 'pickled'}"
    with pytest.raises(StudentSourceError, match=r"^student .*pickle.*teacher_allow_pickle=True"):
        create_student(feed_config_factory(tmp_path / "out", student=spec))
    allowed = create_student(feed_config_factory(tmp_path / "out", student=spec, teacher_allow_pickle=True))
    _assert_started_from(allowed, source, 5)
    with pytest.raises(StudentSourceError, match=r"student 'resnet10t.nope': timm has no pretrained weights"):
        create_student(feed_config_factory(tmp_path / "out", student="resnet10t.nope"))
    with pytest.raises(
        ValueError, match=r"student 'resnet_nope' is not a timm model name \(see timm.list_models\(\)\), nor"
    ):
        create_student(feed_config_factory(tmp_path / "out", student="resnet_nope"))
