"""`duch_epoch`: DUCH training throughput on UCM-sized features.

1050 training samples of random 512-d image / 768-d caption features, batch
256 (an epoch is 4 full batches and one of 26), 32 bits, hidden 4096, all
reference quirks on. Ours is the jitted global-batch step (`hashing.duch`)
fed the way `train/hashing.py` feeds it (features resident on the device,
batches gathered inside the step); the baseline is a faithful eager
PyTorch (CPU) port of the reference training loop (hashing.md §3): a
per-item `Dataset` converted to tensors and collated by a `DataLoader`, four
separate forward calls, two accumulated discriminator sub-steps with a
double-backward gradient penalty, the hash step, the epoch-end B update and
learning-rate rule. Both start from our initial weights and B, see the same
batches and the same gradient-penalty interpolation weights. Agreement: the
total loss after 20 steps (4 epochs), relative difference <= 1e-4.
"""

import math
import time

import jax
import numpy as np

from jaxcxai import parallel
from jaxcxai.hashing import duch, feed

N_TRAIN, DIM_IMG, DIM_TXT, BATCH, BITS, HIDDEN = 1050, 512, 768, 256, 32, 4096
AGREE_STEPS = 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    return {
        "img": f(N_TRAIN, DIM_IMG),
        "img_aug": f(N_TRAIN, DIM_IMG),
        "txt": f(N_TRAIN, DIM_TXT),
        "txt_aug": f(N_TRAIN, DIM_TXT),
        "label": rng.integers(0, 21, N_TRAIN),
    }


# --------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------


class Ours:
    def __init__(self, hyper, data, key):
        self.key = key
        devices = jax.devices()
        # Fake CPU devices share the same cores: use one device there.
        self.mesh = parallel.make_mesh(
            devices=devices[:1] if devices[0].platform == "cpu" else devices
        )
        repl = parallel.replicated_sharding(self.mesh)
        # As train/hashing.py: the features stay on the devices and each
        # step gathers its batch.
        layout = feed.BatchLayout(one_caption=True, with_txt_aug=False)
        part = dict(data, buffer_idx=np.arange(N_TRAIN))
        self.arrays = feed.resident_arrays(part, layout, self.mesh)
        self.step = jax.jit(
            feed.make_fed_step(duch.make_train_step(hyper), layout, self.mesh),
            donate_argnums=0,
            out_shardings=(repl, repl),
        )
        self.end = jax.jit(
            lambda s, e: duch.epoch_end(s, e, hyper), donate_argnums=0,
            out_shardings=repl,
        )  # fmt: skip

    def init(self, state):
        return parallel.replicate(state, self.mesh)

    def epoch(self, state, epoch, batches):
        losses = []
        for pos in batches:
            rows = parallel.replicate(pos.astype(np.int32), self.mesh)
            state, m = self.step(state, self.arrays, rows, None, self.key)
            losses.append(m["loss"])
        state = self.end(state, epoch)
        jax.block_until_ready(state)
        return state, [float(x) for x in losses]


# --------------------------------------------------------------------------
# Baseline: eager PyTorch port of the reference controller
# --------------------------------------------------------------------------


def _torch_baseline(torch, state, data, uniforms, dev="cpu"):
    nn = torch.nn

    def mlp(d_in, d_hidden, d_out, tanh):
        layers = [
            nn.Linear(d_in, d_hidden),
            nn.BatchNorm1d(d_hidden),
            nn.ReLU(True),
            nn.Linear(d_hidden, d_out),
        ]
        return nn.Sequential(*(layers + [nn.Tanh()] if tanh else layers))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.image_module = mlp(DIM_IMG, HIDDEN, BITS, True)
            self.text_module = mlp(DIM_TXT, HIDDEN, BITS, True)
            self.hash_dis = mlp(BITS, 2 * BITS, 1, False)

        def forward(self, i1, i2, t1, t2):
            f, g = self.image_module, self.text_module
            return f(i1).squeeze(), f(i2).squeeze(), g(t1).squeeze(), g(t2).squeeze()

        def discriminate_hash(self, h):
            return self.hash_dis(h).squeeze()

    def load(seq, params, stats):
        t = lambda a: torch.from_numpy(np.array(a, np.float32))
        with torch.no_grad():
            seq[0].weight.copy_(t(params["fc1"]["dense"]["kernel"]).T)
            seq[0].bias.copy_(t(params["fc1"]["dense"]["bias"]))
            seq[1].weight.copy_(t(params["bn"]["scale"]))
            seq[1].bias.copy_(t(params["bn"]["bias"]))
            seq[1].running_mean.copy_(t(stats["bn"]["mean"]))
            seq[1].running_var.copy_(t(stats["bn"]["var"]))
            seq[3].weight.copy_(t(params["fc2"]["dense"]["kernel"]).T)
            seq[3].bias.copy_(t(params["fc2"]["dense"]["bias"]))

    class Quadruplets(torch.utils.data.Dataset):
        def __len__(self):
            return N_TRAIN

        def __getitem__(self, index):
            return (
                index,
                torch.from_numpy(data["img"][index].astype("float32")),
                torch.from_numpy(data["img_aug"][index].astype("float32")),
                torch.from_numpy(data["txt"][index].astype("float32")),
                torch.from_numpy(data["txt_aug"][index].astype("float32")),
                data["label"][index],
            )

    def ntxent(out_1, out_2):
        out_1 = nn.functional.normalize(out_1)
        out_2 = nn.functional.normalize(out_2)
        out = torch.cat([out_1, out_2], dim=0)
        neg = torch.exp(torch.mm(out, out.t().contiguous())).sum(dim=-1)
        neg = torch.clamp(neg - math.e, min=1e-6)
        pos = torch.exp(torch.sum(out_1 * out_2, dim=-1))
        pos = torch.cat([pos, pos], dim=0)
        return (-torch.log(pos / (neg + 1e-6))).sum()

    model = Model()
    p, s = jax.device_get((state.params, state.batch_stats))
    for name, seq in [("img", model.image_module), ("txt", model.text_module)]:
        load(seq, p[name], s[name])
    load(model.hash_dis, p["disc"], s["disc"])
    model.to(dev)
    codes = s["codes"]
    on_dev = lambda a: torch.from_numpy(np.array(a)).to(dev)
    buf = {k: on_dev(codes[k]) for k in duch.CODE_BUFFERS}
    target = [on_dev(codes["target"])]
    opt_gen = torch.optim.Adam(
        [
            {"params": model.image_module.parameters()},
            {"params": model.text_module.parameters()},
        ],
        lr=1e-4,
        weight_decay=0.0005,
    )
    opt_dis = torch.optim.Adam(
        model.hash_dis.parameters(), lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0001
    )
    dataset = Quadruplets()

    def disc_step(real, fake, u, n):
        d_real = -torch.log(torch.sigmoid(model.discriminate_hash(real.detach())))
        d_real.mean().backward()
        d_fake = model.discriminate_hash(fake.detach())
        (
            -torch.log(torch.ones(n, device=dev) - torch.sigmoid(d_fake)).mean()
        ).backward()
        inter = u * real.detach() + (1 - u) * fake.detach()
        inter.requires_grad_()
        d_inter = model.discriminate_hash(inter)
        grads = torch.autograd.grad(
            outputs=d_inter,
            inputs=inter,
            grad_outputs=torch.ones(d_inter.size(), device=dev),
            create_graph=True,
            retain_graph=True,
            only_inputs=True,
        )[0]
        grads = grads.view(grads.size(0), -1)
        (((grads.norm(2, dim=1) - 1) ** 2).mean() * 10).backward()

    def epoch(e, batches):
        model.train()
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches)
        losses = []
        for idx, img1, img2, txt1, txt2, _ in loader:
            # The reference moves each batch to the GPU when it has one.
            idx, img1, img2, txt1 = (t.to(dev) for t in (idx, img1, img2, txt1))
            txt2 = txt1  # the reference's quirk
            hi1, hi2, ht1, ht2 = model(img1, img2, txt1, txt2)
            buf["img1"][idx, :] = hi1
            buf["img2"][idx, :] = hi2
            buf["txt1"][idx, :] = ht1
            buf["txt2"][idx, :] = ht2
            n = len(idx)
            u = on_dev(next(uniforms))
            opt_dis.zero_grad()
            disc_step(ht1, hi1, u[0], n)
            disc_step(ht2, hi2, u[1], n)
            opt_dis.step()
            ntx = ntxent(hi1, ht1) + ntxent(hi1, hi2) + ntxent(ht1, ht2)
            adv = -torch.log(torch.sigmoid(model.discriminate_hash(ht1))).sum()
            adv = adv - torch.log(torch.sigmoid(model.discriminate_hash(ht2))).sum()
            b = target[0][idx, :]
            quant = sum(torch.sum(torch.pow(b - h, 2)) for h in (hi1, hi2, ht1, ht2))
            bb = sum(
                torch.sum(torch.pow(torch.sum(h, dim=1), 2))
                for h in (hi1, hi2, ht1, ht2)
            )
            err = ntx + 0.01 * adv + 0.001 * quant + 0.01 * bb
            opt_gen.zero_grad()
            err.backward()
            opt_gen.step()
            losses.append(float(err.detach().cpu().numpy()))
        mean = lambda a, b: (buf[a].detach() + buf[b].detach()) / 2
        target[0] = ((mean("img1", "img2") + mean("txt1", "txt2")) / 2).sign()
        if e % 50 == 0:
            for group in opt_gen.param_groups:
                group["lr"] = max(group["lr"] * 0.8, 1e-6)
        return losses

    return epoch


def _uniform_stream(key, steps_per_epoch_sizes, start_step=0):
    """The GP weights of each step, exactly as our step draws them."""
    step = start_step
    while True:
        for n in steps_per_epoch_sizes:
            yield np.array(duch.gp_uniforms(key, step, n, BITS))
            step += 1


def run(quick: bool) -> dict:
    import torch

    torch.manual_seed(0)
    # On a GPU both sides run there, in full float32 (no TF32), so the
    # 20-step losses stay comparable; on the CPU the baseline is CPU torch.
    on_gpu = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
    dev = "cuda" if on_gpu else "cpu"
    if on_gpu:
        jax.config.update("jax_default_matmul_precision", "highest")
        torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    hyper = duch.DuchHyper(bits=BITS, hidden=HIDDEN)
    data = _data()
    key = jax.random.key(1)
    state0 = duch.init_state(jax.random.key(0), hyper, DIM_IMG, DIM_TXT, N_TRAIN)
    state0 = jax.device_get(state0)  # host copy: our step donates its input
    batches = [duch.epoch_batches(N_TRAIN, BATCH, 0, e) for e in range(8)]
    sizes = [len(b) for b in batches[0]]
    spe = len(sizes)
    agree_epochs = AGREE_STEPS // spe

    # Agreement: 20 steps from the same start.
    ours = Ours(hyper, data, key)
    state = ours.init(state0)
    ours_losses = []
    for e in range(agree_epochs):
        state, losses = ours.epoch(state, e, batches[e])
        ours_losses += losses
    base_epoch = _torch_baseline(torch, state0, data, _uniform_stream(key, sizes), dev)
    base_losses = []
    for e in range(agree_epochs):
        base_losses += base_epoch(e, [list(b) for b in batches[e]])
    rel = abs(ours_losses[-1] - base_losses[-1]) / abs(base_losses[-1])

    # Timing: best of `repeats` epochs (after the jit warm-up above).
    repeats = 2 if quick else 5
    best_ours = best_base = float("inf")
    for r in range(repeats):
        e = agree_epochs + r
        t0 = time.perf_counter()
        state, _ = ours.epoch(state, e, batches[e % len(batches)])
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        base_epoch(e, [list(b) for b in batches[e % len(batches)]])
        sync()
        best_base = min(best_base, time.perf_counter() - t0)
    return {
        "ours_s": best_ours,
        "baseline": f"eager PyTorch ({dev}) port of the DUCH reference training loop",
        "baseline_s": best_base,
        "agreement": {
            "loss_after_20_steps_ours": ours_losses[-1],
            "loss_after_20_steps_torch": base_losses[-1],
            "rel_diff": rel,
            "max_rel_diff_all_steps": float(
                max(abs(a - b) / abs(b) for a, b in zip(ours_losses, base_losses))
            ),
        },
        "agreement_ok": bool(rel <= 1e-4),
        "params": {
            "unit": "seconds per epoch",
            "n_train": N_TRAIN,
            "dims": [DIM_IMG, DIM_TXT],
            "batch": BATCH,
            "bits": BITS,
            "hidden": HIDDEN,
            "steps_per_epoch": spe,
            "ours_steps_per_s": spe / best_ours,
            "baseline_steps_per_s": spe / best_base,
            "torch_threads": torch.get_num_threads(),
            "repeats": repeats,
        },
    }
