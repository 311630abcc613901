# %% [markdown]
# # MLP decision boundaries (CS 461, lecture 20)
#
# The lecture fits `sklearn.neural_network.MLPClassifier` to a 40-point two-class "moon and sun" set
# for 18 configurations (hidden layers (10,10), (100,100), (1000,1000); solvers sgd and adam;
# activations logistic, tanh and relu; `max_iter=5000`) and draws each decision function.
# Here the same grid runs with `cnn.MLPClassifier` (one changed import) and, for comparison, with
# scikit-learn itself. `CNN_QUICK=1` runs a shortened version (fewer iterations, no 1000-wide nets).

# %%
import os
import time

import matplotlib.pyplot as plt
import sklearn.neural_network
from sklearn.inspection import DecisionBoundaryDisplay

import cnn

QUICK = os.environ.get("CNN_QUICK") == "1"
MAX_ITER = 300 if QUICK else 5000

# %% [markdown]
# ## The data, generated exactly as the lecture does
# `np.random.seed(100)`; 20 points on an arc of radius 10 at angles U(π/10, 7π/10) plus N(0, 1)
# noise (the moon, class 0); 20 points with x ~ U(0, 3), y ~ N(2, 2) (the sun, class 1).

# %%
X, y = cnn.datasets.moon_and_sun(seed=100)
plt.figure(figsize=(4, 4))
plt.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k")
plt.title("moon and sun")
plt.show()

# %%
SIZES = [(10, 10), (100, 100)] if QUICK else [(10, 10), (100, 100), (1000, 1000)]
CONFIGS = [(h, s, a) for h in SIZES for s in ["sgd", "adam"] for a in ["logistic", "tanh", "relu"]]


def fit_grid(Estimator):
    results = []
    for hidden, solver, activation in CONFIGS:
        model = Estimator(hidden_layer_sizes=hidden, solver=solver, activation=activation, max_iter=MAX_ITER,
                          random_state=0)
        start = time.perf_counter()
        with __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")  # ConvergenceWarning in quick mode
            model.fit(X, y)
        results.append(dict(model=model, seconds=time.perf_counter() - start, n_iter=model.n_iter_,
                            accuracy=model.score(X, y)))
    return results


ours = fit_grid(cnn.MLPClassifier)
theirs = fit_grid(sklearn.neural_network.MLPClassifier)
print(f"cnn: {sum(r['seconds'] for r in ours):.2f} s for the grid; "
      f"scikit-learn: {sum(r['seconds'] for r in theirs):.2f} s")

# %% [markdown]
# ## Decision functions, cnn (top) and scikit-learn (bottom)

# %%
def draw(results, title):
    fig, axes = plt.subplots(len(SIZES), 6, figsize=(18, 3 * len(SIZES)), squeeze=False)
    for ax, (hidden, solver, activation), r in zip(axes.ravel(), CONFIGS, results):
        DecisionBoundaryDisplay.from_estimator(r["model"], X, response_method="predict_proba", ax=ax,
                                               cmap="coolwarm", alpha=0.6, grid_resolution=80)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=15)
        ax.set_title(f"{hidden} {solver} {activation}\nn_iter_={r['n_iter']}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    plt.show()


draw(ours, "cnn.MLPClassifier")
draw(theirs, "sklearn.neural_network.MLPClassifier")

# %% [markdown]
# ## The table
# The lecture ran scikit-learn; its column is scikit-learn's figure on the same data and seed.

# %%
print(f"{'configuration':<30} {'sklearn n_iter_':>15} {'cnn n_iter_':>12} {'sklearn acc':>11} {'cnn acc':>8}"
      f" {'sklearn s':>10} {'cnn s':>8}")
for (hidden, solver, activation), a, b in zip(CONFIGS, theirs, ours):
    print(f"{str(hidden) + ' ' + solver + ' ' + activation:<30} {a['n_iter']:>15} {b['n_iter']:>12} "
          f"{a['accuracy']:>11.3f} {b['accuracy']:>8.3f} {a['seconds']:>10.3f} {b['seconds']:>8.3f}")
total_ours, total_theirs = sum(r["seconds"] for r in ours), sum(r["seconds"] for r in theirs)
print(f"{'total time':<30} {'':>15} {'':>12} {'':>11} {'':>8} {total_theirs:>10.2f} {total_ours:>8.2f}"
      f"   ({total_theirs / total_ours:.1f}x faster)")
