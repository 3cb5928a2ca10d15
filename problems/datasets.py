"""The real data sets shipped in `problems/data/`, loaded with numpy at first use.

Tables (`split`): every split is deterministic: a fixed permutation (numpy PCG64, seed 0) picks the
training and test examples, features are standardised with the training split's
mean and standard deviation, and arrays come back as float32 features with int32
(class) or float32 (regression, binary) labels.
"""

import functools
import lzma
from pathlib import Path

import jax.numpy as jnp
import numpy as np

DATA_DIR = Path(__file__).parent / "data"
# name -> label dtype: class indices for digits, 0/1 or real targets as float32 otherwise.
DATASETS = {"breast_cancer": jnp.float32, "diabetes": jnp.float32, "digits": jnp.int32}


@functools.cache
def load_raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels exactly as stored (see problems/data/README.md)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from: {', '.join(DATASETS)}")
    with np.load(DATA_DIR / f"{name}.npz") as arrays:
        return arrays["x"], arrays["y"]


@functools.cache
def split(name: str, n_train: int | None = None, n_test: int = 0, standardise_labels=False):
    """((x_train, y_train), (x_test, y_test)) of a shipped data set, standardised.

    n_train defaults to every example not in the test split. Regression labels are
    standardised too when standardise_labels (training mean and deviation).
    """
    x, y = load_raw(name)
    n = len(x)
    n_train = n - n_test if n_train is None else n_train
    if n_train < 1 or n_test < 0 or n_train + n_test > n:
        raise ValueError(f"{name} has {n} examples: cannot take n_train={n_train}, n_test={n_test}")
    order = np.random.default_rng(0).permutation(n)
    train, test = order[:n_train], order[n_train : n_train + n_test]
    x = x.astype(np.float64)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)  # constant features (blank pixels) stay 0
    if standardise_labels:
        y = (y - y[train].mean()) / y[train].std()

    def arrays(index):
        return jnp.asarray(x[index], jnp.float32), jnp.asarray(y[index], DATASETS[name])

    return arrays(train), arrays(test)


# Text corpora: name -> the byte offset where the held-out files begin (see
# problems/data/README.md). The corpus is the concatenation of whole files in a fixed
# order; the held-out part is its last files, never seen in training.
TEXTS = {"python_stdlib": 1_180_412}


@functools.cache
def text(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(training bytes, held-out bytes) of a shipped text corpus, as uint8 arrays."""
    if name not in TEXTS:
        raise ValueError(f"unknown text corpus {name!r}; choose from: {', '.join(TEXTS)}")
    raw = np.frombuffer(lzma.decompress((DATA_DIR / f"{name}.txt.xz").read_bytes()), np.uint8)
    return raw[: TEXTS[name]], raw[TEXTS[name] :]
