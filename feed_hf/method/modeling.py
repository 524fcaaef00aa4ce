"""FeedStudent: the student and its connectors in one module, which is what the Trainer trains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.data import resolve_model_data_config
from torch import nn
from transformers.utils import ModelOutput

from ..teachers.frozen import FrozenTeacher
from .connectors import FeedConnector
from .features import FeatureTap, common_spatial_size, probe_feature_shape

__all__ = ["FeedStudent", "FeedStudentOutput", "bare_student", "build_feed_student", "student_map_shape"]


@dataclass
class FeedStudentOutput(ModelOutput):
    """logits `[B, K]`; connected_feature_maps: one `[B, C_t, H, W]` per teacher; student_feature_map `[B, C_s, H, W]`
    (both training only)."""

    logits: torch.Tensor | None = None
    connected_feature_maps: tuple[torch.Tensor, ...] | None = None
    student_feature_map: torch.Tensor | None = None  # the tapped map connectors read (training only)


class FeedStudent(nn.Module):
    """Student network + one connector per teacher.

    Keeping the connectors inside the module the Trainer gets means the optimizer, DDP, gradient
    clipping, checkpoints and resume all include them with no extra code. Only `student` is exported.
    In eval mode the connectors are skipped: inference costs exactly the bare student.
    """

    # No transformers config: the Trainer reads `model.config` only through getattr(..., None) fallbacks, except
    # its label-smoothing check, which needs the attribute to exist (label_smoothing_factor then works as there).
    config = None

    def __init__(self, student: nn.Module, connectors: Sequence[nn.Module] = (), feature_tap: FeatureTap | None = None):
        super().__init__()
        self.student = student
        self.connectors = nn.ModuleList(connectors)
        self.feature_tap = feature_tap or FeatureTap(student, role="student")

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> FeedStudentOutput:
        # `labels` is accepted (and unused) so the Trainer's column matching keeps it in the batch.
        pixel_values = self.as_student_dtype(pixel_values)
        if not (self.training and len(self.connectors)):
            return FeedStudentOutput(logits=self.student(pixel_values))
        logits, student_map = self.feature_tap.logits_and_map(self.student, pixel_values)
        connected = tuple(connector(student_map) for connector in self.connectors)
        return FeedStudentOutput(logits=logits, connected_feature_maps=connected, student_feature_map=student_map)

    def as_student_dtype(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`pixel_values` in the student's weight dtype, as transformers' vision models cast them (bf16_full_eval)."""
        weight = next(self.student.parameters(), None)
        return pixel_values if weight is None else pixel_values.to(weight.dtype)


def student_map_shape(student: nn.Module, tap: FeatureTap) -> torch.Size:
    """`(C_s, H, W)` of the student's tapped map at its configured input size (what teachers compare against)."""
    return probe_feature_shape(student, tap, tuple(resolve_model_data_config(student)["input_size"]))


def build_feed_student(
    student: nn.Module,
    teachers: Sequence[FrozenTeacher],
    feature_index: int = -1,
    feature_module: str | None = None,
    **connector_options,
) -> FeedStudent:
    """Wrap `student` with one `FeedConnector` per teacher, sized from probed feature maps.

    Each connector maps the student's C_s channels to its teacher's C_t and pools its output to the H×W the
    teacher decided at construction (`teacher.compare_size`, from `student_map_size`): one owner for that size.
    """
    tap = FeatureTap(student, feature_index, feature_module, role="student")
    student_shape = student_map_shape(student, tap)
    connectors = []
    for teacher in teachers:
        expected = common_spatial_size(tuple(student_shape[1:]), tuple(teacher.feature_shape[1:]))
        if tuple(teacher.compare_size) != expected:
            raise ValueError(
                f"{teacher.name} compares at {tuple(teacher.compare_size)} but the student's map is "
                f"{tuple(student_shape[1:])}; build the teacher with student_map_size={tuple(student_shape[1:])}"
            )
        connectors.append(
            FeedConnector(student_shape[0], teacher.feature_shape[0], output_size=expected, **connector_options)
        )
    return FeedStudent(student, connectors, tap)


def bare_student(student: nn.Module) -> nn.Module:
    """The network a `FeedStudent` wraps (what is exported); any other module is its own."""
    return student.student if isinstance(student, FeedStudent) else student
