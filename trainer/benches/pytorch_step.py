#!/usr/bin/env python3
"""The amortize model and meta-training step in PyTorch, for `amortize bench --pytorch`.

Same architecture as `shared/src/model` for the parametric regime with the observation signal:
observation tokens (x, y) and the state token θ each go through Linear-GELU-Linear into d_model;
a pre-norm transformer encoder (GELU feed-forward, no dropout) reads [θ, o_1..o_m] under the
task-state mask (θ sees itself; o_j sees θ and o_1..o_j); a final LayerNorm and a linear head
give Δθ for every prefix; θ_j = θ + Δθ_j. The greedy k-step loss scores every prefix's θ_j on the
queries (MSE of the linear predictor), detaches the last one and moves to the next mini-batch;
AdamW with gradient-norm clipping at 1.0. Tasks: linear regression, w ~ N(0, I), x ~ N(0, I),
y = w·x + N(0, σ²), sampled on the host each step like the Rust trainer does.

Prints one JSON line: milliseconds per meta-training step and per refinement step (inference).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from torch import nn


class Amortizer(nn.Module):
    def __init__(self, dim, d_model, n_heads, n_layers, d_ff):
        super().__init__()
        s = dim  # θ: one weight per input (linear regression, no bias)
        self.obs = nn.Sequential(nn.Linear(dim + 1, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.state = nn.Sequential(nn.Linear(s, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, s)
        self.initial = nn.Parameter(torch.zeros(s))

    def step(self, theta, obs):
        """theta [B, 1, S], obs [B, m, dim+1] -> every prefix's state [B, m, S]."""
        m = obs.shape[1]
        tokens = torch.cat([self.state(theta), self.obs(obs)], dim=1)
        t = m + 1
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)  # True = may not attend
        mask[:, 0] = False
        mask[0, 1:] = True
        h = self.norm(self.encoder(tokens, mask=mask))
        return theta + self.head(h[:, 1:])


def sample(rng, tasks, dim, context, queries, noise):
    w = rng.standard_normal((tasks, dim, 1)).astype(np.float32)
    x = rng.standard_normal((tasks, context + queries, dim)).astype(np.float32)
    y = x @ w + noise * rng.standard_normal((tasks, context + queries, 1)).astype(np.float32)
    return (torch.from_numpy(x[:, :context]), torch.from_numpy(y[:, :context]),
            torch.from_numpy(x[:, context:]), torch.from_numpy(y[:, context:]))


def schedule(rng, n, b, k):
    out, perm = [], []
    for _ in range(k):
        if len(perm) < b:
            perm = list(rng.permutation(n)) + perm
        out.append(perm[:b])
        perm = perm[b:]
    return out


def greedy_loss(model, cx, cy, qx, qy, sched):
    theta = model.initial.expand(cx.shape[0], 1, -1)
    losses = []
    for idx in sched:
        obs = torch.cat([cx[:, idx], cy[:, idx]], dim=2)
        states = model.step(theta, obs)  # [B, m, S]
        pred = torch.einsum("bms,bqs->bmq", states, qx)
        losses.append(((pred - qy.transpose(1, 2)) ** 2).mean())
        theta = states[:, -1:].detach()
    return torch.stack(losses).mean()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--queries", type=int, default=32)
    p.add_argument("--noise-std", type=float, default=0.1)
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--d-ff", type=int, default=256)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    model = Amortizer(a.dim, a.d_model, a.n_heads, a.n_layers, a.d_ff)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    train_ms = []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        cx, cy, qx, qy = sample(rng, a.tasks, a.dim, a.context, a.queries, a.noise_std)
        sched = schedule(rng, a.context, a.batch_size, a.k)
        loss = greedy_loss(model, cx, cy, qx, qy, sched)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if i >= a.warmup:
            train_ms.append(1e3 * (time.perf_counter() - t0))
    step_ms = []
    with torch.no_grad():
        cx, cy, qx, qy = sample(rng, a.tasks, a.dim, a.context, a.queries, a.noise_std)
        theta = model.initial.expand(a.tasks, 1, -1)
        for i in range(a.warmup + a.iters):
            idx = schedule(rng, a.context, a.batch_size, 1)[0]
            t0 = time.perf_counter()
            obs = torch.cat([cx[:, idx], cy[:, idx]], dim=2)
            theta = model.step(theta, obs)[:, -1:]
            theta.sum().item()
            if i >= a.warmup:
                step_ms.append(1e3 * (time.perf_counter() - t0))
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "framework": f"PyTorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "parameters": params,
        "train_step_ms": statistics.median(train_ms),
        "refine_step_ms": statistics.median(step_ms),
    }))


if __name__ == "__main__":
    main()
