"""`python -m cnn`: the bundled default job. Trains a small network on scikit-learn's 8x8 digits
(1,797 images, bundled with scikit-learn, no download), showing a progress bar per epoch, and prints
test accuracy and time."""
import argparse
import time

import numpy as np

import cnn
from cnn.layers import Dense


def positive_int(text):
    """argparse type: an int >= 1, refused with a message naming what came."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnn", description=__doc__)
    parser.add_argument("--epochs", type=positive_int, default=30, help="training epochs, >= 1 (default: 30)")
    parser.add_argument("--threads", type=positive_int, default=None, help="OpenMP threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        try:
            cnn.set_num_threads(args.threads)
        except ValueError as e:  # above the most cnn allows; the C message says which
            parser.error(f"argument --threads: {e}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the demo reads scikit-learn's digits: pip install 'cnn[sklearn]'") from None
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    model = cnn.Sequential([Dense(128, "relu", input_dim=64), Dense(64, "relu"), Dense(10, "softmax")], seed=0)
    model.compile(cnn.optimizers.SGD(0.05, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy",
                  ["accuracy"])
    print(f"cnn {cnn.__version__}: 64-128-64-10 MLP on scikit-learn digits, {args.epochs} epochs, "
          f"{cnn.get_num_threads()} threads", flush=True)
    start = time.perf_counter()
    history = model.fit(x[:split], y[:split], epochs=args.epochs, batch_size=32, verbose=1)
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x[split:], y[split:])
    print(f"train loss {history.history['loss'][-1]:.4f}, test loss {loss:.4f}, "
          f"test accuracy {accuracy:.4f} ({len(x) - split} images), training time {elapsed:.2f} s")


if __name__ == "__main__":
    main()
