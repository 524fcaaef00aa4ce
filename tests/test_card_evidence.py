"""A card made from one run of a paired-seed experiment states what the whole experiment showed (issue 23, item 5):
`feed-hf card --evidence REPORT.json` adds the primary test, every paired comparison and its minimum detectable
difference; a file that is not an experiment report is refused in one line."""

import json
from pathlib import Path

import pytest
from conftest import SyntheticImages, make_feed_config
from huggingface_hub import ModelCard

from feed_hf import FeedTrainer
from feed_hf_cli import run_command

ROUND_TWO = Path(__file__).resolve().parent.parent / "results" / "cifar10_cpu.json"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("card") / "run"
    FeedTrainer(args=make_feed_config(folder), train_dataset=SyntheticImages(32)).train()
    return folder


def _section(card_text: str) -> str:
    return card_text.split("### Across seeds")[1].split("\n## ")[0]


def test_the_card_carries_every_paired_comparison_of_the_experiment_as_it_measured_them(export_dir):
    run_command("card", ["--export_dir", str(export_dir), "--evidence", str(ROUND_TWO)])
    section = _section(ModelCard.load(export_dir / "README.md").text)
    report = json.loads(ROUND_TWO.read_text())
    assert "`cifar10_cpu.json`" in section and str(ROUND_TWO.parent) not in section  # its name, never a path
    assert "No pre-registered primary test" in section  # round 2 named none
    for name, comparison in report["paired"].items():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {comparison['mean_difference']:+.2f} | {comparison['p']:.3f} | {comparison['mdd']:.2f} |" in row


@pytest.mark.parametrize("t_p, verdict", [(0.0123, "**significant**"), (0.2, "**not significant**")])
def test_the_preregistered_primary_test_is_stated_with_its_verdict_and_mdd(export_dir, tmp_path, t_p, verdict):
    report = json.loads(ROUND_TWO.read_text())
    report["preregistered"] = {
        "plan": {"primary": "pfeed_3 - ce", "alpha": 0.05},
        "primary": {"t_p": t_p, "wilcoxon_p": 0.1, "mean_difference": 0.5, "n": 8, "mdd": 0.91,
                    "significant": t_p < 0.05},
    }  # fmt: skip
    path = tmp_path / "powered.json"
    path.write_text(json.dumps(report))
    run_command("card", ["--export_dir", str(export_dir), "--evidence", str(path)])
    section = _section(ModelCard.load(export_dir / "README.md").text)
    stated = f"`pfeed_3 - ce` > 0: +0.50 points over 8 paired seeds, one-sided paired t p = {t_p:.4f}: {verdict}"
    assert stated in section
    assert "detects a difference of 0.91 points" in section


def test_a_file_that_is_not_an_experiment_report_is_refused_and_the_card_is_kept(export_dir, tmp_path):
    run_command("card", ["--export_dir", str(export_dir)])
    before = (export_dir / "README.md").read_text()
    assert "### Across seeds" not in before  # no evidence given: no section
    wrong = tmp_path / "results.json"
    wrong.write_text(json.dumps({"metrics": {"eval_top1": 50.0}}))
    with pytest.raises(ValueError, match=r"--evidence .*results.json: not an experiment report"):
        run_command("card", ["--export_dir", str(export_dir), "--evidence", str(wrong)])
    with pytest.raises(FileNotFoundError, match="no such file"):
        run_command("card", ["--export_dir", str(export_dir), "--evidence", str(tmp_path / "absent.json")])
    assert (export_dir / "README.md").read_text() == before
