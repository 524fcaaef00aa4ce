"""FeedConfig: every FEED knob as a TrainingArguments field, validated when it is made."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import TrainingArguments

from ...store.key import DEFAULT_ENERGY_SHARE
from .checks import check_feed_config
from .field_docs import FEED_ARGS_DOC
from .field_types import check_field_value, field_specs

__all__ = ["FeedConfig"]

logger = logging.getLogger(__name__)


@dataclass
class FeedConfig(TrainingArguments):
    """TrainingArguments plus parallel FEED (Park & Kwak 2019): L = CE + Σ_n β_n·L_FEED_n [+ KD].

    FeedConfig adds to [`TrainingArguments`] the settings of parallel FEED (feature-level ensemble for knowledge
    distillation, Park & Kwak 2019): a timm student learns from N frozen teachers at once, each through a trainable
    connector of its own that maps the student's feature map to that teacher's. The loss is Eq. 1,
    `L = CE + Σ_n β_n · L_FEED_n`, where `L_FEED_n` (Eq. 2) is the L1 (or squared L2) distance between connector n's
    output and teacher n's feature map, plus an optional logit-KD term `kd_weight · KD` on the teachers' averaged
    logits. Every field is checked when the config is made: a bad value raises `ValueError` naming the field, the
    value and what is allowed. [`HfArgumentParser`] turns the fields into command-line flags, with the help texts
    below.

    Defaults decided for FEED (everything else is TrainingArguments' default):

    - `remove_unused_columns` is `False` (TrainingArguments: `True`). Images become `pixel_values` on the fly
      (`Dataset.with_transform`), which needs the raw image column, and `cache_teacher_features` adds a
      `sample_index` column; the Trainer would drop both, as neither is an argument of the model's `forward`.
    - `max_grad_norm` is inherited from TrainingArguments, 1.0: gradients are clipped to norm 1.0. The FEED and
      Factor Transfer reference code does not clip, so recipes that want the paper's behaviour set `max_grad_norm`
      to 0 (no clipping) or a large value.
    - `lr_scheduler_type` is inherited (`"linear"`). The paper's step schedule is `lr_scheduler_type="constant"`
      with `lr_decay_epochs` and `lr_decay_rate`.
    - `overwrite_output_dir` is FeedConfig's own field (transformers 5 has none): `False` refuses to train into an
      `output_dir` that already holds an exported model.
    - `do_train` and `do_eval` are `True` (TrainingArguments: `False`; the Trainer reads neither). `train_model` and
      every training command honour `do_eval=False` (no evaluation after training) and refuse `do_train=False` and
      `do_predict=True`, which they cannot honour.

    Every other Trainer argument and TrainingArguments field FEED changes or refuses: docs/trainer_contract.md.

    """

    student: str | None = field(
        default=None,
        metadata={
            "aliases": ["--model_name_or_path", "--model-name-or-path"],  # the transformers examples' name
            "help": "Student: a timm name (fresh init, e.g. 'resnet20_cifar'), 'NAME.TAG' (timm pretrained weights), "
            "'hf-hub:ns/name[@rev]' or 'local-dir:PATH' (pretrained: new classifier). Not needed with model=. "
            "--model_name_or_path (the transformers examples' name) is the same option.",
        },
    )
    num_labels: int | None = field(
        default=None,
        metadata={
            "help": "Number of classes of the student, >= 1; 0 = a backbone without classes (label-free FEED). "
            "Default: the train set's ClassLabel, or 0 when it has no labels."
        },
    )
    input_size: int | None = field(
        default=None,
        metadata={
            "help": "Square input resolution (>= 8) of the student, its transforms, teacher probes and export. "
            "Default: the data's size when clearly not the student's timm cfg size, else the cfg's."
        },
    )
    teachers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Teachers, each 'hf-hub:ns/name[@rev]', 'local-dir:PATH', a folder exported by feed-hf, "
            "'TIMM_NAME=weights.safetensors', or a timm name with pretrained weights."
        },
    )
    teacher_allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "Allow teacher weights that exist only as .pth/.pt/.bin/.ckpt pickles (read with "
            "torch.load(weights_only=True)), teachers' and a pretrained student's; model.safetensors is preferred."
        },
    )
    feed_beta: list[float] = field(
        default_factory=lambda: [500.0],
        metadata={
            "help": "β of Eq. 1 (finite, >= 0): one value for all teachers or one per teacher. 500 suits "
            "feed_reduction='mean' (Factor Transfer's CIFAR value); for 'sum' divide by C·H·W of the teacher map. "
            "All 0: no FEED term (a logit-KD-only run); mixing 0 and non-zero is refused."
        },
    )
    feed_p: int = field(default=1, metadata={"help": "Distance of Eq. 2: 1 = L1 (the paper), 2 = squared L2."})
    feed_reduction: Literal["mean", "sum"] = field(
        default="mean",
        metadata={
            "help": "Reduction of Eq. 2 over C·H·W: 'mean' (Factor Transfer code) or 'sum' (Eq. 2 as written); "
            "β_sum = β_mean / (C·H·W)."
        },
    )
    student_feature_index: int = field(
        default=-1, metadata={"help": "Student feature_info index to distil from; -1 = the final pre-pool map."}
    )
    student_feature_module: str | None = field(
        default=None,
        metadata={
            "help": "Module name whose output is the student map (hook fallback for models without "
            "forward_intermediates); overrides student_feature_index."
        },
    )
    teacher_feature_indices: list[int] = field(
        default_factory=lambda: [-1],
        metadata={"help": "Teacher feature index, one or per teacher: -1 = forward_features' map, else feature_info."},
    )
    teacher_feature_modules: list[str] = field(
        default_factory=list,
        metadata={"help": "Module name per teacher whose output is its map (hook fallback); '' = use its index."},
    )
    teacher_input_sizes: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Resolution (>= 8, or 0) each teacher runs at (one, or one per teacher); the batch is resized. "
            "0/empty: its model's fixed size, else the student's. timm kwargs: 'hf-hub:ns/vit?dynamic_img_size=true'."
        },
    )
    connector_num_layers: int = field(
        default=3, metadata={"help": "Number (>= 1) of 3×3 conv layers per connector (paper: 3)."}
    )
    connector_mid_channels: int | None = field(
        default=None, metadata={"help": "Width (>= 1) of the connector's inner convs. Default: the student's C_s."}
    )
    connector_norm: str = field(
        default="none",
        metadata={"help": "Norm after each connector conv: 'none' (the paper) or a timm norm, e.g. 'batchnorm2d'."},
    )
    connector_activation: str = field(
        default="leaky_relu", metadata={"help": "timm activation after each connector conv (leaky_relu = slope 0.1)."}
    )
    kd_weight: float = field(
        default=0.0, metadata={"help": "Weight (>= 0) of a logit-KD term on the teachers' averaged logits (0 = paper)."}
    )
    kd_temperature: float = field(default=4.0, metadata={"help": "Temperature (> 0) of the logit-KD term."})
    feed_map_distance: list[str] = field(
        default_factory=lambda: ["feed_l1"],
        metadata={
            "help": "Map distance, one or per teacher: feed_l1 (Eq. 2 with feed_p, the paper), cosine, smooth_l1."
        },
    )
    feed_summary_weight: list[float] = field(
        default_factory=lambda: [0.0],
        metadata={"help": "Weight (>= 0) of a pooled-summary term per teacher (one or per teacher); 0 = none (FEED)."},
    )
    feed_summary_distance: list[str] = field(
        default_factory=lambda: ["feed_l1"],
        metadata={"help": "Summary distance, one or per teacher: feed_l1, cosine, smooth_l1."},
    )
    feed_balance: str = field(
        default="none",
        metadata={"help": "Teachers' maps on a common scale: none (FEED as published), standardize or phi_s."},
    )
    feed_balance_samples: int = field(
        default=512, metadata={"help": "Train images (>= 2) the feed_balance statistics are fitted on."}
    )
    lr_decay_epochs: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Step decay: multiply the LR by lr_decay_rate at these epochs (increasing, > 0; e.g. 150 225 "
            "of 300). Needs lr_scheduler_type=constant and num_train_epochs (not max_steps)."
        },
    )
    lr_decay_rate: float = field(default=0.1, metadata={"help": "Factor in (0, 1] applied at each of lr_decay_epochs."})
    weight_decay_on_all_parameters: bool = field(
        default=False, metadata={"help": "Decay biases and BatchNorm too, as the FEED code; False: the Trainer's set."}
    )
    teacher_dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32",
        metadata={"help": "Run teachers under autocast in this dtype (GPU speed); the FEED loss stays fp32."},
    )
    channels_last: bool = field(
        default=False, metadata={"help": "channels_last memory format for student, connectors and teachers (GPU)."}
    )
    compile_teachers: bool = field(
        default=False, metadata={"help": "torch.compile the teachers' feature extraction (the student: torch_compile)."}
    )
    batch_augmentation: Literal["none", "crop", "crop_flip"] = field(
        default="none",
        metadata={
            "help": "Random reflect-pad crop (+ flip) of each batch on its device inside the training step, "
            "instead of in the data pipeline: keeps a GPU fed on CIFAR-size data and makes resume bit-exact. "
            "The recipes then load training images without random transforms. Not with cache_teacher_features."
        },
    )
    batch_augmentation_padding: int = field(default=4, metadata={"help": "Padding of batch_augmentation's crop."})
    cache_teacher_features: bool = field(
        default=False,
        metadata={
            "help": "Compute each teacher's map once per training image and reuse it every epoch. Only "
            "for training sets without random augmentation (checked). Memory: N·C·H·W values per image."
        },
    )
    teacher_store: bool = field(
        default=False,
        metadata={"help": "Teacher maps from a persistent on-disk store shared by ranks and runs (replays crops)."},
    )
    teacher_store_dir: str | None = field(
        default=None, metadata={"help": "Folder of the teacher stores. Unset: ~/.cache/feed_hf/teacher_store."}
    )
    teacher_store_views: int = field(
        default=1, metadata={"help": "Augmented views K stored per image (> 1 needs batch_augmentation)."}
    )
    teacher_store_dtype: Literal["bfloat16", "float16", "float32", "pca_int8"] = field(
        default="bfloat16", metadata={"help": "Storage of the store's maps (pca_int8: PCA codes); the loss stays fp32."}
    )
    teacher_store_energy_share: float = field(
        default=DEFAULT_ENERGY_SHARE,
        metadata={
            "help": "pca_int8 only: share of each teacher's map variance its codes keep, in (0, 1] (in the key)."
        },
    )
    teacher_store_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the store's recorded crops (in its key). Unset: the run's seed; pin to share."},
    )
    teacher_store_verify: Literal["sampled", "full"] = field(
        default="sampled",
        metadata={"help": "Store verification when opened: hashes + a fresh sample of rows, or every row (full)."},
    )
    teacher_store_repo: str | None = field(
        default=None, metadata={"help": "Hub dataset 'ns/name[@rev]' to pull missing store parts from (verified)."}
    )
    stop_on_nonfinite_loss: bool = field(
        default=True,
        metadata={
            "help": "Stop at the first step whose loss is NaN/Inf, naming the loss term (one host sync per step)."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Allow training into an output_dir that already holds an exported model (it is replaced when "
            "the new export is complete). Never allowed for a folder that is one of this run's teachers. Resuming "
            "(resume_from_checkpoint) is not overwriting and needs no opt-in."
        },
    )
    push_connectors: bool = field(
        default=False,
        metadata={"help": "With push_to_hub: also push the connectors, as a separate feed_connectors.safetensors."},
    )
    model_license: str | None = field(
        default=None, metadata={"help": "Hub licence id for the card. Unset: the teachers' shared one, else none."}
    )
    dataset_id: str | None = field(
        default=None, metadata={"help": "Hub dataset id (ns/name) of the data for the card, if not from the Hub."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Readable name of the data for the card."})
    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Keep every dataset column (TrainingArguments: True): the on-the-fly image transform and "
            "cache_teacher_features need columns the model's forward does not take."
        },
    )

    do_train: bool = field(
        default=True,
        metadata={
            "help": "Train (TrainingArguments: False; the Trainer ignores it). feed-hf's training commands refuse "
            "false: use `feed-hf evaluate` to evaluate an export."
        },
    )
    do_eval: bool = field(
        default=True,
        metadata={
            "help": "Evaluate on the eval split after training (TrainingArguments: False). false: no final "
            "evaluation (results.json and the card carry no eval metrics)."
        },
    )

    def __post_init__(self) -> None:
        self._check_feed_field_types()
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available():
            # Launched as several processes on a machine without an accelerator: without use_cpu, accelerate
            # gives every process a world of its own (N independent runs, all writing the same files).
            logger.info("no accelerator: running the %s launched processes on CPU (gloo)", os.environ["WORLD_SIZE"])
            self.use_cpu = True
        super().__post_init__()
        check_feed_config(self)

    def _check_feed_field_types(self) -> None:
        """FeedConfig's own fields as their declared types (`feed_beta=500` -> [500.0]), as the CLI reads them.

        TrainingArguments' fields given from Python are transformers' business; from a file, parse_arguments
        checks them too.
        """
        own_fields = FeedConfig.__dict__["__annotations__"]
        for name, (annotation, default) in field_specs(FeedConfig).items():
            if name in own_fields:
                setattr(self, name, check_field_value(name, annotation, getattr(self, name), default=default))


FeedConfig.__doc__ = FeedConfig.__doc__.rstrip() + "\n\n" + FEED_ARGS_DOC  # the Args entries (field_docs.py)
