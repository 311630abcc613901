"""`python -m cnn.lenet`, the lecture's command-line program: the real MNIST run writes its mismatch PNGs;
IDX paths given as the lecture passes them; the schedule and augmentation flags; the PNG writer."""
import gzip
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest
from test_datasets import idx_bytes
from user_env import child_env, require_mnist

from cnn import lenet
from cnn.image import write_png


def read_png(path):
    """The pixels of an 8-bit grayscale PNG that write_png wrote (one IDAT chunk, filter 0 on every row)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + size]
        assert int.from_bytes(data[at + 8 + size:at + 12 + size], "big") == zlib.crc32(kind + body)
        chunks[kind] = body
        at += 12 + size
    w, h = int.from_bytes(chunks[b"IHDR"][:4], "big"), int.from_bytes(chunks[b"IHDR"][4:8], "big")
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, w + 1)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:]


def test_png_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (7, 5), dtype=np.uint8)
    write_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), img)
    with pytest.raises(ValueError, match="uint8 image of shape"):
        write_png(tmp_path / "b.png", img.astype(np.float32))


def test_the_lecture_command_on_mnist_writes_five_pngs(tmp_path):
    require_mnist()
    out = subprocess.run([sys.executable, "-m", "cnn.lenet", "--epochs", "1", "--train_samples", "2000",
                          "--save_mismatch", "5"], cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    assert re.search(r"Epoch 1/1: training loss [\d.]+, accuracy [\d.]+; testing loss [\d.]+", out.stdout)
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)", out.stdout)[1])
    pngs = sorted((tmp_path / "mismatch").glob("*.png"))
    assert len(pngs) == 5 and accuracy > 0.7
    for png in pngs:
        true, pred = map(int, re.fullmatch(r"mismatch_\d{5}_true(\d)_pred(\d)\.png", png.name).groups())
        assert true != pred and read_png(png).shape == (28, 28)


def idx_files(tmp_path, n_train=96, n_test=40):
    """Four small IDX .gz files: two kinds of image (a bar across or down), labels 0 and 1."""
    rng = np.random.default_rng(0)
    paths = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 2, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, label in enumerate(labels):
            (images[i, 10:18, 4:24] if label else images[i, 4:24, 10:18])[...] = 255
        for name, arr in ((split, images), (f"{split}_labels", labels)):
            paths[name] = tmp_path / f"{name}.gz"
            paths[name].write_bytes(gzip.compress(idx_bytes(arr)))
    return paths


def flags(paths):
    return [arg for name, path in paths.items() for arg in (f"--{name}", str(path))]


def test_idx_paths_schedule_and_augmentation(tmp_path, capsys):
    paths = idx_files(tmp_path)
    result = lenet.main(flags(paths) + ["--epochs", "3", "--batch_size", "16", "--schedule", "lecture", "--augment",
                                        "--save_mismatch", "40", "--mismatch_dir", str(tmp_path / "m")])
    text = capsys.readouterr().out
    assert "LeNet-5 on 96 training and 40 test images" in text and "augmentation (rotation 0.03" in text
    assert [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("Epoch")] == \
        ["0.0005", "0.0005", "0.0002"]
    assert len(result["history"]["val_loss"]) == 3 and result["accuracy"] >= 0.9
    assert len(list((tmp_path / "m").glob("*.png"))) == int(round((1 - result["accuracy"]) * 40))


def test_same_seed_same_run_and_augmentation_keeps_the_start(tmp_path, capsys):
    paths = flags(idx_files(tmp_path))
    a, b = (lenet.main(paths + ["--epochs", "1", "--train_samples", "50"]) for _ in range(2))
    assert a["history"] == b["history"]
    plain, augmented = lenet.lenet5(seed=3), lenet.build_model(lenet.parser().parse_args(["--augment",
                                                                                          "--random_seed", "3"]))
    plain.build()
    augmented.build()
    for wa, wb in zip(plain.get_weights(), augmented.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("argv, words", [
    (["--train", "x.gz"], "give all four or none"),
    (["--save_mismatch", "-1"], "--save_mismatch: expected an integer >= 0"),
    (["--rotation", "1.5"], "expected a number in"),
    (["--schedule", "cosine"], "invalid choice"),
])
def test_bad_flags_are_named(argv, words, capsys):
    with pytest.raises(SystemExit):
        lenet.main(argv)
    assert words in capsys.readouterr().err


def test_a_bad_idx_file_is_named(tmp_path, capsys):
    paths = idx_files(tmp_path)
    paths["test_labels"].write_bytes(b"not idx")
    with pytest.raises(SystemExit):
        lenet.main(flags(paths))
    assert "test_labels.gz: not a valid IDX file" in capsys.readouterr().err
