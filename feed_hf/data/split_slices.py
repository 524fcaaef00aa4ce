"""Row ranges of a split: `--train_split "train[10000:12500]"`, as `datasets.load_dataset(split=...)` reads them.

A protocol that must keep images apart (teachers trained on some rows, labelled images from others, unlabelled
images from the rest) states the rows in the split name itself, with the `datasets` slice syntax
(`datasets.ReadInstruction`: `train[:10%]`, `train[10000:12500]`, `train[:1000]+train[-1000:]`), so the record keeps
exactly which rows a run saw. The label mapping is still built from the whole split (see `feed_hf.data.labels`); the
slice is taken after it, before any `max_train_samples` subset or eval carving.
"""

from __future__ import annotations

import datasets
from datasets import ReadInstruction

__all__ = [
    "base_split",
    "check_disjoint",
    "check_disjoint_streams",
    "select_rows",
    "sliced_stream",
    "split_rows",
    "stream_bounds",
]


def base_split(spec: str | None) -> str | None:
    """The split a spec reads from: `"train[10%:]"` → `"train"`; a plain name is itself."""
    if spec is None or "[" not in spec:
        return spec
    names = {part.split("[", 1)[0].strip() for part in spec.split("+")}
    if len(names) != 1:
        raise ValueError(
            f"split {spec!r} reads from several splits {sorted(names)}; a run's train or eval split is rows of one "
            "split: give one name, e.g. 'train[:1000]+train[-1000:]'"
        )
    return names.pop()


def split_rows(spec: str, num_rows: int) -> list[int] | None:
    """The row numbers a sliced spec selects from a split of `num_rows` rows, in order; None for a plain name."""
    if "[" not in spec:
        return None
    try:
        instruction = ReadInstruction.from_spec(spec)
    except (ValueError, AssertionError) as error:
        raise ValueError(
            f"split {spec!r} is not a split name or a datasets slice ({error}); write e.g. 'train[10000:12500]' or "
            "'train[:10%]'"
        ) from None
    base = base_split(spec)
    rows: list[int] = []
    for part in instruction.to_absolute({base: num_rows}):
        rows.extend(range(part.from_, part.to))
    if not rows:
        raise ValueError(f"split {spec!r} selects no rows of {base!r} ({num_rows} rows); choose a non-empty range")
    return rows


def select_rows(split: datasets.Dataset, spec: str) -> datasets.Dataset:
    """`split` (the whole base split) cut to the rows `spec` names; unchanged for a plain name."""
    rows = split_rows(spec, len(split))
    return split if rows is None else split.select(rows)


def check_disjoint(train_spec: str, eval_spec: str | None, num_rows: int) -> None:
    """Refuse a train and an eval slice of the same split that share rows: a score on trained-on images."""
    if eval_spec is None or base_split(train_spec) != base_split(eval_spec):
        return
    train_rows = split_rows(train_spec, num_rows)
    eval_rows = split_rows(eval_spec, num_rows)
    shared = set(range(num_rows) if train_rows is None else train_rows) & set(
        range(num_rows) if eval_rows is None else eval_rows
    )
    if shared:
        raise ValueError(
            f"train_split {train_spec!r} and eval_split {eval_spec!r} share {len(shared)} rows of "
            f"{base_split(train_spec)!r} (first: {min(shared)}); evaluation would score trained-on images: give "
            "disjoint ranges, e.g. 'train[:45000]' and 'train[45000:]'"
        )


def stream_bounds(spec: str) -> tuple[int, int | None]:
    """`(start, stop)` of a stream slice, `(0, None)` for a plain name: one absolute range (a stream has no length)."""
    if "[" not in spec:
        return 0, None
    base_split(spec)
    try:
        parts = ReadInstruction.from_spec(spec)._relative_instructions
    except (ValueError, AssertionError) as error:
        raise ValueError(f"split {spec!r} is not a split name or a datasets slice ({error})") from None
    if len(parts) != 1 or parts[0].unit == "%" or (parts[0].from_ or 0) < 0 or (parts[0].to or 0) < 0:
        raise ValueError(
            f"split {spec!r} on a stream: a stream has no length, so only one range of absolute non-negative "
            "row numbers works, e.g. 'train[10000:12500]'; or turn streaming off"
        )
    return parts[0].from_ or 0, parts[0].to


def check_disjoint_streams(train_spec: str, eval_spec: str | None) -> None:
    """As `check_disjoint`, for two ranges of one streamed split."""
    if eval_spec is None or base_split(train_spec) != base_split(eval_spec):
        return
    (a0, a1), (b0, b1) = stream_bounds(train_spec), stream_bounds(eval_spec)
    start, stop = max(a0, b0), min(x for x in (a1, b1, float("inf")) if x is not None)
    if start < stop:
        raise ValueError(
            f"train_split {train_spec!r} and eval_split {eval_spec!r} share rows of one stream from row {start}; "
            "evaluation would score trained-on images: give disjoint ranges, e.g. 'train[1000:]' and 'train[:1000]'"
        )


def sliced_stream(stream: datasets.IterableDataset, spec: str) -> datasets.IterableDataset:
    """A stream cut to its slice's rows (skip start, take stop − start); unchanged for a plain name."""
    start, stop = stream_bounds(spec)
    stream = stream.skip(start) if start else stream
    return stream if stop is None else stream.take(stop - start)
