"""The Args section of FeedConfig's docstring, one entry per FEED field (transformers' docstring style).

Kept beside the fields (feed_config.py) in this subpackage, so the class body stays the fields and their checks;
`tests/test_config_docs.py` checks that every field has its entry here.
"""

__all__ = ["FEED_ARGS_DOC"]

FEED_ARGS_DOC = """
    Args:
        student (`str | None`, *optional*, defaults to `None`):
            The student: a timm name, freshly initialised (e.g. `"resnet20_cifar"`); `"NAME.TAG"` with timm's
            pretrained weights; `"hf-hub:ns/name[@rev]"` (pinned); `"local-dir:PATH"` or an exported folder. Pretrained
            students get a new classifier for the run's classes. Not needed when [`FeedTrainer`] gets `model=`.
        num_labels (`int | None`, *optional*, defaults to `None`):
            Number of classes of the student, >= 1; `0` builds it without classes (timm `num_classes=0`: a backbone,
            for label-free FEED). `None`: the train set's `ClassLabel`, or 0 when the train set has no labels.
        input_size (`int | None`, *optional*, defaults to `None`):
            Square input resolution of the student, its transforms, the teachers' probes and the export, >= 8 pixels.
            `None`: the data's size when it is clearly not the cfg's (train_dataset's `pixel_values`; a split's images
            when smaller than the cfg's size), else the student's timm cfg. Applied to `model=` students too.
        teachers (`list[str]`, *optional*, defaults to `[]`):
            The teachers, each `"hf-hub:ns/name[@rev]"`, `"local-dir:PATH"`, a folder exported by feed-hf,
            `"TIMM_NAME=weights.safetensors"`, or a timm name with pretrained weights. Empty: teachers may be given to
            [`FeedTrainer`] as modules.
        teacher_allow_pickle (`bool`, *optional*, defaults to `False`):
            Allow teacher weights that exist only as a pickle (`.pth`, `.pt`, `.bin`, `.ckpt`), read with
            `torch.load(weights_only=True)`; also covers a pretrained `student`'s weights. `False`: such weights are
            refused; `model.safetensors` is always preferred when there is one.
        feed_beta (`list[float]`, *optional*, defaults to `[500.0]`):
            β of Eq. 1: one value for all teachers or one per teacher, each finite and >= 0. 500 suits
            `feed_reduction="mean"` (Factor Transfer's CIFAR value); for `"sum"` divide it by C·H·W of the teacher
            map. All 0: no FEED term (a logit-KD-only run); mixing 0 and non-zero values is refused.
        feed_p (`int`, *optional*, defaults to `1`):
            Distance of Eq. 2: `1` = L1 (the paper) or `2` = squared L2.
        feed_reduction (`Literal["mean", "sum"]`, *optional*, defaults to `"mean"`):
            Reduction of Eq. 2 over C·H·W: `"mean"` (the Factor Transfer code) or `"sum"` (Eq. 2 as written);
            β_sum = β_mean / (C·H·W).
        student_feature_index (`int`, *optional*, defaults to `-1`):
            Index into the student's `feature_info` of the map to distil from; `-1` = the final pre-pool map.
        student_feature_module (`str | None`, *optional*, defaults to `None`):
            Name of the module whose output is the student map, hooked for models without
            `forward_intermediates`; overrides `student_feature_index`.
        teacher_feature_indices (`list[int]`, *optional*, defaults to `[-1]`):
            One for all teachers or one per teacher: `-1` = the map `forward_features` returns (ViT tokens laid
            out as `[B, C, H, W]`), any other index an entry of the teacher's `feature_info`.
        teacher_feature_modules (`list[str]`, *optional*, defaults to `[]`):
            Module name per teacher whose output is its map (hook fallback), one per teacher; an empty entry `""`
            uses that teacher's `teacher_feature_indices` entry. Empty list: indices for all.
        teacher_input_sizes (`list[int]`, *optional*, defaults to `[]`):
            Square resolution each teacher runs at, one for all teachers or one per teacher, >= 8 or `0`; the
            batch is resized on its device for that teacher. `0` or empty: the size its model only accepts (a
            ViT without `dynamic_img_size`), else the student's. timm keyword arguments for one teacher go on its
            spec: `"hf-hub:ns/vit?dynamic_img_size=true"`.
        connector_num_layers (`int`, *optional*, defaults to `3`):
            Number of 3×3 conv layers per connector, >= 1 (the paper: 3).
        connector_mid_channels (`int | None`, *optional*, defaults to `None`):
            Width of the connector's inner convs, >= 1. `None`: the student's channel count C_s.
        connector_norm (`str`, *optional*, defaults to `"none"`):
            Norm after each connector conv: `"none"` (the paper) or a timm norm layer name such as
            `"batchnorm2d"` or `"groupnorm"`.
        connector_activation (`str`, *optional*, defaults to `"leaky_relu"`):
            timm activation layer name after each connector conv, e.g. `"relu"`, `"gelu"`, `"silu"`;
            `"leaky_relu"` uses slope 0.1, as Factor Transfer does.
        kd_weight (`float`, *optional*, defaults to `0.0`):
            Weight of a logit-KD term on the teachers' averaged logits, finite and >= 0 (0 = the paper: no KD term).
        kd_temperature (`float`, *optional*, defaults to `4.0`):
            Temperature of the logit-KD term, > 0; the KD loss is scaled by its square.
        lr_decay_epochs (`list[float]`, *optional*, defaults to `[]`):
            Step decay: multiply the learning rate by `lr_decay_rate` at these epochs (e.g. `150 225` of 300),
            increasing and > 0. Needs `lr_scheduler_type="constant"` and `num_train_epochs` (not `max_steps`).
            Empty: the `lr_scheduler_type` schedule alone.
        lr_decay_rate (`float`, *optional*, defaults to `0.1`):
            Factor applied at each of `lr_decay_epochs`, in (0, 1].
        weight_decay_on_all_parameters (`bool`, *optional*, defaults to `False`):
            Decay every parameter (biases, BatchNorm γ and β, connectors) as the FEED / Factor Transfer code's
            `SGD(model.parameters())`. `False`: the Trainer's set (no biases, BatchNorm β, LayerNorm weights).
        teacher_dtype (`Literal["float32", "bfloat16", "float16"]`, *optional*, defaults to `"float32"`):
            Run the teachers under autocast in this dtype (GPU speed); the FEED loss stays in float32.
        channels_last (`bool`, *optional*, defaults to `False`):
            Use the channels_last memory format for the student, the connectors and the teachers (faster on GPU).
        compile_teachers (`bool`, *optional*, defaults to `False`):
            `torch.compile` the teachers' feature extraction (the student is compiled by `torch_compile`).
        batch_augmentation (`Literal["none", "crop", "crop_flip"]`, *optional*, defaults to `"none"`):
            Random reflect-pad crop (`"crop"`), plus a horizontal flip (`"crop_flip"`), of each batch on its device
            inside the training step instead of in the data pipeline: keeps a GPU fed on CIFAR-size data and makes
            resuming bit-exact. The recipes then load training images without random transforms. Cannot be
            combined with `cache_teacher_features`.
        batch_augmentation_padding (`int`, *optional*, defaults to `4`):
            Padding in pixels of `batch_augmentation`'s crop.
        cache_teacher_features (`bool`, *optional*, defaults to `False`):
            Compute each teacher's map once per training image and reuse it every epoch. Only for training sets
            without random augmentation (checked; not with `batch_augmentation`). Memory: N·C·H·W values per image.
        teacher_store (`bool`, *optional*, defaults to `False`):
            Read teacher maps from a persistent store on disk, built once per teachers/data/settings and shared by
            ranks and runs; with `batch_augmentation`, its crops/flips are recorded and replayed (docs/performance.md).
        teacher_store_dir (`str | None`, *optional*, defaults to `None`):
            Folder of the stores (one sub-folder per fingerprint). `None`: `~/.cache/feed_hf/teacher_store`.
        teacher_store_views (`int`, *optional*, defaults to `1`):
            Augmented views K recorded per image (>= 1; > 1 needs `batch_augmentation`); training replays one per epoch.
        teacher_store_dtype (`str`, *optional*, defaults to `"bfloat16"`):
            Storage of maps and logits; `"pca_int8"`: maps as PCA int8 codes (`teacher_store_energy_share`), logits
            bf16. Loss in fp32.
        teacher_store_energy_share (`float`, *optional*, defaults to `0.99`):
            With `teacher_store_dtype="pca_int8"`: the share of each teacher's map variance the kept PCA components
            hold, in (0, 1] (part of the store's key). Lower: fewer bytes, a larger Eq. 2 error (measured per teacher
            in docs/performance.md). Refused with another `teacher_store_dtype`.
        teacher_store_seed (`int | None`, *optional*, defaults to `None`):
            Seed of the store's recorded crops/flips (part of its key). `None`: the run's `seed`, so each seed of an
            experiment replays its own crops; pin it to share one store across seeds.
        teacher_store_verify (`Literal["sampled", "full"]`, *optional*, defaults to `"sampled"`):
            How a store is verified when opened: header hashes and a fresh sample of rows against the checksums
            written at build (`"sampled"`), or every row (`"full"`: one read of the whole store).
        teacher_store_repo (`str | None`, *optional*, defaults to `None`):
            Hub dataset `"ns/name[@revision]"` (`feed-hf store push`): parts missing here pulled, verified in full.
        stop_on_nonfinite_loss (`bool`, *optional*, defaults to `True`):
            Stop at the first step whose loss is NaN or Inf, naming the loss term (one host sync per step).
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Allow training into an `output_dir` that already holds an exported model (it is replaced once the new
            export is complete). Never allowed for a folder that is one of this run's teachers. Resuming
            (`resume_from_checkpoint`) is not overwriting and needs no opt-in.
        push_connectors (`bool`, *optional*, defaults to `False`):
            With `push_to_hub`: also push the connectors, as a separate `feed_connectors.safetensors`.
        model_license (`str | None`, *optional*, defaults to `None`):
            Hub licence id of the model for its card (e.g. `"mit"`). `None`: the teachers' shared one, else unset.
        dataset_id (`str | None`, *optional*, defaults to `None`):
            Hub dataset id (`ns/name`) of the data for the card's metadata when it was not loaded from the Hub.
        dataset_name (`str | None`, *optional*, defaults to `None`):
            Readable name of the data for the card. `None`: the dataset's own name or Hub id.
        do_train (`bool`, *optional*, defaults to `True`):
            Train. `False` is refused by the training commands and `train_model` (they would do nothing).
        do_eval (`bool`, *optional*, defaults to `True`):
            Evaluate on the eval split after training (`train_model`, the CLI); `False`: no final evaluation.
        remove_unused_columns (`bool`, *optional*, defaults to `False`):
            Overrides TrainingArguments' `True`: keep every dataset column, as the on-the-fly image transform and
            `cache_teacher_features` need columns the model's `forward` does not take (see above).
        feed_map_distance (`list[str]`, *optional*, defaults to `['feed_l1']`):
            Distance between connector n's output and teacher n's map, one for all teachers or one per teacher:
            `"feed_l1"` (Eq. 2 with `feed_p` and `feed_reduction`, the paper), `"cosine"` (per position, as
            AM-RADIO) or `"smooth_l1"` (raw values: use it with `feed_balance`).
        feed_summary_weight (`list[float]`, *optional*, defaults to `[0.0]`):
            Weight w_n (finite, >= 0) of a summary term per teacher: the student's pooled map through a small MLP
            (`SummaryConnector`) against the feature the teacher's own head reads. `0`: no summary term (FEED).
        feed_summary_distance (`list[str]`, *optional*, defaults to `['feed_l1']`):
            Distance of the summary term, one for all teachers or one per teacher (as `feed_map_distance`).
        feed_balance (`str`, *optional*, defaults to `"none"`):
            Teachers' maps on a common scale before the distance: `"none"` (FEED as published), `"standardize"`
            (per channel) or `"phi_s"` (PCA + Hadamard rotation + one scale), fitted once on the train set.
        feed_balance_samples (`int`, *optional*, defaults to `512`):
            Train images (the first ones) the balancing statistics are fitted on, >= 2.
"""
