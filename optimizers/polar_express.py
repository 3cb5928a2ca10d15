"""Muon with the Polar Express schedule: a new quintic at every Newton-Schulz step."""

from collections.abc import Callable
from typing import Any

from optimizers.base import Optimizer, ScalarOrSchedule
from optimizers.muon import muon
from optimizers.registry import LR_GRID, MOMENTUM, SECOND_MOMENT, WEIGHT_DECAY_OR_OFF, OptimizerSpec

POLAR_EXPRESS_PRESETS = ("polar_express", "polar_express_safer")


def muon_polar_express(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: str | tuple = "polar_express",
    ns_steps: int = 8,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Any | Callable | None = None,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    consistent_rms: float | None = None,
) -> Optimizer:
    r"""Muon whose Newton-Schulz iterations follow the Polar Express schedule (Amsel et
    al., 2025): `optimizers.muon.muon` with ns_coeffs="polar_express" and ns_steps=8.

    Step k = 1, ..., 8 of the orthogonalisation maps the (Frobenius-normalised) momentum
    X_{k-1} to

        X_k = a_k X_{k-1} + (b_k A + c_k A^2) X_{k-1},    A = X_{k-1} X_{k-1}^T,

    where p_k(s) = a_k s + b_k s^3 + c_k s^5 is the odd quintic that, of all of them,
    best maps the interval [l_{k-1}, u_{k-1}] the singular values lie in after k - 1 steps
    onto 1 in the worst case (a minimax problem the paper solves once, offline). The
    first steps are greedy (a_1 = 8.24), the last ones converge to the fixed-point triple
    (15/8, -10/8, 3/8); each triple but the last is made safe against rounding by a margin
    of 1e-2 ("polar_express", the paper's choice) or 2e-2 ("polar_express_safer"), the
    values pytorch_optimizer 4.1.0 tabulates (`NS_COEFFS_PRESETS`). Everything else is
    Muon's step, with the same arguments and defaults as `optimizers.muon.muon`:

        M_t = beta * M_{t-1} + (1 - beta) * G_t
        Mhat_t = beta * M_t / (1 - beta^(t+1)) + (1 - beta) * G_t / (1 - beta^t)  (nesterov)
        W_t = W_{t-1} - lr_t * (sqrt(max(1, n / m)) * X_8(Mhat_t) + wd * W_{t-1})

    and AdamW on every leaf that is not a matrix.

    Reference: Amsel, Persson, Musco and Gower, "The Polar Express: Optimal Matrix Sign
    Methods and Their Application to the Muon Algorithm", 2025 (arXiv:2505.16932).
    """
    return muon(
        learning_rate,
        ns_coeffs,
        ns_steps,
        beta,
        eps,
        weight_decay,
        weight_decay_mask,
        mu_dtype,
        nesterov=nesterov,
        adaptive=adaptive,
        adam_b1=adam_b1,
        adam_b2=adam_b2,
        adam_eps_root=adam_eps_root,
        adam_weight_decay=adam_weight_decay,
        adam_learning_rate=adam_learning_rate,
        consistent_rms=consistent_rms,
    )


_SPACE = {
    "beta": MOMENTUM,
    "weight_decay": WEIGHT_DECAY_OR_OFF,
    "adam_b1": MOMENTUM,
    "adam_b2": SECOND_MOMENT,
}
REGISTRY = {
    # As Muon: a step of unit spectral norm, 0.02 by default (Jordan et al. 2024; the
    # Polar Express paper tunes GPT-2 runs around the same rates). Skipped on problems
    # without a matrix (then it would be AdamW).
    "muon_polar_express": OptimizerSpec(
        muon_polar_express,
        LR_GRID,
        matrix_only=True,
        search_space=_SPACE,
        default_learning_rate=0.02,
        reference="optax.contrib 0.2.8 muon with the Polar Express rows",
    ),
    "muon_polar_express_safer": OptimizerSpec(
        muon_polar_express,
        LR_GRID,
        hparams={"ns_coeffs": "polar_express_safer"},
        matrix_only=True,
        search_space=_SPACE,
        default_learning_rate=0.02,
        reference="optax.contrib 0.2.8 muon with the Polar Express safer rows",
    ),
}
__all__ = ["muon_polar_express"]
