"""The lecture notebooks: in sync with their sources, and each runs top to bottom in quick mode.

CNN_QUICK=1 shrinks each notebook to subsets and few epochs; `CNN_QUICK=0 python -m pytest -m slow
tests/test_notebooks.py` runs them in full (see the README)."""
import importlib.util
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def load_builder():
    spec = importlib.util.spec_from_file_location("notebook_build", ROOT / "notebooks" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_source_has_its_notebook_and_they_agree():
    build = load_builder()
    sources = sorted((ROOT / "notebooks" / "src").glob("*.py"))
    assert [s.stem for s in sources] == [n.stem for n in NOTEBOOKS]
    for src, path in zip(sources, NOTEBOOKS):
        built = [(c.cell_type, c.source) for c in build.build(src).cells]
        stored = [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]
        assert built == stored, f"{path.name} is stale: run python notebooks/build.py"


def run(path, quick):
    nb = nbformat.read(path, as_version=4)
    import cnn

    # the kernel imports the same cnn as this process (an installed one, or python/ on PYTHONPATH)
    here = str(pathlib.Path(cnn.__file__).resolve().parent.parent)
    env = {"CNN_QUICK": "1" if quick else "0", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYTHONPATH": os.pathsep.join([here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    os.environ.update(env)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def table_printed(nb):
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    text = "".join(o.get("text", "") for o in last.get("outputs", []))
    return text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_quick(path):
    nb = run(path, quick=True)
    assert "cnn" in table_printed(nb)  # each notebook ends with its comparison table


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_full(path):
    nb = run(path, quick=os.environ.get("CNN_QUICK") == "1")
    (ROOT / "notebooks" / "executed").mkdir(exist_ok=True)
    nbformat.write(nb, ROOT / "notebooks" / "executed" / path.name)  # outputs to read, not committed
    assert "cnn" in table_printed(nb)
