"""`import cnn` stays light: NumPy and the extension only; heavy optional modules load on first use."""
import subprocess
import sys


def test_import_loads_no_heavy_modules():
    code = ("import sys, cnn; heavy = [m for m in ('torch', 'sklearn', 'scipy', 'matplotlib', 'tqdm') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_submodules_resolve():
    import cnn

    assert cnn.optimizers.SGD and cnn.losses.get and cnn.layers.Dense
