"""The `duch_epoch` baseline: a faithful eager PyTorch port of the DUCH
reference training loop (comrados/duch), on the CPU or on CUDA.

A per-item `Dataset` collated by a `DataLoader`, four separate forward
calls, two accumulated discriminator sub-steps with a double-backward
gradient penalty, the hash step, the epoch-end B update and the
learning-rate rule. It starts from our initial weights and B and takes the
gradient-penalty weights u from `uniforms`, so its losses can be compared
with ours step by step.
"""

import math

import jax
import numpy as np

from jaxcxai.hashing import duch

# The shapes of the benchmark (`duch_epoch`).
N_TRAIN, DIM_IMG, DIM_TXT, BATCH, BITS, HIDDEN = 1050, 512, 768, 256, 32, 4096


def torch_baseline(torch, state, data, uniforms, dev="cpu"):
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
