"""Small builders shared by the Sequential tests (model, callbacks, save, summary, dropout)."""
import numpy as np

import cnn
from cnn.layers import Dense, Dropout, Input


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(got - ref) / (denom if denom > 0 else 1.0))


def data(n=60, d=5, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, k, n)


def small_model(d=5, k=3, seed=0, dropout=None, optimizer=None, dtype="float64", metrics=("accuracy",)):
    layers = [Input((d,)), Dense(7, activation="tanh")]
    if dropout is not None:
        layers.append(Dropout(dropout))
    layers += [Dense(k, activation="softmax")]
    model = cnn.Sequential(layers, seed=seed, dtype=dtype)
    model.compile(optimizer=optimizer or cnn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=list(metrics))
    return model
