"""pandas over a results folder's tables: the tuning rule, profiles, statistics and tuning
budgets, computed once per render (`bench.analysis.analyze`). No jax, no matplotlib, no
problem or optimizer registries."""
