"""A plain upload of an output folder publishes the export alone (issue 19, item 12): `upload_folder(output_dir)`
and `hf upload` (the real huggingface_hub against the loopback Hub) take neither the export's versions, nor
local_sources.json, the connectors, or the Trainer's checkpoints (optimizer state, training_args.bin with its
token), and no file they take names a path of this machine."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import HUB_TOKEN
from huggingface_hub import HfApi
from recipe_helpers import load_recipe, tiny_argv

from feed_hf.publishing.export import export_file
from feed_hf.publishing.local_checkpoints import CHECKPOINTS_DIR
from feed_hf.training.checkpoints import last_complete_checkpoint

PUBLISHED = {
    ".gitattributes",  # the repo's own
    "README.md",
    "config.json",
    "model.safetensors",
    "feed_config.json",
    "results.json",
    "trainer_state.json",
    "all_results.json",
    "train_results.json",
    "eval_results.json",
}


def _assert_nothing_local(files: dict[str, bytes], root: Path) -> None:
    for name, data in files.items():
        assert str(root).encode() not in data and b"/tmp/" not in data, f"a local path in the uploaded {name}"
        assert HUB_TOKEN.encode() not in data, f"the token in the uploaded {name}"


def test_a_plain_upload_of_an_output_folder_publishes_the_export_alone(loopback_hub, tmp_path):
    teachers = load_recipe("train_teachers").main(tiny_argv(tmp_path / "teachers", "--teacher_seeds", "1"))
    output_dir = tmp_path / "student run"
    argv = tiny_argv(output_dir, "--teachers", str(tmp_path / "teachers" / "teacher_0"), "--hub_token", HUB_TOKEN)
    argv += ["--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "1"]
    load_recipe("feed_parallel").main(argv)
    assert len(teachers) == 1
    # What must stay here is here, and still serves: resume, analysis, the connectors.
    checkpoint = Path(last_complete_checkpoint(output_dir))
    assert checkpoint.name == "checkpoint-2" and (checkpoint / "optimizer.pt").is_file()
    assert checkpoint.is_symlink() and sorted(p.name for p in (output_dir / CHECKPOINTS_DIR).iterdir()) == [
        "checkpoint-2"  # save_total_limit=1: checkpoint-1 went, link and folder
    ]
    assert export_file(output_dir, "local_sources.json").is_file()
    assert export_file(output_dir, "feed_connectors.safetensors").is_file()

    api = HfApi(token=HUB_TOKEN)
    api.create_repo("tester/plain-upload")
    api.upload_folder(folder_path=output_dir, repo_id="tester/plain-upload")
    uploaded = loopback_hub.files("tester/plain-upload")
    assert set(uploaded) == PUBLISHED
    _assert_nothing_local(uploaded, tmp_path)

    env = dict(os.environ, HF_TOKEN=HUB_TOKEN)
    hf = Path(sys.executable).with_name("hf")
    done = subprocess.run(
        [str(hf), "upload", "tester/plain-hf-upload", str(output_dir), "."], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    uploaded = loopback_hub.files("tester/plain-hf-upload")
    assert set(uploaded) == PUBLISHED
    _assert_nothing_local(uploaded, tmp_path)
