"""sparse_forward / sparse_backward (csrc/sparse.c): a dense layer on a CSR input, against scipy.sparse (the
reference scikit-learn's MLP uses: safe_sparse_dot) and central finite differences. No torch: this file also
runs under AddressSanitizer."""
import numpy as np
import pytest
import scipy.sparse as sp

from cnn import _core
from conftest import DTYPES, assert_close, central_differences

# (rows, columns, outputs, density): batch 1, primes, a column that is never used, rows left empty
SHAPES = [(1, 1, 1, 1.0), (1, 7, 3, 0.5), (5, 13, 1, 0.3), (17, 31, 11, 0.1), (64, 257, 65, 0.02), (3, 5, 2, 0.0)]


def csr(rng, n, cols, density, dtype):
    """A random CSR matrix with int64 indices, some rows empty, its entries in a row not sorted."""
    x = sp.random(n, cols, density=density, format="csr", random_state=rng, dtype=np.float64).astype(dtype)
    if x.nnz > 1:  # scipy keeps rows sorted; the kernels must not rely on it
        perm = np.concatenate([rng.permutation(np.arange(a, b)) for a, b in zip(x.indptr[:-1], x.indptr[1:])])
        x = sp.csr_matrix((x.data[perm], x.indices[perm], x.indptr), shape=x.shape)
    return x


def parts(x):
    return x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,cols,out_dim,density", SHAPES)
def test_forward_matches_scipy(n, cols, out_dim, density, dtype):
    rng = np.random.default_rng(n * 1000 + cols)
    x = csr(rng, n, cols, density, dtype)
    w, b = rng.standard_normal((cols, out_dim)).astype(dtype), rng.standard_normal(out_dim).astype(dtype)
    out = np.full((n, out_dim), np.nan, dtype)
    _core.sparse_forward(out, *parts(x), w, b)
    assert_close(out, x.astype(np.float64) @ w.astype(np.float64) + b, dtype)
    _core.sparse_forward(out, *parts(x), w, None)
    assert_close(out, x.astype(np.float64) @ w.astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,cols,out_dim,density", SHAPES)
def test_backward_matches_scipy_and_accumulates(n, cols, out_dim, density, dtype):
    rng = np.random.default_rng(n * 7 + cols)
    x = csr(rng, n, cols, density, dtype)
    dy = rng.standard_normal((n, out_dim)).astype(dtype)
    dw, db = np.full((cols, out_dim), np.nan, dtype), np.full(out_dim, np.nan, dtype)
    _core.sparse_backward(dw, db, dy, *parts(x), False)  # overwrites: the NaN must go
    ref_dw, ref_db = x.T.astype(np.float64) @ dy.astype(np.float64), dy.astype(np.float64).sum(0)
    assert_close(dw, ref_dw, dtype)
    assert_close(db, ref_db, dtype)
    _core.sparse_backward(dw, db, dy, *parts(x))  # accumulates by default
    assert_close(dw, 2 * ref_dw, dtype)
    assert_close(db, 2 * ref_db, dtype)


def test_worked_example_and_empty_matrix():
    """sparse.c's worked example, then a matrix with no entries at all (NNZ = 0)."""
    data, indices, indptr = np.array([2.0]), np.array([1]), np.array([0, 1, 1])
    w, b = np.array([[1.0, 1], [3, 4], [5, 6]]), np.array([1.0, 1])
    out = np.empty((2, 2))
    _core.sparse_forward(out, data, indices, indptr, w, b)
    np.testing.assert_array_equal(out, [[7, 9], [1, 1]])
    dw, db = np.empty((3, 2)), np.empty(2)
    _core.sparse_backward(dw, db, np.eye(2), data, indices, indptr, False)
    np.testing.assert_array_equal(dw, [[0, 0], [2, 0], [0, 0]])
    np.testing.assert_array_equal(db, [1, 1])
    empty = (np.empty(0), np.empty(0, np.int64), np.zeros(3, np.int64))
    _core.sparse_forward(out, *empty, w, b)
    np.testing.assert_array_equal(out, [[1, 1], [1, 1]])
    _core.sparse_backward(dw, None, np.ones((2, 2)), *empty, False)
    np.testing.assert_array_equal(dw, np.zeros((3, 2)))


def test_duplicate_entries_add_as_scipy_does():
    data, indices, indptr = np.array([1.0, 2.0, 4.0]), np.array([0, 0, 1]), np.array([0, 3])
    x = sp.csr_matrix((data, indices, indptr), shape=(1, 2))
    w = np.array([[1.0, 2.0], [3.0, 5.0]])
    out = np.empty((1, 2))
    _core.sparse_forward(out, data, indices, indptr, w, None)
    np.testing.assert_array_equal(out, x @ w)
    dw = np.empty((2, 2))
    _core.sparse_backward(dw, None, np.array([[1.0, -1.0]]), data, indices, indptr, False)
    np.testing.assert_array_equal(dw, x.T @ np.array([[1.0, -1.0]]))


def test_gradient_by_central_differences():
    """dw and db of L = Σ g·(x·w + b) for a fixed random g, by moving each entry of w and b."""
    rng = np.random.default_rng(5)
    x = csr(rng, 6, 9, 0.3, np.float64)
    w, b, g = rng.standard_normal((9, 4)), rng.standard_normal(4), rng.standard_normal((6, 4))
    out = np.empty((6, 4))

    def loss():
        _core.sparse_forward(out, *parts(x), w, b)
        return float((g * out).sum())

    dw, db = np.empty_like(w), np.empty_like(b)
    _core.sparse_backward(dw, db, g, *parts(x), False)
    np.testing.assert_allclose(dw, central_differences(loss, w), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(db, central_differences(loss, b), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(dtype):
    rng = np.random.default_rng(11)
    x = csr(rng, 300, 2000, 0.01, dtype)
    w, dy = rng.standard_normal((2000, 70)).astype(dtype), rng.standard_normal((300, 70)).astype(dtype)
    before = _core.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 8):
            _core.set_num_threads(threads)
            out, dw, db = np.empty((300, 70), dtype), np.empty((2000, 70), dtype), np.empty(70, dtype)
            _core.sparse_forward(out, *parts(x), w, None)
            _core.sparse_backward(dw, db, dy, *parts(x), False)
            results.append((out, dw, db))
    finally:
        _core.set_num_threads(before)
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("case,match", [
    (dict(indptr=np.array([0, 2, 1, 4])), "'indptr' must run from 0 to NNZ = 4 without decreasing, got 1 at 2"),
    (dict(indptr=np.array([1, 2, 3, 4])), "'indptr' must run from 0"),
    (dict(indptr=np.array([0, 1, 2, 3])), "'indptr' must end at NNZ = 4, got 3"),
    (dict(indptr=np.array([0, 1, 2, 5])), "'indptr' must run from 0 to NNZ = 4 without decreasing, got 5 at 3"),
    (dict(indices=np.array([0, 3, 1, 2])), r"'indices' must hold column indices in \[0, 3\), got 3"),
    (dict(indices=np.array([0, -1, 1, 2])), r"'indices' must hold column indices in \[0, 3\), got -1"),
    (dict(indices=np.array([0, 1, 2])), r"'indices' must have shape \(4,\) .*got \(3,\)"),
    (dict(data=np.empty(0), indptr=np.array([0, 0])), r"'indices' must have shape \(0,\), as 'data', got \(4,\)"),
    (dict(indices=np.array([0, 1, 1, 2], np.int32)), "'indices' must have dtype int64"),
    (dict(indptr=np.array([0])), "'indptr' must hold N \\+ 1 >= 2 offsets, got 1"),
    (dict(data=np.ones(4, np.float32)), "'data' must have dtype float64"),
])
def test_bad_csr_is_refused_naming_the_array(case, match):
    args = dict(data=np.ones(4), indices=np.array([0, 1, 1, 2]), indptr=np.array([0, 2, 2, 4]))
    args.update(case)
    n = args["indptr"].size - 1
    with pytest.raises((TypeError, ValueError), match=f"^sparse_forward: argument {match}"):
        _core.sparse_forward(np.empty((max(n, 1), 2)), args["data"], args["indices"], args["indptr"],
                             np.ones((3, 2)), None)
