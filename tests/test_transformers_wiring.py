"""transformers-format teachers through the normal paths: the same specs as timm ones (`hf-hub:`, `local-dir:`),
dispatched on the checkpoint's format, their preprocessing from their processor, the licence on the card."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from foundation_fixtures import FAMILIES, MEAN, SIZE, STD, push_folder, save_family
from timm.data import resolve_model_data_config

from feed_hf import FeedTrainer
from feed_hf.teachers.frozen import load_teacher_model
from feed_hf.transformers_models.adapter import TransformersVisionModel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GRID = {
    "swin": 8,
    "swinv2": 8,
    "convnext": 1,
    "convnextv2": 1,
    "resnet": 1,
    "regnet": 1,
    "dinov3_convnext": 1,
}  # else 32/8 = 4


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_a_teacher_through_feed_trainer_from_the_hub(
    loopback_hub, tmp_path, family, feed_config_factory, synthetic_images
):
    folder = tmp_path / family
    save_family(folder, family)
    sha = push_folder(folder, f"tester/tiny-{family}")
    args = feed_config_factory(tmp_path / "run", teachers=[f"hf-hub:tester/tiny-{family}"], feed_beta=[1.0])
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(16))
    teacher = trainer.teachers[0]
    assert isinstance(teacher.model, TransformersVisionModel)
    assert teacher.model.pretrained_cfg["hf_hub_id"] == f"tester/tiny-{family}@{sha}"  # pinned
    grid = GRID.get(family, SIZE // 8)
    assert tuple(teacher.feature_shape[1:]) == (grid, grid)
    # Its mean/std are its processor's (not ImageNet's): the student's pixels are re-normalised to them.
    student = resolve_model_data_config(trainer.student)
    expected = torch.tensor(student["std"]) / torch.tensor(STD)
    assert torch.allclose(teacher.input_scale.flatten(), expected)
    expected_shift = (torch.tensor(student["mean"]) - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(teacher.input_shift.flatten(), expected_shift)


def test_a_transformers_teacher_trains_a_student_and_its_licence_reaches_the_record(
    tmp_path, feed_config_factory, synthetic_images, caplog
):
    folder = tmp_path / "dino"
    save_family(folder, "dinov2", card_license="cc-by-nd-4.0")
    args = feed_config_factory(tmp_path / "run", teachers=[f"local-dir:{folder}"], feed_beta=[1.0], max_steps=2)
    with caplog.at_level(logging.WARNING):
        trainer = FeedTrainer(args=args, train_dataset=synthetic_images(32))
    assert "cc-by-nd-4.0" in caplog.text and "derivative" in caplog.text  # the log states it
    before = [p.detach().clone() for p in trainer.student.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.student.parameters(), strict=True))
    assert any("feed/loss_t0" in entry for entry in trainer.state.log_history)
    trainer.save_model()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    teacher_source = results["license"]["sources"][0]
    assert teacher_source["role"] == "teacher 0" and teacher_source["license"] == "cc-by-nd-4.0"
    card = (tmp_path / "run" / "README.md").read_text()
    assert "cc-by-nd-4.0 forbids derivatives" in card  # stated on the card, not decided for the user


def test_pickle_only_transformers_teacher_is_refused_without_opt_in(tmp_path):
    folder = tmp_path / "vit"
    model = save_family(folder, "vit")
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # as older repos ship it
    with pytest.raises(Exception, match="pickle"):
        load_teacher_model(f"local-dir:{folder}")
    assert isinstance(load_teacher_model(f"local-dir:{folder}", allow_pickle=True), TransformersVisionModel)


def test_a_teacher_too_large_for_memory_is_refused_through_the_trainer(
    tmp_path, feed_config_factory, synthetic_images, monkeypatch
):
    folder = tmp_path / "vit"
    save_family(folder, "vit")
    monkeypatch.setattr("feed_hf.teachers.memory.available_memory_bytes", lambda device=None: 1024)
    args = feed_config_factory(tmp_path / "run", teachers=[str(folder)], feed_beta=[1.0])
    with pytest.raises(ValueError, match=r"needs about .* GiB .*lower the batch size"):
        FeedTrainer(args=args, train_dataset=synthetic_images(16))


def test_a_processor_contradicting_the_model_is_refused_through_the_trainer(
    tmp_path, feed_config_factory, synthetic_images
):
    folder = tmp_path / "vit"
    save_family(folder, "vit")
    from foundation_fixtures import save_processor

    save_processor(folder, size=30)  # not a multiple of the patch size 8
    args = feed_config_factory(tmp_path / "run", teachers=[str(folder)], feed_beta=[1.0])
    with pytest.raises(Exception, match="30"):
        FeedTrainer(args=args, train_dataset=synthetic_images(16))


def test_a_model_whose_outputs_cannot_form_a_map_is_refused_in_one_line(
    tmp_path, feed_config_factory, synthetic_images
):
    import transformers
    from foundation_fixtures import save_processor

    folder = tmp_path / "bert"
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(config).save_pretrained(folder)  # a text model: no pixel_values, no map
    save_processor(folder)
    args = feed_config_factory(tmp_path / "run", teachers=[f"local-dir:{folder}"], feed_beta=[1.0])
    with pytest.raises(Exception, match="bert") as refused:
        FeedTrainer(args=args, train_dataset=synthetic_images(16))
    assert "\n" not in str(refused.value)


def test_a_cached_transformers_teacher_loads_offline_through_the_dispatch(loopback_hub, tmp_path):
    import huggingface_hub

    save_family(tmp_path / "vit", "vit")
    sha = push_folder(tmp_path / "vit", "tester/offline-vit")
    online = load_teacher_model(f"hf-hub:tester/offline-vit@{sha}")
    with pytest.MonkeyPatch.context() as offline_mode:
        offline_mode.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        seen = len(loopback_hub.requests_seen)
        offline = load_teacher_model(f"hf-hub:tester/offline-vit@{sha}")  # the format read from the cache too
        assert len(loopback_hub.requests_seen) == seen
    pixels = torch.randn(1, 3, SIZE, SIZE)
    torch.testing.assert_close(offline.feature_map(pixels), online.feature_map(pixels), rtol=0, atol=0)


def test_the_memory_check_counts_the_teacher_dtype_it_will_run_in(
    tmp_path, feed_config_factory, synthetic_images, monkeypatch
):
    from feed_hf.teachers.memory import HEADROOM
    from feed_hf.transformers_models.sources import prepare_transformers_source
    from feed_hf.transformers_models.teachers import teacher_memory_estimate

    folder = tmp_path / "vit"
    save_family(folder, "vit")
    shell = prepare_transformers_source(str(folder)).shell
    needed = {
        dtype: teacher_memory_estimate(shell, (3, SIZE, SIZE), 16, dtype).total_bytes * HEADROOM
        for dtype in (torch.float32, torch.bfloat16)
    }
    between = int((needed[torch.float32] + needed[torch.bfloat16]) / 2)  # bf16 fits, float32 does not
    monkeypatch.setattr("feed_hf.teachers.memory.available_memory_bytes", lambda device=None: between)
    for dtype, fits in (("float32", False), ("bfloat16", True)):
        args = feed_config_factory(tmp_path / dtype, teachers=[str(folder)], feed_beta=[1.0], teacher_dtype=dtype)
        if fits:
            FeedTrainer(args=args, train_dataset=synthetic_images(16))
        else:
            with pytest.raises(ValueError, match="teacher_dtype"):
                FeedTrainer(args=args, train_dataset=synthetic_images(16))
