"""Torch twins of the model problems: the baseline `make perf` compares the sweep with.

`torch_model_loss(problem)` is the loss of the CNN on digits (problems.cnn, with or
without its normalization) or of the byte-level transformer language model
(problems.transformer) written with torch operations: the same network, initial
parameters and loss, on the parameters of the problem's `init` converted leaf by leaf
to torch tensors (the same list of layer dicts) and its minibatches converted likewise.
`torch_model_loop` measures the seconds of one trial of `torch.optim.Adam` on it in a
Python loop, float32, on the CPU, one thread: how a torch user trains one learning rate
and seed at a time. Needs torch (`bench.perf.models` imports it only where torch is).
"""

import jax
import numpy as np
import torch  # pyright: ignore[reportMissingImports]  # the optional `perf` extra
import torch.nn.functional as F  # pyright: ignore[reportMissingImports]  # the `perf` extra

from bench.perf.sweeps import SweepCase, torch_adam_seconds
from problems import Problem
from problems.cnn import SIDE

EPS = 1e-5  # problems.layers.layer_norm's


def to_torch(tree):
    """The pytree with every array leaf copied into a torch tensor of the same dtype."""
    return jax.tree.map(lambda a: torch.tensor(np.asarray(a)), tree)


def _dense(x, layer):
    return x @ layer["w"] + layer["b"]


def _cnn_loss(norm: bool):
    """problems.cnn.cnn_loss, channels first (torch's layout): same numbers, other order."""

    def loss(params, batch):
        x, y = batch
        h = x.reshape(-1, 1, SIDE, SIDE)
        for layer in params[:-1]:
            # The JAX kernel's rows are the patch features (row i, column j, channel c) in
            # that order; conv2d wants (out, c, i, j). Both are cross-correlations.
            rows, out = layer["w"].shape
            kernel = layer["w"].reshape(3, 3, rows // 9, out).permute(3, 2, 0, 1)
            h = F.conv2d(h, kernel, layer["b"], padding=1)
            if norm:  # moments over (channels, height, width), scale and shift per channel
                h = F.layer_norm(h, h.shape[1:], eps=EPS)
                h = h * layer["scale"][:, None, None] + layer["shift"][:, None, None]
            h = F.avg_pool2d(torch.relu(h), 2)
        # The dense layer's rows are the JAX feature map flattened as (height, width, channel).
        logits = _dense(h.permute(0, 2, 3, 1).flatten(1), params[-1])
        return F.cross_entropy(logits, y.long())

    return loss


def _attention(x, block, heads: int):
    """Causal multi-head self-attention of x (windows, positions, width)."""
    b, t, d = x.shape
    q, k, v = (
        a.reshape(b, t, heads, d // heads).transpose(1, 2)  # (windows, heads, positions, c)
        for a in _dense(x, block["qkv"]).chunk(3, dim=-1)
    )
    # softmax(q k^T / sqrt(c)) v, each position attending to itself and those before it
    mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return _dense(mixed.transpose(1, 2).reshape(b, t, d), block["out"])


def _transformer_loss(heads: int):
    """problems.transformer.lm_loss: pre-norm blocks, tanh GELU, output tied to the embedding."""

    def norm(x, layer):
        return F.layer_norm(x, x.shape[-1:], layer["scale"], layer["shift"], eps=EPS)

    def loss(params, batch):
        tokens, targets = batch[:, :-1].long(), batch[:, 1:].long()
        embed = params[0]
        x = embed["tokens"][tokens] + embed["positions"][: tokens.shape[1]]
        for block in params[1:-1]:
            x = x + _attention(norm(x, block["norm1"]), block, heads)
            # jax.nn.gelu is the tanh approximation by default
            hidden = F.gelu(_dense(norm(x, block["norm2"]), block["up"]), approximate="tanh")
            x = x + _dense(hidden, block["down"])
        logits = norm(x, params[-1]) @ embed["tokens"].T
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    return loss


def torch_model_loss(problem: Problem):
    """`problem.loss` with torch operations: (torch params, torch batch) -> scalar tensor."""
    if "cnn" in problem.tags:
        return _cnn_loss(problem.loss.keywords["norm"])
    if "transformer" in problem.tags:
        return _transformer_loss(problem.loss.keywords["heads"])
    raise ValueError(f"no torch twin of {problem.name!r}: only the CNN and the transformer")


def torch_model_loop(case: SweepCase, runs: int = 2) -> dict:
    """Median seconds of one trial: `torch.optim.Adam` (lr 1e-3) in a Python loop over
    `case.steps` minibatch steps, float32, CPU, the loss of every step kept.

    The params are the problem's init at PRNGKey(0) and the minibatches those the JAX
    problem's `sample_batch` draws from the step keys of PRNGKey(1) (as
    bench.perf.models.optax_loop draws them). The minibatches are drawn and converted to
    torch before the timing: the loop times torch's training only, not the data pipeline.
    The loop is `bench.perf.sweeps.torch_adam_seconds`'s (one thread, a warm-up trial).
    """
    problem = case.problem
    loss_fn = torch_model_loss(problem)
    initial = jax.tree.map(np.asarray, problem.init(jax.random.PRNGKey(0)))
    if problem.sample_batch is None:
        raise ValueError(f"{problem.name} trains on the full batch: no minibatch to draw")
    keys = jax.random.split(jax.random.PRNGKey(1), case.steps)
    drawn = to_torch(jax.vmap(problem.sample_batch, in_axes=(None, 0))(problem.data(), keys))
    batches = [jax.tree.map(lambda a, i=i: a[i], drawn) for i in range(case.steps)]

    step_losses = [lambda params, batch=batch: loss_fn(params, batch) for batch in batches]
    return {"seconds": torch_adam_seconds(initial, step_losses, runs)}
