"""`import cnn` stays light: NumPy and the extension only; heavy optional modules load on first use."""
import importlib
import pkgutil
import subprocess
import sys

import pytest

import cnn


def test_import_loads_no_heavy_modules():
    code = ("import sys, cnn; heavy = [m for m in ('torch', 'sklearn', 'scipy', 'matplotlib', 'tqdm') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_submodules_resolve():
    assert cnn.optimizers.SGD and cnn.losses.get and cnn.layers.Dense
    for name in cnn._LAZY_MODULES:
        assert getattr(cnn, name) is importlib.import_module(f"cnn.{name}")
    assert cnn.MLPClassifier is importlib.import_module("cnn.sklearn").MLPClassifier


PUBLIC_MODULES = sorted(m.name for m in pkgutil.walk_packages(cnn.__path__, "cnn.")
                        if not any(part.startswith("_") for part in m.name.split(".")))


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_star_import_works(module):
    """`from cnn.<module> import *` binds every name its __all__ lists (an __all__ naming a missing class raises)."""
    namespace = {}
    exec(f"from {module} import *", namespace)
    exported = getattr(importlib.import_module(module), "__all__", None)
    if exported is not None:
        assert set(exported) <= set(namespace)


def test_public_modules_cover_the_package():
    assert {"cnn.activations", "cnn.layers", "cnn.layers.core", "cnn.models", "cnn.sklearn"} <= set(PUBLIC_MODULES)
