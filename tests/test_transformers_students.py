"""transformers students: a fresh classifier for the run's classes, FeedStudent training them as timm students,
a size change the export keeps, and an export that from_pretrained and pipeline load with identical logits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from foundation_fixtures import MEAN, SIZE, STD, family_config, save_family
from PIL import Image
from timm.data import resolve_model_data_config

from feed_hf.data.transforms import build_transform
from feed_hf.method.modeling import build_feed_student
from feed_hf.teachers.frozen import FrozenTeacher
from feed_hf.teachers.sources import TeacherSourceError
from feed_hf.training.resolution import set_student_input_size
from feed_hf.transformers_models.students import (
    load_transformers_student,
    save_transformers_student,
    transformers_student_from_config,
)
from feed_hf.transformers_models.teachers import load_transformers_teacher

PIXELS = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
DATA_CONFIG = {"input_size": (3, SIZE, SIZE), "mean": MEAN, "std": STD, "interpolation": "bilinear", "crop_pct": 1.0}


def test_pretrained_student_gets_a_fresh_classifier_and_trains_inside_feed_student(tmp_path):
    source = save_family(tmp_path / "student", "convnext", classifier=True)  # 2 classes of its own
    save_family(tmp_path / "teacher", "dinov2_registers", seed=1)
    student = load_transformers_student(str(tmp_path / "student"), num_labels=5)
    assert student.num_classes == 5 and student.model.config.num_labels == 5
    assert student.pretrained_cfg["mean"] == pytest.approx(MEAN)
    torch.testing.assert_close(student.model.convnext.state_dict(), source.convnext.state_dict(), rtol=0, atol=0)
    adapter = load_transformers_teacher(str(tmp_path / "teacher"))
    teacher = FrozenTeacher(adapter, resolve_model_data_config(student), student_map_size=(1, 1))
    feed_student = build_feed_student(student, [teacher]).train()
    before = {name: value.clone() for name, value in feed_student.named_parameters()}
    outputs = feed_student(PIXELS)
    assert outputs.logits.shape == (4, 5) and outputs.connected_feature_maps[0].shape == (4, 32, 1, 1)
    teacher_map, _ = teacher(PIXELS)
    loss = torch.nn.functional.cross_entropy(outputs.logits, torch.arange(4)) + (
        (outputs.connected_feature_maps[0] - teacher_map).abs().mean()
    )
    loss.backward()
    torch.optim.SGD(feed_student.parameters(), lr=0.1).step()
    changed = {name for name, value in feed_student.named_parameters() if not torch.equal(value, before[name])}
    assert any(name.startswith("student.model.convnext.") for name in changed)
    assert any(name.startswith("student.model.classifier.") for name in changed)
    assert any(name.startswith("connectors.0.") for name in changed)


_FRESH_PROCESS = """
import json, sys, torch, transformers
folder = sys.argv[1]
model = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
with torch.no_grad():
    logits = model(torch.load(sys.argv[2])).logits
classify = transformers.pipeline("image-classification", model=folder, top_k=None)
print(json.dumps({"logits": logits.tolist(), "pipeline": classify(sys.argv[3]), "id2label": model.config.id2label}))
"""


@pytest.mark.parametrize("family", ["vit", "convnext", "beit"])  # beit: its own pooler
def test_export_loads_in_a_fresh_process_with_identical_logits(tmp_path, family):
    torch.manual_seed(0)
    student = transformers_student_from_config(family_config(family), num_labels=3, data_config=DATA_CONFIG).eval()
    folder = save_transformers_student(student, tmp_path / "export", label_names=["cat", "dog", "eel"])
    torch.save(PIXELS, tmp_path / "pixels.pt")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    image.save(tmp_path / "image.png")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(folder), str(tmp_path / "pixels.pt"), str(tmp_path / "image.png")],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    reloaded = json.loads(run.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(reloaded["logits"]), student(PIXELS), rtol=0, atol=0)
        eval_pixels = build_transform(resolve_model_data_config(student), training=False)(image)
        expected = torch.softmax(student(eval_pixels[None])[0], dim=0)
    scores = {entry["label"]: entry["score"] for entry in reloaded["pipeline"]}
    assert set(scores) == {"cat", "dog", "eel"}
    for index, label in enumerate(["cat", "dog", "eel"]):
        assert scores[label] == pytest.approx(expected[index].item(), abs=1e-5)
    assert str(tmp_path) not in (folder / "config.json").read_text()  # no local path in what may be pushed


def test_a_fixed_size_student_runs_and_exports_at_the_size_it_was_given(tmp_path):
    source = save_family(tmp_path / "vit", "vit", classifier=True)
    student = load_transformers_student(str(tmp_path / "vit"), num_labels=2)
    set_student_input_size(student, (16, 16))  # what feed_hf.training.resolution does for an input_size of 16
    assert student.model.config.image_size == 16 and tuple(student.pretrained_cfg["input_size"]) == (3, 16, 16)
    small = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        own = source.vit.embeddings.interpolate_pos_encoding(torch.zeros(1, 5, 32), 16, 16)  # transformers' resampling
        torch.testing.assert_close(student.model.vit.embeddings.position_embeddings, own)
        logits = student.eval()(small)
    save_transformers_student(student, tmp_path / "export")
    assert str(tmp_path) not in (tmp_path / "export" / "config.json").read_text()  # loaded from a folder: no path
    reloaded = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(small).logits, logits, rtol=0, atol=0)  # no interpolation asked


def test_a_student_with_relative_position_tables_runs_and_exports_at_another_size(tmp_path):
    """BEiT as microsoft/beit-* ships (relative position bias per layer): rebuilt at 16 px its tables are resampled
    as BEiT resamples them itself when run at 16 px, so the export gives the logits the source model gives there."""
    source = save_family(tmp_path / "beit", "beit", classifier=True, use_relative_position_bias=True)
    student = load_transformers_student(str(tmp_path / "beit"), num_labels=2)
    set_student_input_size(student, (16, 16))
    assert student.model.config.image_size == 16
    small = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = student.eval()(small)
        pooled = student.forward_head(student.forward_features(small), pre_logits=True)  # the head is new
        torch.testing.assert_close(pooled, source.beit(small).pooler_output, rtol=1e-5, atol=1e-6)  # BEiT's own
    save_transformers_student(student, tmp_path / "export")
    reloaded = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(small).logits, logits, rtol=0, atol=0)


def test_label_free_student_is_a_backbone_and_exports_as_one(tmp_path):
    save_family(tmp_path / "dinov2", "dinov2")
    student = load_transformers_student(str(tmp_path / "dinov2"), num_labels=0)
    assert student.num_classes == 0 and type(student.model).__name__ == "Dinov2Model"
    with torch.no_grad():
        assert student.eval()(PIXELS).shape == (4, 64)  # pooled features: class token + patch mean
    save_transformers_student(student, tmp_path / "export")
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(PIXELS).last_hidden_state, student.model(PIXELS).last_hidden_state, rtol=0, atol=0
        )


def test_student_refusals_name_the_student_and_the_fix(tmp_path):
    model = save_family(tmp_path, "resnet")
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(TeacherSourceError, match=r"^student .*only as a pickle file.*teacher_allow_pickle=True"):
        load_transformers_student(str(tmp_path), num_labels=3)
    with pytest.raises(ValueError, match=r"'clip_vision_model' has no image-classification model.*CLIPConfig"):
        transformers_student_from_config(family_config("clip_vision"), num_labels=3)
    student = transformers_student_from_config(family_config("clip"), num_labels=3, data_config=DATA_CONFIG)
    assert type(student.model).__name__ == "CLIPForImageClassification"
    with pytest.raises(ValueError, match=r"2 label names for a student with 3 classes"):
        save_transformers_student(student, tmp_path / "export", label_names=["a", "b"])
    assert not (tmp_path / "export").exists()
