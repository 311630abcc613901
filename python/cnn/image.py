"""Images: warps of NCHW batches in C (scipy.ndimage.affine_transform's convention, every plane at once), and a
PNG writer for grayscale images."""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from . import _core
from ._validation import as_float_array, check_choice, check_number

if TYPE_CHECKING:
    from ._types import ArrayLike

__all__ = ["affine_transform", "write_png", "FILL_MODES"]

FILL_MODES = {"constant": _core.IMAGE_FILL_CONSTANT, "nearest": _core.IMAGE_FILL_NEAREST,
              "reflect": _core.IMAGE_FILL_REFLECT}


def affine_matrices(matrix, offset, n, dtype):
    """(1 or n, 2, 3) matrices [A | b] from a 2x2 or 2x3 matrix (or n of them) and an offset (scalar, (2,), or
    (n, 2)); a 2x3 matrix's last column is its offset, and `offset` is then ignored, as in scipy."""
    m = as_float_array(matrix, "matrix", np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1] != 2 or m.shape[2] not in (2, 3) or m.shape[0] not in (1, n):
        raise ValueError(f"matrix must have shape (2, 2), (2, 3), ({n}, 2, 2) or ({n}, 2, 3) for {n} images, "
                         f"got {np.shape(matrix)}")
    if m.shape[2] == 2:
        b = as_float_array(offset, "offset", np.float64)
        if b.size == 1 and b.ndim <= 1:  # a number (ascontiguousarray gives it shape (1,))
            b = np.full((1, 2), b[0])
        elif b.shape == (2,):
            b = b[None]
        elif b.ndim != 2 or b.shape[1] != 2 or b.shape[0] not in (1, n):
            raise ValueError(f"offset must be a number, a pair or ({n}, 2) pairs, got shape {b.shape}")
        k = max(m.shape[0], b.shape[0])
        m = np.concatenate([np.broadcast_to(m, (k, 2, 2)), np.broadcast_to(b, (k, 2))[:, :, None]], axis=2)
    return np.ascontiguousarray(m, dtype=dtype)


def affine_transform(x: ArrayLike, matrix: ArrayLike, offset: ArrayLike = 0.0, cval: float = 0.0, order: int = 1,
                     output_shape: tuple[int, int] | None = None, mode: str = "constant") -> np.ndarray:
    """Warp every plane of x (N, C, H, W): out[n, c, i, j] = x[n, c] at the input coordinate
    matrix[n] @ (i, j) + offset[n], as scipy.ndimage.affine_transform(x[n, c], matrix[n], offset[n], order=order,
    mode=mode, cval=cval) plane by plane: order 0 gives scipy's numbers, order 1
    scipy's to the dtype's rounding.

    matrix: one 2x2 or 2x3 matrix for every image, or (N, 2, 2) / (N, 2, 3), one per image; a 2x3 matrix's last
    column is the offset. order: 0 (nearest cell) or 1 (bilinear). mode: 'constant' (cval outside the plane,
    no interpolation toward it), 'nearest' (the edge extended) or 'reflect' (mirrored about the edge).
    float32 input stays float32 (the matrix is then taken in float32, as the kernel reads it); anything else
    is computed in float64."""
    arr = np.asarray(x)
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    x = as_float_array(x, "x", dtype, ndim=4)
    n, c, h, w = x.shape
    check_number(order, "order", low=0, high=1, integer=True)
    check_number(cval, "cval")
    check_choice(mode, "mode", FILL_MODES)
    oh, ow = (h, w) if output_shape is None else output_shape
    check_number(oh, "output_shape[0]", low=1, integer=True)
    check_number(ow, "output_shape[1]", low=1, integer=True)
    out = np.empty((n, c, oh, ow), dtype)
    _core.affine_transform_forward(out, x, affine_matrices(matrix, offset, n, dtype), order, FILL_MODES[mode], cval)
    return out


def write_png(path, image: ArrayLike) -> None:
    """Save a uint8 grayscale image (H, W) as an 8-bit PNG, with the standard library only (zlib for the
    compression and the checksums)."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"write_png: expected a uint8 image of shape (H, W), got {img.dtype} of shape {img.shape}")

    def chunk(kind, data):
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    h, w = img.shape
    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit gray, no interlace
    rows = b"".join(b"\0" + row.tobytes() for row in img)  # filter type 0 on every row
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                + chunk(b"IEND", b""))
