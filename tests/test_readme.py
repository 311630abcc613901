"""The README's Python examples run as written, each in a fresh interpreter as a user would run it.

The first needs nothing beyond the test dependencies (scikit-learn's bundled digits). The second,
LeNet-5 on MNIST, skips where MNIST is not installed (the reason gives the command); by default it
trains on the first 2,000 of MNIST's 60,000 images, so it takes seconds, and `-m slow` runs it in full."""
import pathlib
import re
import subprocess
import sys

import pytest
from user_env import child_env, require_mnist

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.S | re.M)

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

# the examples' own lines, unchanged; only what surrounds them is the test's
QUICK_MNIST = """import cnn.datasets
_load_mnist = cnn.datasets.load_mnist
def _first_images(path=None):
    (x_train, y_train), (x_test, y_test) = _load_mnist(path)
    return (x_train[:2000], y_train[:2000]), (x_test[:1000], y_test[:1000])
cnn.datasets.load_mnist = _first_images
"""
FIGURES = """
import matplotlib.pyplot as plt
print("figures:", [len(plt.figure(n).axes) for n in plt.get_fignums()])
"""


def run_example(tmp_path, source):
    script = tmp_path / "example.py"
    script.write_text(source)
    # warnings are errors, as in the suite; Agg draws the figures without a display
    done = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True, text=True,
                          timeout=1800, cwd=tmp_path, env=child_env(MPLBACKEND="Agg", PYTHONIOENCODING="utf-8"))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_readme_has_the_two_examples():
    assert len(BLOCKS) == 2
    assert "load_mnist" not in BLOCKS[0] and "cnn.datasets.load_mnist()" in BLOCKS[1]


def test_first_example_runs_as_written(tmp_path):
    out = run_example(tmp_path, BLOCKS[0] + FIGURES)
    assert "Total params: 3,760" in out  # model.summary(): 64*50 + 50 and 50*10 + 10
    stopped = int(re.search(r"Epoch (\d+): early stopping", out).group(1))
    assert 5 < stopped < 100 and f"Epoch {stopped}/100" in out and f"Epoch {stopped + 1}/100" not in out
    assert "figures: [2]" in out  # cnn.plot.history: one figure, loss and accuracy panels
    accuracy = float(re.search(r"MLPClassifier test accuracy (\S+)", out).group(1))
    assert accuracy > 0.95  # 0.976 at random_state=0


def lenet_accuracy(out):
    loss, accuracy = map(float, re.search(r"LeNet-5 test loss and accuracy \[(\S+), (\S+)\]", out).groups())
    assert 0 < loss < 2.3  # below chance level's log(10)
    return accuracy


def test_mnist_example_runs_on_2000_images(tmp_path):
    require_mnist()
    out = run_example(tmp_path, QUICK_MNIST + BLOCKS[1])
    assert "63/63" in out  # one epoch of 2,000 images in batches of 32
    assert lenet_accuracy(out) > 0.5


@pytest.mark.slow
def test_mnist_example_runs_in_full(tmp_path):
    require_mnist()
    out = run_example(tmp_path, BLOCKS[1])
    assert "1875/1875" in out
    assert lenet_accuracy(out) > 0.95  # 0.969 after its one epoch
