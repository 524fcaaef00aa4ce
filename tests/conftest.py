"""Shared fixtures: Hugging Face caches in a temp dir, a loopback Hub, tiny models and tiny synthetic data."""

from __future__ import annotations

import os
import tempfile

from hub_server import LoopbackHub, free_port

# Before transformers/datasets/huggingface_hub are imported (they read these at import time): caches go to a
# temp dir and every Hub request goes to the loopback Hub below, never to huggingface.co.
HUB_PORT = free_port()
HUB_TOKEN = "hf_test_token"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="feed-hf-tests-hf-home-")
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_DISABLE_XET"] = "1"  # the loopback Hub speaks classic LFS, not Xet
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _offline in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
    os.environ.pop(_offline, None)  # offline mode would refuse the loopback Hub too; tokens come per test
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

import feed_hf  # noqa: E402,F401  (registers the CIFAR architectures)


class SyntheticImages(torch.utils.data.Dataset):
    """`n` random 32×32 images with labels that depend on the image (so a model can learn them)."""

    def __init__(self, n: int = 64, num_classes: int = 5, seed: int = 0, size: int = 32) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, num_classes, (n,), generator=generator)
        self.pixels = torch.randn(n, 3, size, size, generator=generator) * 0.5
        self.pixels[:, 0] += self.labels.view(-1, 1, 1).float()  # class signal in the red channel

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


@pytest.fixture(scope="session")
def loopback_hub():
    """The Hub at HF_ENDPOINT for this test session (real huggingface_hub/timm/transformers clients)."""
    hub = LoopbackHub(port=HUB_PORT, valid_tokens={HUB_TOKEN}).start()
    yield hub
    hub.stop()


@pytest.fixture
def synthetic_images():
    return SyntheticImages


@pytest.fixture
def tiny_teachers():
    """Two CIFAR ResNet-8 teachers with different seeds and a class count unlike the student's."""
    teachers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        teachers.append(timm.create_model("resnet8_cifar", num_classes=7))
    return teachers


def make_feed_config(output_dir, **overrides) -> feed_hf.FeedConfig:
    """A FeedConfig for seconds-long CPU runs; overrides win."""
    settings = dict(
        output_dir=str(output_dir),
        student="resnet8_cifar",
        num_labels=5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        max_steps=4,
        learning_rate=0.05,
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    settings.update(overrides)
    return feed_hf.FeedConfig(**settings)


@pytest.fixture
def feed_config_factory():
    return make_feed_config
