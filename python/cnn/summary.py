"""model.summary(): Keras 3's table (utils/summary_utils.py) drawn without `rich`, and its HTML twin.

Widths follow Keras: line_length min(88, terminal width - 4), column edges at [0.45, 0.80, 1.0] of it; a
functional model that is not a plain chain adds Keras's "Connected to" column (each call's sources as
`layer[node][tensor]`), with line_length min(108, ...) and edges at [0.3, 0.56, 0.74, 1.0];
sizes count bytes of the parameters' dtype in steps of 1024. Once the optimizer holds state (after a
step), an ' Optimizer params' line follows and the total includes it, as in Keras 3; like Keras'
optimizers, cnn's count two scalars (iterations, learning rate) besides the state arrays."""
import html
import shutil
import textwrap

__all__ = ["print_summary", "html_summary", "summary_rows", "readable_size"]


def readable_size(nbytes):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def _shape(shape):
    return "(" + ", ".join(["None"] + [str(d) for d in shape]) + ")"


def summary_rows(model):
    """[(name (Type), output shape, params[, connected to])] and [(label, count, bytes)] for the footer."""
    if not model.built and model.input_shape is not None:
        model.build()
    rows, connected = [], model._connected_to()
    for layer in model.layers:
        label = f"{layer.name} ({type(layer).__name__})"
        if model.built:
            row = (label, _shape(layer.output_shape), f"{layer.count_params():,}")
        else:
            row = (label, "?", "0 (unbuilt)")
        rows.append(row if connected is None else row + (connected[layer],))
    itemsize = model.dtype.itemsize
    total = model.count_params() if model.built else 0
    trainable = model._grads.size if model.built else 0  # non-trainable weights (moving statistics) have no gradient
    footer = [("Total params", total), ("Trainable params", trainable), ("Non-trainable params", total - trainable)]
    state = model.optimizer.state() if model.optimizer is not None else []
    if state:
        opt = sum(s.size for s in state) + 2
        footer[0] = ("Total params", total + opt)
        footer.append(("Optimizer params", opt))
    return rows, [(label, count, count * itemsize) for label, count in footer]


def _widths(line_length, positions):
    """Cell widths (padding included) so that the table, borders included, is line_length wide."""
    inner = line_length - len(positions) - 1
    edges = [round(p * inner) for p in positions]
    return [b - a for a, b in zip([0] + edges[:-1], edges)]


def summary_text(model, line_length=None, positions=None):
    rows, footer = summary_rows(model)
    graph = bool(rows) and len(rows[0]) == 4
    if line_length is None:
        line_length = min(108 if graph else 88, shutil.get_terminal_size().columns - 4)
    widths = _widths(line_length, positions or ([0.3, 0.56, 0.74, 1.0] if graph else [0.45, 0.80, 1.0]))
    if min(widths) < 6:
        raise ValueError("Insufficient console width to print summary.")
    header = ("Layer (type)", "Output Shape", "Param #", "Connected to")[:len(widths)]

    def line(left, fill, mid, right):
        return left + mid.join(fill * w for w in widths) + right

    def cells(values, edge, aligns="<<><"):
        parts = []
        for value, width, align in zip(values, widths, aligns):
            text = value if len(value) <= width - 2 else value[:width - 3] + "…"
            parts.append(f" {text:{align}{width - 2}} ")
        return edge + edge.join(parts) + edge

    out = [f'Model: "{model.name}"', line("┏", "━", "┳", "┓"),
           cells(header, "┃"), line("┡", "━", "╇", "┩")]
    for i, row in enumerate(rows):
        if i:
            out.append(line("├", "─", "┼", "┤"))
        # a long Connected to list wraps onto more lines at its commas, as Keras's table does
        wrapped = (textwrap.wrap(row[3], widths[3] - 2) or [row[3]]) if graph else []
        out.append(cells(row[:3] + tuple(wrapped[:1]), "│"))
        out += [cells(("", "", "", more), "│") for more in wrapped[1:]]
    out.append(line("└", "─", "┴", "┘"))
    out += [f" {label}: {count:,} ({readable_size(nbytes)})" for label, count, nbytes in footer]
    return "\n".join(out)


def print_summary(model, line_length=None, positions=None, print_fn=None):
    text = summary_text(model, line_length, positions)
    (print_fn or print)(text)


def html_summary(model):
    rows, footer = summary_rows(model)
    esc = html.escape
    body = "".join(f"<tr><td>{esc(row[0])}</td><td>{esc(row[1])}</td><td style='text-align:right'>{esc(row[2])}</td>"
                   + "".join(f"<td>{esc(cell)}</td>" for cell in row[3:]) + "</tr>" for row in rows)
    extra = "<th style='text-align:left'>Connected to</th>" if rows and len(rows[0]) == 4 else ""
    foot = "".join(f"<div><b>{esc(label)}:</b> {count:,} ({readable_size(nbytes)})</div>"
                   for label, count, nbytes in footer)
    return (f"<div><b>Model: \"{esc(model.name)}\"</b><table><thead><tr><th style='text-align:left'>Layer (type)"
            f"</th><th style='text-align:left'>Output Shape</th><th style='text-align:right'>Param #</th>{extra}</tr>"
            f"</thead><tbody>{body}</tbody></table>{foot}</div>")
