"""Knowledge distillation: a student learns from a teacher's soft labels as well as the hard ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distill_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term: KL(teacher_T || student_T) x T², per sample mean.

    The teacher is stored as probabilities (an ensemble with TTA has no single logit vector), so its
    tempered distribution is softmax(log p / T), which equals softmax(z / T) for a network's logits z.
    """
    log_student = F.log_softmax(logits.float() / temperature, dim=1)
    teacher = F.softmax(teacher_probs.clamp_min(1e-8).log() / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * temperature**2
