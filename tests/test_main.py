"""`python -m cnn`, the README's first command: progress while it trains, then the test accuracy; bad
arguments end in argparse's usage error (exit code 2), never a traceback."""
import re
import subprocess
import sys

import pytest
from user_env import child_env

pytest.importorskip("sklearn")  # the job trains on scikit-learn's digits


def main_job(*args):
    return subprocess.run([sys.executable, "-m", "cnn", *args], capture_output=True, text=True, timeout=300,
                          env=child_env(PYTHONIOENCODING="utf-8"))


def test_trains_with_a_progress_bar_and_reports_accuracy():
    done = main_job("--epochs", "2", "--threads", "1")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr  # tqdm's bar, or cnn's text bar without tqdm
    assert "2 epochs, 1 threads" in out
    assert out.index("Epoch 1/2") < out.index("Epoch 2/2") < out.index("test accuracy")
    # 1,437 training images in batches of 32: each epoch's bar reaches 45/45 steps, with the running accuracy
    epochs = out.split("Epoch ")[1:]
    for text in epochs:
        assert re.search(r"45/45", text) and ("━" * 20 in text or "█" * 10 in text), text
        assert re.search(r"accuracy: 0\.\d{4}", text), text
    accuracy = float(re.search(r"test accuracy (\d\.\d{4}) \(360 images\)", out).group(1))
    assert accuracy > 0.9  # two epochs on the digits already get there (0.96 at seed 0)


@pytest.mark.parametrize("args, words", [
    (["--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["--epochs", "-1"], "argument --epochs: expected an integer >= 1, got -1"),
    (["--epochs", "two"], "argument --epochs: expected an integer >= 1, got 'two'"),
    (["--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
    (["--threads", "100000"], "argument --threads:"),
])
def test_bad_arguments_are_a_usage_error(args, words):
    done = main_job(*args)
    assert done.returncode == 2
    assert words in done.stderr
    assert done.stderr.startswith("usage: python -m cnn")
    assert "Traceback" not in done.stderr and done.stdout == ""
