"""summary(): Keras 3's table and footer, the lecture models' parameter counts, and the HTML view."""
import numpy as np
import pytest

import cnn
from cnn.layers import Dense, Dropout, Input
from cnn.summary import readable_size


def mlp(*sizes, activation="relu"):
    layers = [Input((sizes[0],))] + [Dense(n, activation=activation) for n in sizes[1:-1]]
    return cnn.Sequential(layers + [Dense(sizes[-1], activation="softmax")])


@pytest.mark.parametrize("sizes,count", [((784, 10), 7850), ((784, 50, 10), 39760), ((784, 200, 10), 159010),
                                         ((784, 1000, 10), 795010), ((784, 500, 500, 10), 648010),
                                         ((2, 40, 2), 202), ((2, 8, 8, 3, 2), 131)])
def test_lecture_parameter_counts(sizes, count):
    model = mlp(*sizes)
    assert model.count_params() == count
    lines = []
    model.summary(print_fn=lines.append)
    assert f" Total params: {count:,} ({readable_size(4 * count)})" in lines[0]


def test_table_matches_keras_layout():
    lines = []
    mlp(784, 10).summary(print_fn=lines.append, line_length=76)
    text = lines[0].splitlines()
    assert text[0] == 'Model: "sequential"'
    assert all(len(row) == 76 for row in text[1:6])
    assert text[1].startswith("┏━") and text[3].startswith("┡━") and text[5].startswith("└─")
    assert text[2].startswith("┃ Layer (type) ") and "┃ Output Shape " in text[2] and text[2].endswith(" Param # ┃")
    cells = [c.strip() for c in text[4].strip("│").split("│")]
    assert cells == ["dense (Dense)", "(None, 10)", "7,850"]
    assert text[6:] == [" Total params: 7,850 (30.66 KB)", " Trainable params: 7,850 (30.66 KB)",
                        " Non-trainable params: 0 (0.00 B)"]


def test_rows_are_separated_and_shapes_have_a_none_batch(capsys):
    model = cnn.Sequential([Input((3, 4)), Dense(5), Dropout(0.5), Dense(2)], name="toy")
    model.summary(line_length=70)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'Model: "toy"'
    rows = [line for line in out if line.startswith("│")]
    assert [[c.strip() for c in r.strip("│").split("│")] for r in rows] == [
        ["dense (Dense)", "(None, 3, 5)", "25"], ["dropout (Dropout)", "(None, 3, 5)", "0"],
        ["dense_1 (Dense)", "(None, 3, 2)", "12"]]
    assert sum(line.startswith("├") for line in out) == 2


def test_unbuilt_model_and_optimizer_params():
    lines = []
    unbuilt = cnn.Sequential([Dense(3), Dense(2)])
    unbuilt.summary(print_fn=lines.append)
    assert "0 (unbuilt)" in lines[0] and " Total params: 0 (0.00 B)" in lines[0]
    model = mlp(4, 3)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 4)), np.zeros(4, int), verbose=0)
    model.summary(print_fn=lines.append)
    # as Keras 3: Adam's m and v plus two scalars, and the total includes them
    assert " Optimizer params: 32 (128.00 B)" in lines[1] and " Total params: 47 (188.00 B)" in lines[1]
    with pytest.raises(ValueError, match="width"):
        model.summary(line_length=10)


def test_html_repr_and_sizes():
    html = mlp(784, 50, 10)._repr_html_()
    assert html.count("<tr>") == 3 and "dense_1 (Dense)" in html and "39,760" in html and "(None, 50)" in html
    assert readable_size(0) == "0.00 B" and readable_size(1023) == "1023.00 B"
    assert readable_size(1024) == "1.00 KB" and readable_size(3 * 1024 ** 2) == "3.00 MB"
