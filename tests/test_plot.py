"""cnn.plot: each function draws on the Agg backend and returns its Figure; a clear ImportError without
matplotlib."""
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnn import plot  # noqa: E402
from cnn.callbacks import History  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_history_plots_train_and_validation_curves():
    h = History()
    h.history = {"loss": [1.0, 0.5, 0.3], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.1, 0.7, 0.6],
                 "val_accuracy": [0.4, 0.6, 0.7]}
    fig = plot.history(h)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    loss_ax = fig.axes[0]
    assert [tuple(line.get_ydata()) for line in loss_ax.lines] == [(1.0, 0.5, 0.3), (1.1, 0.7, 0.6)]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]
    assert len(plot.history({"loss": [1.0, 0.9]}).axes) == 1
    with pytest.raises(ValueError, match="History"):
        plot.history({"accuracy": [1]})


def test_gradient_norms_one_log_scale_line_per_layer():
    logs = {"loss": [1, 2], "grad_norm/dense": [1e-4, 2e-4], "grad_norm/dense_1": [0.5, 0.4]}
    ax = plot.gradient_norms(logs).axes[0]
    assert ax.get_yscale() == "log" and [line.get_label() for line in ax.lines] == ["dense", "dense_1"]
    assert tuple(ax.lines[0].get_ydata()) == (1e-4, 2e-4)
    with pytest.raises(ValueError, match="GradientNorms"):
        plot.gradient_norms({"loss": [1]})


def test_filters_draw_each_kernel_column_as_an_image():
    w = np.random.default_rng(0).standard_normal((784, 12))
    fig = plot.filters(w, (28, 28))
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 12 and len(fig.axes) == 20  # a 2 x 10 grid
    np.testing.assert_array_equal(images[3].get_array(), w[:, 3].reshape(28, 28))
    assert images[3].get_clim() == (-np.abs(w[:, 3]).max(), np.abs(w[:, 3]).max())
    with pytest.raises(ValueError, match="784"):
        plot.filters(w[:100], (28, 28))


def test_confusion_matrix_counts():
    y_true = [0, 1, 2, 2, 1, 0, 2]
    scores = np.eye(3)[[0, 2, 2, 1, 1, 0, 2]]
    fig = plot.confusion_matrix(y_true, scores, labels=["a", "b", "c"])
    np.testing.assert_array_equal(fig.counts, [[2, 0, 0], [0, 1, 1], [0, 1, 2]])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c"]
    assert len(fig.axes[0].texts) == 9
    with pytest.raises(ValueError, match="same number"):
        plot.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="labels"):
        plot.confusion_matrix([0, 3], [0, 1], labels=["a"])


def test_missing_matplotlib_names_the_plot_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"cnn\[plot\]"):
        plot.history({"loss": [1.0]})
