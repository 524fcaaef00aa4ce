"""Which CPU settings change the demo's bits, and what pinning them would cost: 30 SGD steps, one fingerprint.

    .venv/bin/python benchmarks/demo_numerics_probe.py [--no_mkldnn]

Trains resnet8_cifar (the demo's student) for 30 steps on one fixed random batch (64 × 3 × 16 × 16, the demo's
input size, SGD as in the demo) and prints torch's CPU capability, the thread count, the last loss, a SHA-256
prefix of the weights and the seconds taken. Run it under different settings and compare fingerprints, e.g.
`ATEN_CPU_CAPABILITY=default|avx2|avx512`, `OMP_NUM_THREADS=1|2`, `ONEDNN_MAX_CPU_ISA=AVX2|SSE41`,
`MKL_CBWR=COMPATIBLE`; `--no_mkldnn` turns oneDNN off (convolutions then run as im2col + MKL GEMM).
On a busy machine add `OMP_WAIT_POLICY=PASSIVE`: it changes the speed, not the bits.
"""

from __future__ import annotations

import hashlib
import sys
import time

import timm
import torch

import feed_hf  # noqa: F401  (registers resnet8_cifar with timm)


def fingerprint(steps: int = 30) -> str:
    torch.manual_seed(0)
    model = timm.create_model("resnet8_cifar", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(64, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    started = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = b"".join(parameter.detach().numpy().tobytes() for parameter in model.parameters())
    return (
        f"capability={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()} "
        f"mkldnn={torch.backends.mkldnn.enabled} loss={loss.item():.10f} "
        f"weights={hashlib.sha256(weights).hexdigest()[:12]} seconds={time.perf_counter() - started:.1f}"
    )


if __name__ == "__main__":
    if "--no_mkldnn" in sys.argv[1:]:
        torch.backends.mkldnn.enabled = False
    print(fingerprint())
