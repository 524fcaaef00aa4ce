"""Step time and memory of FEED training: FeedTrainer against a hand-written loop and against its parts.

    python benchmarks/step_throughput.py                                  # CPU defaults (see docs/performance.md)
    python benchmarks/step_throughput.py --num_teachers 2 --steps 10 --rounds 5
    python benchmarks/step_throughput.py --device cuda --teacher_dtype bfloat16 --channels_last true --compile true

Measured in one process, interleaved round by round after warm-up, on pre-collated tensors (data loading
excluded):
  (a) ce            plain CE training step of the student
  (b) teacher       one teacher's inference forward (plain timm model, inference_mode)
  (b') frozen       one teacher as FeedTrainer runs it (FrozenTeacher: no_grad, stop-early feature tap)
  (e) connectors    the N connectors' forward + backward on a student map
  (c) hand_feed     a hand-written FEED step (student fwd/bwd, N teacher forwards, connectors, Eq. 1, SGD)
  (d) trainer       FeedTrainer.training_step + optimizer/scheduler step
  (d') cached       (d) with cache_teacher_features (teacher maps looked up, not computed)
Memory: growth of the peak RSS over the set-up state (the kernel's peak counter is reset after set-up),
each mode in its own subprocess (CPU), or max_memory_allocated over allocated-at-start (GPU).
Prints a markdown table and writes JSON (--output_json).
"""

from __future__ import annotations

import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch.nn import functional as F
from transformers import HfArgumentParser

import feed_hf  # noqa: F401  (registers the CIFAR models)
from feed_hf import FeedConfig, FeedTrainer
from feed_hf.method.connectors import FeedConnector
from feed_hf.method.losses import feed_distance
from feed_hf.publishing.run_record import hardware_description, library_versions
from feed_hf.teachers.frozen import FrozenTeacher

MODES = ("ce", "teacher", "frozen", "connectors", "hand_feed", "trainer", "cached")
BETA = 500.0


@dataclass
class BenchmarkArguments:
    student: str = field(default="resnet20_cifar", metadata={"help": "timm student."})
    teacher: str = field(default="resnet56_cifar", metadata={"help": "timm teacher (N copies, random weights)."})
    num_teachers: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "Teacher counts N."})
    batch_size: int = field(default=128, metadata={"help": "Images per step."})
    image_size: int = field(default=32, metadata={"help": "Square input size."})
    num_classes: int = field(default=100, metadata={"help": "Classes of the student."})
    warmup: int = field(default=2, metadata={"help": "Untimed steps per mode before the first round."})
    steps: int = field(default=4, metadata={"help": "Timed steps per mode per round."})
    rounds: int = field(default=3, metadata={"help": "Interleaved rounds; the median per-step time is reported."})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda."})
    teacher_dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16 (teachers)."})
    channels_last: bool = field(default=False, metadata={"help": "channels_last for student and teachers."})
    compile: bool = field(default=False, metadata={"help": "torch.compile student (trainer/hand loop) and teachers."})
    memory: bool = field(default=True, metadata={"help": "Measure memory (CPU: one subprocess per mode and N)."})
    timing: bool = field(default=True, metadata={"help": "Measure step times (off: memory only)."})
    only: str | None = field(default=None, metadata={"help": "Internal: run one mode for the memory subprocess."})
    output_json: str = field(default="runs/benchmarks/step_throughput.json", metadata={"help": "JSON output."})


class Bench:
    """Models and one batch for a teacher count N; each `mode_*` returns a zero-argument step function."""

    def __init__(self, args: BenchmarkArguments, num_teachers: int) -> None:
        torch.manual_seed(0)
        self.args, self.device, self.n = args, torch.device(args.device), num_teachers
        self.pixels = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=self.device)
        self.labels = torch.randint(0, args.num_classes, (args.batch_size,), device=self.device)
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.pixels = self.pixels.contiguous(memory_format=self.memory_format)
        self.student = self._model(args.student, args.num_classes)
        self.teachers = [self._model(args.teacher, 100).eval().requires_grad_(False) for _ in range(num_teachers)]
        self.autocast = None if args.teacher_dtype == "float32" else getattr(torch, args.teacher_dtype)

    def _model(self, name: str, num_classes: int) -> torch.nn.Module:
        return timm.create_model(name, num_classes=num_classes).to(self.device, memory_format=self.memory_format)

    def _maybe_compile(self, fn):
        return torch.compile(fn) if self.args.compile else fn

    def _connectors(self, student: torch.nn.Module) -> torch.nn.ModuleList:
        student_channels = student.feature_info[-1]["num_chs"]
        teacher_channels = self.teachers[0].feature_info[-1]["num_chs"]
        return torch.nn.ModuleList(FeedConnector(student_channels, teacher_channels) for _ in range(self.n)).to(
            self.device, memory_format=self.memory_format
        )

    def mode_ce(self):
        student = copy.deepcopy(self.student).train()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
        forward = self._maybe_compile(student)

        def step():
            loss = F.cross_entropy(forward(self.pixels), self.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def _teacher_map(self, teacher):
        def extract(pixels):
            return teacher.forward_intermediates(pixels, indices=[-1], stop_early=True, intermediates_only=True)[0]

        return self._maybe_compile(extract)

    def mode_teacher(self):
        extract = self._teacher_map(self.teachers[0])

        def step():
            with torch.inference_mode(), torch.autocast(self.device.type, self.autocast, enabled=bool(self.autocast)):
                extract(self.pixels)

        return step

    def _frozen(self, teacher) -> FrozenTeacher:
        config = timm.data.resolve_model_data_config(self.student)
        return FrozenTeacher(
            teacher,
            config,
            autocast_dtype=self.autocast,
            channels_last=self.args.channels_last,
            compile=self.args.compile,
        )

    def mode_frozen(self):
        frozen = self._frozen(self.teachers[0])
        return lambda: frozen(self.pixels)

    def mode_connectors(self):
        connectors = self._connectors(self.student)
        with torch.no_grad():
            student_map = self.student.forward_features(self.pixels)
            targets = [teacher.forward_features(self.pixels) for teacher in self.teachers]
        student_map.requires_grad_(True)

        def step():
            loss = sum(BETA * feed_distance(c(student_map), t) for c, t in zip(connectors, targets, strict=True))
            connectors.zero_grad(set_to_none=True)
            loss.backward()

        return step

    def mode_hand_feed(self):
        student = copy.deepcopy(self.student).train()
        connectors = self._connectors(student)
        parameters = list(student.parameters()) + list(connectors.parameters())
        optimizer = torch.optim.SGD(parameters, lr=0.1, momentum=0.9)
        extractors = [self._teacher_map(teacher) for teacher in self.teachers]

        def student_forward(pixels):
            final_map, (student_map,) = student.forward_intermediates(pixels, indices=[-1])
            return student.forward_head(final_map), student_map

        student_forward = self._maybe_compile(student_forward)

        def step():
            with torch.no_grad(), torch.autocast(self.device.type, self.autocast, enabled=bool(self.autocast)):
                targets = [extract(self.pixels) for extract in extractors]
            logits, student_map = student_forward(self.pixels)
            loss = F.cross_entropy(logits.float(), self.labels)
            loss = loss + sum(BETA * feed_distance(c(student_map), t) for c, t in zip(connectors, targets, strict=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def _trainer(self, cache: bool) -> FeedTrainer:
        output_dir = tempfile.mkdtemp(prefix="feed-bench-")
        args = FeedConfig(
            output_dir=output_dir,
            per_device_train_batch_size=self.args.batch_size,
            learning_rate=0.1,
            optim="sgd",
            optim_args="momentum=0.9",
            max_grad_norm=0.0,
            feed_beta=[BETA],
            logging_steps=10**9,
            report_to="none",
            use_cpu=self.device.type == "cpu",
            teacher_dtype=self.args.teacher_dtype,
            channels_last=self.args.channels_last,
            compile_teachers=self.args.compile,
            disable_tqdm=True,
            cache_teacher_features=cache,
            dataloader_pin_memory=False,
        )
        dataset = [{"pixel_values": p, "labels": y} for p, y in zip(self.pixels.cpu(), self.labels.cpu(), strict=True)]
        trainer = FeedTrainer(
            model=copy.deepcopy(self.student), teachers=copy.deepcopy(self.teachers), args=args, train_dataset=dataset
        )
        trainer.create_optimizer_and_scheduler(num_training_steps=10**6)
        trainer.current_gradient_accumulation_steps = 1  # set by the Trainer loop; one micro-batch per step
        return trainer

    def _trainer_step(self, cache: bool):
        trainer = self._trainer(cache)
        model = torch.compile(trainer.model) if self.args.compile else trainer.model
        inputs = {"pixel_values": self.pixels, "labels": self.labels}
        if cache:
            inputs["sample_index"] = torch.arange(self.args.batch_size)

        def step():
            trainer.training_step(model, inputs)
            trainer.optimizer.step()
            trainer.lr_scheduler.step()
            model.zero_grad(set_to_none=True)

        return step

    def mode_trainer(self):
        return self._trainer_step(cache=False)

    def mode_cached(self):
        return self._trainer_step(cache=True)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_modes(args: BenchmarkArguments, num_teachers: int) -> dict[str, float]:
    """Median milliseconds per step of every mode, interleaved round by round."""
    bench = Bench(args, num_teachers)
    steps = {mode: getattr(bench, f"mode_{mode}")() for mode in MODES}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, step in steps.items():
            _synchronize(bench.device)
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            _synchronize(bench.device)
            samples[mode].append((time.perf_counter() - started) * 1000 / args.steps)
    return {mode: statistics.median(values) for mode, values in samples.items()}


def _status_mb(field_name: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024  # kB → MB
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM), so the peak seen next belongs to the steps alone."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure_memory_here(args: BenchmarkArguments, mode: str, num_teachers: int) -> dict[str, float]:
    """Run one mode; its memory growth over the set-up state (RSS on CPU, allocated bytes on GPU)."""
    bench = Bench(args, num_teachers)
    step = getattr(bench, f"mode_{mode}")()
    if bench.device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.warmup + 2):
            step()
        torch.cuda.synchronize()
        return {"base_mb": base, "growth_mb": torch.cuda.max_memory_allocated() / 2**20 - base}
    reset = _reset_peak_rss()
    base = _status_mb("VmRSS")
    for _ in range(args.warmup + 2):
        step()
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"base_mb": base, "growth_mb": max(0.0, peak - base), "peak_reset": reset}


def measure_memory(args: BenchmarkArguments, num_teachers: int) -> dict[str, dict[str, float]]:
    if args.device == "cuda":
        return {mode: measure_memory_here(args, mode, num_teachers) for mode in MODES}
    results = {}
    for mode in MODES:  # a fresh process per mode: ru_maxrss is a process-lifetime peak
        argv = [
            sys.executable,
            __file__,
            "--only",
            mode,
            "--num_teachers",
            str(num_teachers),
            "--memory",
            "false",
            *_forwarded_flags(args),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def _forwarded_flags(args: BenchmarkArguments) -> list[str]:
    keys = (
        "student",
        "teacher",
        "batch_size",
        "image_size",
        "num_classes",
        "warmup",
        "device",
        "teacher_dtype",
        "channels_last",
        "compile",
    )
    return [item for key in keys for item in (f"--{key}", str(getattr(args, key)))]


def summarise(args: BenchmarkArguments, n: int, ms: dict[str, float], memory: dict | None) -> dict:
    parts = ms["ce"] + n * ms["teacher"] + ms["connectors"]
    row = {
        "num_teachers": n,
        "ms_per_step": ms,
        "images_per_second": {mode: args.batch_size * 1000 / value for mode, value in ms.items()},
        "trainer_over_hand_loop_speed": ms["hand_feed"] / ms["trainer"],  # d/c in throughput terms
        "trainer_over_sum_of_parts_speed": parts / ms["trainer"],  # d/(a + N·b + connectors)
        "frozen_teacher_over_plain_teacher_time": ms["frozen"] / ms["teacher"],
        "cache_speedup": ms["trainer"] / ms["cached"],
    }
    if memory:
        growth = {mode: values["growth_mb"] for mode, values in memory.items()}
        bound = growth["ce"] + growth["teacher"] + growth["connectors"]
        row["memory_growth_mb"] = growth
        row["memory_bound_mb"] = bound  # student training + one teacher's inference + connectors
        row["trainer_memory_over_bound"] = growth["trainer"] / bound if bound else None
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| N | (a) CE ms | (b) teacher ms | (b') frozen/(b) | (c) hand FEED ms | (d) FeedTrainer ms | d/c (speed) "
        "| d/(a+N·b+conn) (speed) | cached speed-up | Δmem (d) MB | Δmem bound MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ms = row["ms_per_step"]
        memory = row.get("memory_growth_mb", {})
        lines.append(
            f"| {row['num_teachers']} | {ms['ce']:.1f} | {ms['teacher']:.1f} | "
            f"{row['frozen_teacher_over_plain_teacher_time']:.3f} | {ms['hand_feed']:.1f} | {ms['trainer']:.1f} | "
            f"{row['trainer_over_hand_loop_speed']:.3f} | {row['trainer_over_sum_of_parts_speed']:.3f} | "
            f"{row['cache_speedup']:.2f}× | {memory.get('trainer', float('nan')):.0f} | "
            f"{row.get('memory_bound_mb', float('nan')):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses(args=argv)
    if args.only:  # memory subprocess
        print(json.dumps(measure_memory_here(args, args.only, args.num_teachers[0])))
        return []
    rows = []
    for n in args.num_teachers:
        ms = time_modes(args, n) if args.timing else {mode: float("nan") for mode in MODES}
        rows.append(summarise(args, n, ms, measure_memory(args, n) if args.memory else None))
        print(f"N = {n}: " + ", ".join(f"{mode} {value:.1f} ms" for mode, value in ms.items()), flush=True)
    table = markdown(rows)
    print(
        f"\n{args.student} student, {args.teacher} teachers, batch {args.batch_size}, {args.image_size}px, "
        f"{hardware_description()}, torch {torch.__version__}\n\n{table}"
    )
    output = Path(args.output_json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "arguments": asdict(args),
                "hardware": hardware_description(),
                "versions": library_versions(),
                "rows": rows,
                "table": table,
            },
            indent=2,
        )
    )
    return rows


if __name__ == "__main__":
    main()
