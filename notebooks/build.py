"""Build notebooks/*.ipynb from their sources in notebooks/src/*.py (percent format: `# %%` starts a
code cell, `# %% [markdown]` a markdown cell whose lines are comments). The sources are what we edit
and review; the notebooks are what users open. `python notebooks/build.py` rewrites them all;
tests/test_notebooks.py checks they are in sync and runs them."""
import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent


def cells(source):
    out, kind, lines = [], None, []

    def flush():
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            out.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            out.append(nbformat.v4.new_code_cell(text))

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return out


def build(src):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells(src.read_text())
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{src.stem[:2]}-{i:02d}"
    return nb


def main():
    for src in sorted((HERE / "src").glob("*.py")):
        target = HERE / f"{src.stem}.ipynb"
        nbformat.write(build(src), target)
        print(f"wrote {target.relative_to(HERE.parent)}")


if __name__ == "__main__":
    sys.exit(main())
