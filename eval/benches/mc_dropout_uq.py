"""`mc_dropout_uq`: MC-dropout U_epi of the gating paper's MLP vs eager PyTorch.

Model: the paper's tabular MLP d-128-64-K (Dense-BatchNorm-ReLU-Dropout(0.3)
per hidden layer, `jaxcxai.uncertainty.dropout.MLP`), trained by
`jaxcxai.uncertainty.ensembles.train_mlp` on the training split of the
embedded "weak_signal_binary" role (d = 11, K = 2, 20 epochs with early
stopping on validation). BatchNorm stays in eval mode on both sides (the
library default). Rows: all 6000 z-scored rows of that role cycled to
10 000 (2 000 with `--quick`).

Timed pair (both sides draw their own dropout masks). Ours:
`mc_dropout_uncertainty(model, variables, x, key, num_passes=50)`, the 50
passes one vmap over dropout keys (the library's default counter-hash masks,
`jaxcxai.uncertainty.masks`), then the mutual information. `extra` also
times ours with flax's threefry masks (`dropout_rng="threefry"`).
Baseline: the same weights copied into a PyTorch `nn.Sequential`, 50
passes in an eager Python loop (`torch.no_grad`, CPU, `nn.Dropout` in train
mode, BatchNorm in eval mode), then the reference code's float32 mutual
information max(0, H(p_bar) - mean_t H(p_t)).

Same masks (agreement, and a second timed pair under `extra`): the masks
our library draws for `key` are read off its own passes (the model returns
each Dropout's output; a unit is kept where that output is non-zero, and
where the pre-dropout ReLU is 0 the mask does not matter). PyTorch's loop
then multiplies by those mask tensors (`h * m / 0.7`, flax's
`x / keep_prob`); agreement is max |U_ours - U_torch| <= 1e-5, for the
library's U and for a small jitted forward of ours on the same masks. The
same-mask pair excludes mask generation on both sides (about 96M
Bernoulli draws at 10k rows: with threefry, most of the library's time on a
CPU).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from eval.benches.timing import best_time

PASSES, RATE, TOL, SEED = 50, 0.3, 1e-5, 0


def train_paper_mlp(splits, epochs: int, seed: int = SEED):
    """Trains the paper's MLP on `splits` (a `TabularSplits`).

    Args:
      splits: the dataset, z-scored.
      epochs: at most this many epochs (early stopping, patience 20).
      seed: PRNG seed of initialisation, shuffling and dropout.

    Returns:
      (model, variables) with `{"params", "batch_stats"}`.
    """
    from jaxcxai.uncertainty.dropout import MLP
    from jaxcxai.uncertainty.ensembles import train_mlp

    model = MLP(num_classes=splits.num_classes, dropout_rate=RATE)
    state = train_mlp(
        model, splits.x_train, splits.y_train, jax.random.key(seed),
        x_val=splits.x_val, y_val=splits.y_val, epochs=epochs,
    )  # fmt: skip
    return model, jax.device_get(state.variables())


def torch_mlp(torch, variables):
    """The flax MLP's weights in a PyTorch `nn.Sequential` (eval mode).

    Args:
      torch: the torch module.
      variables: `{"params", "batch_stats"}` of `MLP` (two hidden layers).

    Returns:
      `Sequential(Linear, BatchNorm1d, ReLU, Dropout) x 2 + Linear`, float32.
    """
    nn = torch.nn
    p, s = variables["params"], variables["batch_stats"]
    t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
    layers = []
    for i in (1, 2):
        k = np.asarray(p[f"dense{i}"]["kernel"])
        lin, bn = nn.Linear(*k.shape), nn.BatchNorm1d(k.shape[1], eps=1e-5)
        with torch.no_grad():
            lin.weight.copy_(t(k.T))
            lin.bias.copy_(t(p[f"dense{i}"]["bias"]))
            bn.weight.copy_(t(p[f"bn{i}"]["scale"]))
            bn.bias.copy_(t(p[f"bn{i}"]["bias"]))
            bn.running_mean.copy_(t(s[f"bn{i}"]["mean"]))
            bn.running_var.copy_(t(s[f"bn{i}"]["var"]))
        layers += [lin, bn, nn.ReLU(), nn.Dropout(RATE)]
    head = nn.Linear(*np.asarray(p["head"]["kernel"]).shape)
    with torch.no_grad():
        head.weight.copy_(t(np.asarray(p["head"]["kernel"]).T))
        head.bias.copy_(t(p["head"]["bias"]))
    return nn.Sequential(*layers, head).eval()


def torch_mutual_information(torch, probs):
    """The reference's float32 MI: max(0, H(mean p) - mean_t H(p_t)), eps 1e-8."""
    ent = lambda q: -(q * torch.log(q + 1e-8)).sum(-1)  # noqa: E731
    return torch.clamp(ent(probs.mean(0)) - ent(probs).mean(0), min=0.0)


def torch_mc_uncertainty(torch, net, x, masks=None, passes=PASSES):
    """Eager MC-dropout loop: (U_epi (N,), mean probs (N, K)) as torch tensors.

    Args:
      torch: the torch module.
      net: `torch_mlp(...)` in eval mode.
      x: (N, d) float32 tensor.
      masks: None (`nn.Dropout` in train mode draws its own masks) or a
        pair of (T, N, 128) and (T, N, 64) float32 0/1 tensors.
      passes: T.
    """
    lin1, bn1, _, drop1, lin2, bn2, _, drop2, head = net
    out = []
    with torch.no_grad():
        if masks is None:
            drop1.train(), drop2.train()
        for t in range(passes):
            if masks is None:
                logits = net(x)
            else:
                h = torch.relu(bn1(lin1(x))) * masks[0][t] / (1.0 - RATE)
                h = torch.relu(bn2(lin2(h))) * masks[1][t] / (1.0 - RATE)
                logits = head(h)
            out.append(torch.softmax(logits, -1))
        net.eval()
        probs = torch.stack(out)
        return torch_mutual_information(torch, probs), probs.mean(0)


@jax.jit
def masked_uncertainty(variables, x, m1, m2):
    """Ours on given masks: the MLP's eval-mode forward with (T, N, 128) and
    (T, N, 64) bool masks, vmapped over passes; returns (T, N, K) probs."""
    import jax.numpy as jnp

    p, s = variables["params"], variables["batch_stats"]

    def block(h, i, m):
        h = h @ p[f"dense{i}"]["kernel"] + p[f"dense{i}"]["bias"]
        bn, st = p[f"bn{i}"], s[f"bn{i}"]
        h = (h - st["mean"]) * jax.lax.rsqrt(st["var"] + 1e-5) * bn["scale"]
        return jnp.where(m, jax.nn.relu(h + bn["bias"]) / (1.0 - RATE), 0.0)

    def one(a, b):
        h = block(block(x, 1, a), 2, b)
        return jax.nn.softmax(h @ p["head"]["kernel"] + p["head"]["bias"], -1)

    return jax.vmap(one)(m1, m2)


def library_masks(model, variables, x, key, passes=PASSES):
    """The 0/1 dropout masks our library draws for `key` (pass t: split[t])."""

    def one(k):
        _, acts = model.apply(variables, x, mc_dropout=True, rngs={"dropout": k})
        return acts["hidden1"] != 0, acts["hidden2"] != 0

    return jax.jit(jax.vmap(one))(jax.random.split(key, passes))


def run(quick: bool) -> dict:
    import torch

    from jaxcxai.data.tabular import load_embedded
    from jaxcxai.uncertainty.dropout import mc_dropout_uncertainty
    from jaxcxai.uncertainty.entropy import mutual_information

    n = 2_000 if quick else 10_000
    splits = load_embedded("weak_signal_binary")
    model, variables = train_paper_mlp(splits, epochs=20)
    pool = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    x = np.resize(pool, (n, pool.shape[1])).astype(np.float32)
    xj, key = jax.device_put(x), jax.random.key(SEED)
    repeats = 2 if quick else 3

    def ours():
        est = mc_dropout_uncertainty(model, variables, xj, key, num_passes=PASSES)
        return jax.block_until_ready(est)

    t0 = time.perf_counter()
    ours()
    first = time.perf_counter() - t0
    ours_s, est = best_time(ours, repeats)
    slow = model.clone(dropout_rng="threefry")
    threefry = lambda: jax.block_until_ready(  # noqa: E731
        mc_dropout_uncertainty(slow, variables, xj, key, num_passes=PASSES)
    )
    threefry()
    threefry_s, _ = best_time(threefry, repeats)

    m1, m2 = library_masks(model, variables, xj, key)
    masked = lambda: jax.block_until_ready(  # noqa: E731
        mutual_information(masked_uncertainty(variables, xj, m1, m2))
    )
    masked()
    ours_masked_s, u_masked = best_time(masked, repeats)
    masks = tuple(torch.from_numpy(np.asarray(m, np.float32)) for m in (m1, m2))
    net, xt = torch_mlp(torch, variables), torch.from_numpy(x)
    masked_s, (u_t, p_t) = best_time(
        lambda: torch_mc_uncertainty(torch, net, xt, masks), repeats
    )
    own_s, (u_own, _) = best_time(lambda: torch_mc_uncertainty(torch, net, xt), 2)

    u_ours, p_ours = np.asarray(est.epistemic), np.asarray(est.probs)
    u_t, p_t = u_t.numpy(), p_t.numpy()
    du = np.abs(u_ours - u_t)
    du_masked = np.abs(np.asarray(u_masked) - u_t)
    agreement = {
        "u_epi_max_abs": float(du.max()),
        "u_epi_max_rel": float(du.max() / max(np.abs(u_t).max(), 1e-30)),
        "u_epi_masked_fn_max_abs": float(du_masked.max()),
        "mean_probs_max_abs": float(np.abs(p_ours - p_t).max()),
        "u_epi_mean_ours": float(u_ours.mean()),
        "u_epi_mean_torch": float(u_t.mean()),
        "u_epi_mean_torch_own_masks": float(u_own.numpy().mean()),
        "tol": TOL,
        "compared": "ours (library, key) vs torch fed the masks of that key",
    }
    return {
        "ours_s": ours_s,
        "baseline": f"eager PyTorch {torch.__version__} loop over 50 passes (CPU,"
        " no_grad, the same weights), nn.Dropout drawing its masks, float32 MI",
        "baseline_s": own_s,
        "agreement": agreement,
        "agreement_ok": bool(max(du.max(), du_masked.max()) <= TOL),
        "params": {
            "rows": n,
            "features": int(x.shape[1]),
            "classes": int(splits.num_classes),
            "passes": PASSES,
            "dropout": RATE,
            "model": "MLP d-128-64-K, BatchNorm eval mode, trained 20 epochs",
            "data": "weak_signal_binary (make_classification) rows cycled",
            "timed_pair": "both sides draw their dropout masks (ours: counter-hash"
            " masks, jaxcxai.uncertainty.masks)",
            "masks": "agreement: our masks read off our passes, fed to torch",
        },
        "extra": {
            "ours_first_call_s": first,
            "ours_threefry_masks_s": threefry_s,
            "threefry_speedup": own_s / threefry_s,
            "same_masks_ours_s": ours_masked_s,
            "same_masks_torch_s": masked_s,
            "same_masks_speedup": masked_s / ours_masked_s,
            "torch_threads": torch.get_num_threads(),
        },
    }
