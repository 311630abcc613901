"""Model files: one .npz holding the model's configuration (cnn.serialization) as a JSON entry, the flat
parameter buffer, and the optimizer's state arrays.

This module reads and writes files and knows no model class: the model hands `write` its configuration and
arrays, and `read` hands them to the function that rebuilds the model. Files are written to a temporary file
in the target's directory, flushed to disk, and renamed over the target, so a crash mid-save leaves the
previous file intact."""
import io
import json
import os
import tempfile
import tokenize
import zipfile

import numpy as np

__all__ = ["write", "read"]


def _check_declared_sizes(archive, file_size):
    """cnn writes uncompressed archives, so no array is larger than the file: a header declaring more is
    refused before NumPy allocates what it declares."""
    for info in archive.infolist():
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > file_size:
            raise ValueError(f"entry {info.filename!r} declares {nbytes} bytes of data, more than the whole file "
                             f"({file_size} bytes)")


def write(path, config, arrays):
    """Write a model's JSON-able `config` and its named `arrays` to `path` atomically (the previous file survives
    a crash mid-save)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cnn-save-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, config=np.array(json.dumps(config)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read(path, rebuild):
    """rebuild(config, arrays) for the model file at `path`; ValueError naming the file for a truncated or
    foreign file, or one whose contents rebuild refuses."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{path!r} is not a cnn model file (not an .npz archive, or truncated)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_declared_sizes(archive, len(data))
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        config = json.loads(str(arrays.pop("config")[()]))
        return rebuild(config, arrays)
    # a file is data: whatever a malformed one makes fail (a list where a dict belongs, a missing key) is its fault
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OSError, zipfile.BadZipFile, EOFError,
            RecursionError, SyntaxError, tokenize.TokenError) as e:  # the last two: a garbled .npy header
        raise ValueError(f"{path!r} is not a readable cnn model file: {e}") from None
