"""What a sequential learner can reach on the web demo's regression task (docs/results.md).

The task of `amortize train --task function-regression`: f(x) = phi(x).w with the first 8 Legendre
polynomials, w ~ N(0, I), 32 context points x ~ U(-1, 1) with noise sigma 0.1, 32 query points,
MSE against the noiseless f. Refinement: 10 mini-batches of 8 points, shuffled passes over the 32.
Prints query MSE / Bayes (posterior mean from all 32 points) after steps 1, 5 and 10 for
  - a Kalman filter: the exact posterior update per mini-batch, carrying the full precision
    (a revisited point counts again);
  - fixed preconditioned updates of theta alone, theta += A_t phi^T (y - phi theta), with A_t the
    posterior covariance of m_t * 8 points' *expected* Gram matrix: m_t = t (step known) or a
    constant m (Markovian).
Run: python3 -m venv v && v/bin/pip install numpy && v/bin/python scripts/sequential_bayes.py
"""
import numpy as np
from numpy.polynomial import legendre

P, SIGMA, N, B, K, TASKS = 8, 0.1, 32, 8, 10, 3000
rng = np.random.default_rng(0)


def phi(x):
    return np.stack([legendre.legval(x, np.eye(P)[i]) for i in range(P)], -1)


tasks = []
for _ in range(TASKS):
    w = rng.standard_normal(P)
    x = rng.uniform(-1, 1, N)
    y = phi(x) @ w + SIGMA * rng.standard_normal(N)
    xq = rng.uniform(-1, 1, 32)
    order = []
    while len(order) < B * K:
        order += list(rng.permutation(N))
    tasks.append((phi(x), y, phi(xq), phi(xq) @ w, order))


def bayes():
    errs = []
    for F, y, Q, fq, _ in tasks:
        prec = np.eye(P) + F.T @ F / SIGMA**2
        mu = np.linalg.solve(prec, F.T @ y / SIGMA**2)
        errs.append(np.mean((Q @ mu - fq) ** 2))
    return np.mean(errs)


def kalman():
    errs = {k: [] for k in (1, 5, 10)}
    for F, y, Q, fq, order in tasks:
        prec, eta = np.eye(P), np.zeros(P)
        for k in range(K):
            idx = order[k * B:(k + 1) * B]
            prec += F[idx].T @ F[idx] / SIGMA**2
            eta += F[idx].T @ y[idx] / SIGMA**2
            if k + 1 in errs:
                errs[k + 1].append(np.mean((Q @ np.linalg.solve(prec, eta) - fq) ** 2))
    return {k: np.mean(v) for k, v in errs.items()}


GRAM = np.diag([1 / (2 * i + 1) for i in range(P)])  # E[phi phi^T] for x ~ U(-1, 1)


def preconditioned(m_of_step):
    errs = {k: [] for k in (1, 5, 10)}
    for F, y, Q, fq, order in tasks:
        theta = np.zeros(P)
        for k in range(K):
            idx = order[k * B:(k + 1) * B]
            a = np.linalg.inv(np.eye(P) + B * m_of_step(k + 1) * GRAM / SIGMA**2) / SIGMA**2
            theta = theta + a @ (F[idx].T @ (y[idx] - F[idx] @ theta))
            if k + 1 in errs:
                errs[k + 1].append(np.mean((Q @ theta - fq) ** 2))
    return {k: np.mean(v) for k, v in errs.items()}


def show(name, errs, b):
    print(f"{name:<40}" + "  ".join(f"{k:>2}: {v / b:9.2f}x" for k, v in errs.items()))


b = bayes()
print(f"Bayes posterior mean (all {N} points): query MSE {b:.4f}")
show("Kalman filter (full precision)", kalman(), b)
show("preconditioned, step known (m = t)", preconditioned(lambda t: t), b)
for m in (3, 4, 6):
    show(f"preconditioned, Markovian (m = {m})", preconditioned(lambda t, m=m: m), b)
