#!/usr/bin/env bash
# GPU step-throughput benchmark sized for a 10-minute window on one H200 (issue 5): ResNet-20 student,
# 2 ResNet-56 teachers, CIFAR-size inputs, batch 256; eager fp32, then bf16 teachers + channels_last, then
# the same with torch.compile. Prints three tables and leaves JSON under runs/benchmarks/.
#   bash benchmarks/gpu_h200.sh            (from the repository root, with the package installed)
set -euo pipefail
common=(--device cuda --num_teachers 2 --batch_size 256 --warmup 5 --steps 20 --rounds 5)
python benchmarks/step_throughput.py "${common[@]}" --output_json runs/benchmarks/gpu_fp32.json
python benchmarks/step_throughput.py "${common[@]}" --teacher_dtype bfloat16 --channels_last true \
    --output_json runs/benchmarks/gpu_bf16_cl.json
python benchmarks/step_throughput.py "${common[@]}" --teacher_dtype bfloat16 --channels_last true --compile true \
    --output_json runs/benchmarks/gpu_bf16_cl_compile.json
