"""`python -m cnn.lenet`: the lecture's LeNet-5 program on MNIST (CS 461, lecture 20).

Trains cnn.applications.lenet5 on the first --train_samples training images, printing each epoch's training
and testing loss and accuracy, then the final test accuracy; --save_mismatch N writes the first N
misclassified test digits as PNG files. The data is the installed MNIST (cnn.datasets.load_mnist), or the
four IDX files (.gz or not) given by --train, --train_labels, --test and --test_labels.

--schedule lecture uses LeCun et al.'s learning rates: 0.0005 for two epochs, 0.0002 for the next two,
0.0001 for three, 0.00005 for four, then 0.00001. --augment puts random rotation, stretching (independent
height and width zoom) and translation in front of the network, active only while training."""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import cnn
from cnn.__main__ import positive_int
from cnn.applications import BACKGROUND, lenet5, lenet5_inputs
from cnn.callbacks import LearningRateScheduler
from cnn.image import write_png
from cnn.layers import RandomRotation, RandomTranslation, RandomZoom
from cnn.schedules import PiecewiseConstantDecay

# LeCun et al.'s rates as the lecture quotes them, epochs counted from 0 (Keras's inclusive boundaries)
LECTURE_SCHEDULE = PiecewiseConstantDecay([1, 3, 6, 10], [5e-4, 2e-4, 1e-4, 5e-5, 1e-5])


def fraction(text):
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def parser():
    p = argparse.ArgumentParser(prog="python -m cnn.lenet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=5, help="training epochs (default: 5)")
    p.add_argument("--train_samples", type=positive_int, default=None,
                   help="train on the first N training images (default: all)")
    p.add_argument("--batch_size", type=positive_int, default=32, help="batch size (default: 32)")
    p.add_argument("--random_seed", type=int, default=0, help="seed of the weights, shuffling and augmentation")
    p.add_argument("--save_mismatch", type=int, default=0, metavar="N",
                   help="write the first N misclassified test digits as PNG files (default: 0)")
    p.add_argument("--mismatch_dir", default="mismatch", help="folder for those files (default: ./mismatch)")
    p.add_argument("--schedule", choices=["constant", "lecture"], default="constant",
                   help="learning rates: constant --lr, or the lecture's piecewise schedule (default: constant)")
    p.add_argument("--lr", type=float, default=5e-4, help="the constant learning rate (default: 0.0005)")
    p.add_argument("--augment", action="store_true", help="random rotation, stretching and translation")
    p.add_argument("--rotation", type=fraction, default=0.03,
                   help="with --augment: rotations up to this fraction of a full turn (default: 0.03, ~11 degrees)")
    p.add_argument("--zoom", type=fraction, default=0.1,
                   help="with --augment: height and width each scaled by up to this fraction (default: 0.1)")
    p.add_argument("--translation", type=fraction, default=0.05,
                   help="with --augment: shifts up to this fraction of the image size (default: 0.05)")
    for name in ("train", "train_labels", "test", "test_labels"):
        p.add_argument(f"--{name}", default=None, help=f"IDX file of the {name.replace('_', ' ')} (default: MNIST)")
    p.add_argument("--threads", type=positive_int, default=None, help="OpenMP threads (default: all cores)")
    return p


def load_data(args, p):
    """((x_train, y_train), (x_test, y_test)) from the four IDX files, or the installed MNIST."""
    paths = [args.train, args.train_labels, args.test, args.test_labels]
    if all(path is None for path in paths):
        try:
            return cnn.datasets.load_mnist()
        except FileNotFoundError as e:
            p.exit(2, f"{p.prog}: {e}\n")
    if any(path is None for path in paths):
        p.error("--train, --train_labels, --test and --test_labels go together: give all four or none")
    try:
        x_train, y_train, x_test, y_test = (cnn.datasets.load_idx(path) for path in paths)
    except (OSError, ValueError) as e:
        p.exit(2, f"{p.prog}: {e}\n")
    return (x_train, y_train), (x_test, y_test)


def build_model(args):
    """LeNet-5, behind the augmentation layers when asked. The layers draw from their own generator (seeded
    from --random_seed), so a run with --augment starts from the same weights and shuffles its batches in the
    same order as one without."""
    model = lenet5(seed=args.random_seed)
    if not args.augment:
        return model
    fill = dict(fill_mode="constant", fill_value=BACKGROUND)  # the lecture's background level
    augment = [RandomRotation(args.rotation, seed=args.random_seed + 1, input_shape=(1, 32, 32), **fill),
               RandomZoom(args.zoom, args.zoom, seed=args.random_seed + 2, **fill),
               RandomTranslation(args.translation, args.translation, seed=args.random_seed + 3, **fill)]
    layers = [type(layer).from_config(layer.get_config()) for layer in model.layers]
    return cnn.Sequential(augment + layers, seed=args.random_seed)


def save_mismatches(folder, images, labels, predicted, count):
    """The first `count` misclassified test images as PNGs named by index, true and predicted label."""
    wrong = np.flatnonzero(predicted != labels)[:count]
    os.makedirs(folder, exist_ok=True)
    for i in wrong:
        write_png(os.path.join(folder, f"mismatch_{i:05d}_true{labels[i]}_pred{predicted[i]}.png"), images[i])
    return len(wrong)


def predict_classes(model, x, batch=1000):
    """model.predict(x).argmax(1); predict takes fit's thread cap itself (cnn._contention)."""
    return model.predict(x, batch_size=batch, verbose=0).argmax(axis=1)


def train(args, data, verbose=True):
    """Train as the parsed flags say on data ((x_train, y_train), (x_test, y_test)), uint8 images (N, 28, 28);
    returns the trained model, the per-epoch logs (loss, accuracy, val_loss, val_accuracy, learning_rate),
    the test predictions and the test accuracy. Prints as the program does unless verbose is false."""
    say = print if verbose else (lambda *a, **k: None)
    (x_train, y_train), (x_test, y_test) = data
    n = len(x_train) if args.train_samples is None else min(args.train_samples, len(x_train))
    train_x, test_x = lenet5_inputs(x_train[:n]), lenet5_inputs(x_test)
    y_train, y_test = y_train[:n].astype(np.int64), y_test.astype(np.int64)

    model = build_model(args)
    lr = LECTURE_SCHEDULE(0) if args.schedule == "lecture" else args.lr
    model.compile(cnn.optimizers.Adam(lr, variant="torch"), "sparse_categorical_crossentropy", ["accuracy"])
    callbacks = [LearningRateScheduler(LECTURE_SCHEDULE)] if args.schedule == "lecture" else []
    say(f"LeNet-5 on {n} training and {len(test_x)} test images, {args.epochs} epochs, batch {args.batch_size}, "
        f"seed {args.random_seed}, learning rate {args.schedule}"
        + (f", augmentation (rotation {args.rotation}, zoom {args.zoom}, translation {args.translation})"
           if args.augment else ""), flush=True)
    start, history = time.perf_counter(), {}
    for epoch in range(args.epochs):
        logs = model.fit(train_x, y_train, batch_size=args.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                         validation_data=(test_x, y_test), callbacks=callbacks, verbose=0).history
        logs["learning_rate"] = [float(model.optimizer.learning_rate)]
        for key, values in logs.items():
            history.setdefault(key, []).append(values[-1])
        say(f"Epoch {epoch + 1}/{args.epochs}: training loss {logs['loss'][-1]:.4f}, accuracy "
            f"{logs['accuracy'][-1]:.4f}; testing loss {logs['val_loss'][-1]:.4f}, accuracy "
            f"{logs['val_accuracy'][-1]:.4f}; learning rate {model.optimizer.learning_rate:g}", flush=True)
    predicted = predict_classes(model, test_x)
    correct = int((predicted == y_test).sum())
    say(f"Test accuracy: {correct / len(y_test):.4f} ({correct} of {len(y_test)} correct) in "
        f"{time.perf_counter() - start:.1f} s")
    return {"model": model, "history": history, "predicted": predicted, "accuracy": correct / len(y_test)}


def main(argv=None):
    """Run the program with these arguments (default: the command line's); returns what train returns."""
    p = parser()
    args = p.parse_args(argv)
    if args.save_mismatch < 0:
        p.error(f"argument --save_mismatch: expected an integer >= 0, got {args.save_mismatch}")
    if not args.lr > 0:
        p.error(f"argument --lr: expected a number > 0, got {args.lr}")
    if args.threads is not None:
        cnn.set_num_threads(args.threads)
    data = load_data(args, p)
    result = train(args, data)
    if args.save_mismatch:
        (_, _), (x_test, y_test) = data
        saved = save_mismatches(args.mismatch_dir, x_test, y_test, result["predicted"], args.save_mismatch)
        print(f"Saved {saved} misclassified test digits to {args.mismatch_dir}/")
    return result


if __name__ == "__main__":
    main()
