"""recipes/configs/foundation_label_free.yaml run as shipped, with tiny transformers teachers of the same classes
(DINOv2, SigLIP) on the loopback Hub and a tiny imagefolder in place of the placeholders, then judged as a backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from foundation_fixtures import push_folder, save_family
from recipe_helpers import RECIPES, load_recipe
from test_backbone_evaluation import _colour_folder

from feed_hf_cli import run_command

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CONFIG = RECIPES / "configs" / "foundation_label_free.yaml"


def test_the_foundation_recipe_runs_with_tiny_hub_teachers_then_probes(loopback_hub, tmp_path):
    shipped = yaml.safe_load(CONFIG.read_text())
    assert [spec.startswith("hf-hub:") for spec in shipped["teachers"]] == [True, True]
    assert shipped["feed_balance"] == "phi_s" and shipped["label_column"] == "none"
    teachers = []
    for family in ("dinov2", "siglip"):
        save_family(tmp_path / family, family, card_license="apache-2.0")
        push_folder(tmp_path / family, f"tester/recipe-{family}")
        teachers.append(f"hf-hub:tester/recipe-{family}")
    data = _colour_folder(tmp_path / "images")
    tiny = ["--dataset", str(data), "--teachers", *teachers, "--student", "resnet8_cifar", "--input_size", "32"]
    tiny += ["--max_steps", "2", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8"]
    tiny += [
        "--logging_steps",
        "1",
        "--feed_balance_samples",
        "8",
        "--teacher_dtype",
        "float32",
        "--eval_strategy",
        "no",
    ]
    tiny += ["--save_strategy", "no", "--use_cpu", "true", "--dataloader_num_workers", "0", "--disable_tqdm", "true"]
    output_dir = tmp_path / "foundation"
    results = load_recipe("feed_parallel").main([str(CONFIG), *tiny, "--output_dir", str(output_dir)])
    assert results["label_free"] and results["feed"]["feed_balance"] == "phi_s"
    assert [t["balance"]["method"] for t in results["feed"]["resolved_teachers"]] == ["phi_s", "phi_s"]
    history = results["log_history"]
    assert any({"feed/summary_t0", "feed/summary_t1", "feed/loss_t1"} <= set(entry) for entry in history)
    report = run_command(
        "evaluate",
        ["--model", str(output_dir), "--protocol", "knn", "linear", "--dataset", str(data), "--split", "test"],
    )
    assert report["knn"]["top1"] == 100.0 and report["linear"]["top1"] == 100.0  # red vs blue: the known answer
    assert "## Judged as a backbone" in Path(output_dir / "README.md").read_text()
