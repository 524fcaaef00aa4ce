"""A transformers student through FeedConfig.student (`local-dir:`/`hf-hub:`): trains with FEED, exports a
save_pretrained folder with its image processor that from_pretrained and pipeline load in a fresh process with the
logits training evaluated, and a card saying `library_name: transformers`. timm students are unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from foundation_fixtures import SIZE, push_folder, save_family
from huggingface_hub import ModelCard
from PIL import Image
from test_transformers_students import _FRESH_PROCESS

from feed_hf import FeedTrainer
from feed_hf.publishing.hub import check_pushable
from feed_hf.transformers_models.adapter import TransformersVisionModel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PIXELS = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def _fresh_process(tmp_path, folder) -> dict:
    torch.save(PIXELS, tmp_path / "pixels.pt")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    image.save(tmp_path / "image.png")
    run = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(folder), str(tmp_path / "pixels.pt"), str(tmp_path / "image.png")],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("source", ["local-dir", "hf-hub"])
def test_transformers_student_trains_and_exports_for_from_pretrained_and_pipeline(
    loopback_hub, tmp_path, source, feed_config_factory, synthetic_images, tiny_teachers
):
    folder = tmp_path / "vit"
    save_family(folder, "vit", classifier=True)
    if source == "hf-hub":
        push_folder(folder, "tester/student-vit")
    spec = f"local-dir:{folder}" if source == "local-dir" else "hf-hub:tester/student-vit"
    args = feed_config_factory(tmp_path / "run", student=spec, feed_beta=[1.0], num_labels=5, max_steps=2)
    trainer = FeedTrainer(teachers=tiny_teachers[:1], args=args, train_dataset=synthetic_images(32))
    assert isinstance(trainer.student, TransformersVisionModel)
    before = [p.detach().clone() for p in trainer.student.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.student.parameters(), strict=True))
    trainer.save_model()
    export = tmp_path / "run"
    assert (export / "preprocessor_config.json").is_file() and (export / "model.safetensors").is_file()
    reloaded = _fresh_process(tmp_path, export)
    with torch.no_grad():
        expected = trainer.student.eval()(PIXELS)
    torch.testing.assert_close(torch.tensor(reloaded["logits"]), expected, rtol=0, atol=0)
    assert len(reloaded["pipeline"]) == 5
    assert ModelCard.load(export / "README.md").data.library_name == "transformers"
    check_pushable(export)  # what a push checks passes for this format too
    for name in ("config.json", "feed_config.json", "results.json", "README.md", "preprocessor_config.json"):
        assert str(tmp_path) not in (export / name).read_text()  # no path of this machine in what may be pushed


def test_a_timm_student_keeps_timm_format_and_card(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    args = feed_config_factory(tmp_path / "run", feed_beta=[1.0], max_steps=1)
    trainer = FeedTrainer(teachers=tiny_teachers[:1], args=args, train_dataset=synthetic_images(16))
    trainer.train()
    trainer.save_model()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["architecture"] == "resnet8_cifar"
    assert "student_library" not in json.loads((tmp_path / "run" / "feed_config.json").read_text())
    assert ModelCard.load(tmp_path / "run" / "README.md").data.library_name == "timm"


def test_the_cli_trains_a_transformers_student_from_transformers_teachers(tmp_path):
    from recipe_helpers import tiny_argv

    from feed_hf_cli import run_command

    save_family(tmp_path / "student", "convnext", classifier=True)
    save_family(tmp_path / "teacher", "resnet")
    output_dir = tmp_path / "run"
    argv = tiny_argv(
        output_dir, "--student", f"local-dir:{tmp_path / 'student'}", "--teachers", str(tmp_path / "teacher")
    )
    results = run_command("parallel", [*argv, "--feed_beta", "1.0", "--input_size", "32"])
    assert results["feed"]["student_library"] == "transformers" and "eval_top1" in results["metrics"]
    assert json.loads((output_dir / "config.json").read_text())["model_type"] == "convnext"
    assert (output_dir / "preprocessor_config.json").is_file()
    evaluated = run_command("evaluate", ["--model", str(output_dir), "--split", "eval", *argv[:6]])
    assert evaluated["top1"] == results["metrics"]["eval_top1"]  # the export measures what training reported
