"""Picks each optimizer's learning rate per problem from the swept grid.

Rule: the learning rate with the lowest median (over seeds) final suboptimality,
a diverged lane counting as +inf; ties go to the smaller median steps-to-target.
"""

import numpy as np
import pandas as pd


def tuned_learning_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, optimizer): the chosen learning_rate and its median score."""
    scored = runs.assign(
        score=np.where(runs["diverged"], np.inf, runs["final_suboptimality"]),
        steps=np.where(runs["steps_to_target"] < 0, np.inf, runs["steps_to_target"]),
    )
    medians = (
        scored.groupby(["problem", "optimizer", "learning_rate"], sort=True)[["score", "steps"]]
        .median()
        .reset_index()
        .sort_values(["problem", "optimizer", "score", "steps", "learning_rate"], kind="stable")
    )
    return medians.groupby(["problem", "optimizer"], sort=True).head(1).reset_index(drop=True)
