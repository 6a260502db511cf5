"""Pictures of circuits and models, drawn the way circuits papers draw them.

Inputs on the left, outputs on the right, one column per layer (longest-path depth, so a skip
connection does not shift its target), edges blue when positive and red when negative with
their width proportional to |weight|, units named by their source ids and, for a match, by the
pattern variable bound to them ("p = fc1:0"). A whole model can be drawn with a match
highlighted: the matched units and edges in full colour, the rest faded.

The SVG is written by hand: a picture of a match should not need a plotting stack, and plain
SVG elements carrying their unit ids and weights as attributes can be read back by a test or a
user's script. PNG goes through cairosvg, the ``render`` extra.

Big models (ACAS Xu: 300 hidden units, 12,000 edges) stay readable and small: no weight labels,
hidden units unnamed unless matched, and only the strongest edges drawn, which the caption
says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from circuitql.errors import CircuitQLError
from circuitql.graph import NeuronGraph, Unit, UnitKind
from circuitql.picture import Svg

if TYPE_CHECKING:
    from circuitql.engine.results import Match
    from circuitql.store.base import Store

POSITIVE = "#2166ac"
NEGATIVE = "#b2182b"
BOUND_FILL = "#fdd49e"
MAX_WEIGHT_LABELS = 40  # more edges than this and their labels hide the picture
MAX_EDGES = 1500  # beyond this only the strongest are drawn: 12,000 lines are one grey smear
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CHAR_WIDTH = 0.64  # average glyph width per unit of font size, to size label boxes
PAD = 16
SKIP_BEND = 1.4  # a skip connection's control point, in row spacings off the straight line

Box = tuple[float, float, float, float]
Point = tuple[float, float]


# ---- SVG text ------------------------------------------------------------------------------


def _tag(name: str, body: str | None = None, **attrs: object) -> str:
    """One element; ``class_`` and ``data_id`` become ``class`` and ``data-id``."""
    rendered = "".join(
        f" {k.rstrip('_').replace('_', '-')}={quoteattr(str(v))}" for k, v in attrs.items()
    )
    return f"<{name}{rendered}/>" if body is None else f"<{name}{rendered}>{body}</{name}>"


def _num(x: float) -> str:
    return f"{x:.1f}"


def weight_text(w: float) -> str:
    """How a weight is written on its edge: sign always shown, three significant digits."""
    return f"{w:+.3g}"


def _text_width(text: str, font: float) -> float:
    return len(text) * font * CHAR_WIDTH


# ---- layout --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """Sizes for one scale of picture: a 4-unit circuit and a 300-unit model need different
    ones, and one set chosen by the tallest column keeps every picture legible."""

    radius: float
    vspace: float
    hspace: float
    font: float
    glyphs: bool  # draw the activation's curve inside each unit
    name_hidden: bool  # label every hidden unit, not only matched ones
    biases: bool  # write non-zero biases under their units


def _style(tallest: int) -> _Style:
    if tallest <= 8:
        return _Style(
            radius=18, vspace=92, hspace=230, font=12, glyphs=True, name_hidden=True, biases=True
        )
    if tallest <= 24:
        return _Style(
            radius=9, vspace=40, hspace=200, font=9, glyphs=True, name_hidden=True, biases=False
        )
    return _Style(
        radius=5, vspace=15, hspace=170, font=9, glyphs=False, name_hidden=False, biases=False
    )


def _columns(graph: NeuronGraph) -> list[list[str]]:
    """Units per column: longest-path depth, every output in the last column."""
    depth = graph.layers
    last = max(depth.values(), default=0)
    columns: list[list[str]] = [[] for _ in range(last + 1)]
    for unit in graph.units:
        columns[last if unit.kind is UnitKind.OUTPUT else depth[unit.id]].append(unit.id)
    return [c for c in columns if c]


def _order(graph: NeuronGraph, columns: list[list[str]]) -> None:
    """Reorder hidden columns in place by the |w|-weighted barycentre of their neighbours
    (a forward, a backward and a forward sweep), which removes most crossings. Columns holding
    inputs or outputs keep the network's order: that order is the interface a reader checks."""

    def sweep(indices: Iterable[int], neighbours: Mapping[str, Mapping[str, float]]) -> None:
        for c in indices:
            if any(graph[u].kind is not UnitKind.HIDDEN for u in columns[c]):
                continue
            pos = {
                u: (i / (len(col) - 1) if len(col) > 1 else 0.5)
                for col in columns
                for i, u in enumerate(col)
            }

            def key(u: str, pos: dict[str, float] = pos) -> float:
                total = sum(abs(w) for w in neighbours[u].values())
                if total == 0:
                    return pos[u]
                return sum(abs(w) * pos[v] for v, w in neighbours[u].items()) / total

            columns[c].sort(key=key)

    incoming = {u.id: u.inputs for u in graph.units}
    forward, backward = range(1, len(columns)), range(len(columns) - 2, 0, -1)
    sweep(forward, incoming)
    sweep(backward, graph.successors)
    sweep(forward, incoming)


@dataclass(frozen=True)
class _Layout:
    style: _Style
    columns: list[list[str]]
    xy: dict[str, Point]
    column_of: dict[str, int]
    label: dict[str, str]
    top: float  # y of the column headers
    bottom: float  # y of the legend
    width: float

    @property
    def middle(self) -> float:
        ys = [y for _, y in self.xy.values()]
        return (min(ys) + max(ys)) / 2


def _layout(graph: NeuronGraph, names: Mapping[str, str], title: str | None) -> _Layout:
    """Where every unit goes, and which units are named: all of them in small pictures; in
    big ones only inputs, outputs and matched units (``names``: unit id -> pattern variable)."""
    columns = _columns(graph)
    _order(graph, columns)
    tallest = max(len(c) for c in columns)
    style = _style(tallest)
    label = {
        u.id: f"{names[u.id]} = {u.id}" if u.id in names else u.id
        for u in graph.units
        if style.name_hidden or u.id in names or u.kind is not UnitKind.HIDDEN
    }
    left_room, right_room = (
        max((_text_width(label[u], style.font) for u in col if u in label), default=0.0)
        for col in (columns[0], columns[-1])
    )
    x0 = PAD + left_room + style.radius + 8
    header = PAD + (style.font * 2.6 if title else 0) + style.font
    top = header + style.vspace * SKIP_BEND / 2  # room for skip connections bending out
    height = (tallest - 1) * style.vspace
    xy: dict[str, Point] = {}
    for c, column in enumerate(columns):
        y0 = top + (height - (len(column) - 1) * style.vspace) / 2
        for i, uid in enumerate(column):
            xy[uid] = (x0 + c * style.hspace, y0 + i * style.vspace)
    width = x0 + (len(columns) - 1) * style.hspace + style.radius + 8 + right_room + PAD
    return _Layout(
        style,
        columns,
        xy,
        {u: c for c, col in enumerate(columns) for u in col},
        label,
        header,
        top + height + style.vspace * SKIP_BEND / 2 + style.font * 2,
        width,
    )


# ---- drawing -------------------------------------------------------------------------------


class _Canvas:
    """Collects SVG elements and the boxes that labels and units occupy, so that weight
    labels can be placed where they hide nothing."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.boxes: list[Box] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def free(self, box: Box) -> bool:
        x0, y0, x1, y1 = box
        return all(x1 <= a0 or x0 >= a1 or y1 <= b0 or y0 >= b1 for a0, b0, a1, b1 in self.boxes)

    def label(
        self,
        x: float,
        y: float,
        text: str,
        font: float,
        *,
        anchor: str = "middle",
        colour: str = "#222",
        cls: str = "label",
        backed: bool = False,
        bold: bool = False,
    ) -> None:
        """Text with its baseline at ``y``; ``backed`` puts a white box behind it so it stays
        readable over edges."""
        width = _text_width(text, font) * (1.1 if bold else 1.0)
        x0 = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        box = (x0 - 2, y - font * 0.85, x0 + width + 2, y + font * 0.3)
        self.boxes.append(box)
        if backed:
            self.add(
                _tag(
                    "rect",
                    x=_num(box[0]),
                    y=_num(box[1]),
                    width=_num(box[2] - box[0]),
                    height=_num(box[3] - box[1]),
                    fill="white",
                )
            )
        self.add(
            _tag(
                "text",
                escape(text),
                class_=cls,
                x=_num(x),
                y=_num(y),
                font_size=font,
                text_anchor=anchor,
                fill=colour,
                font_weight="bold" if bold else "normal",
            )
        )


EdgeKind = Literal["bound", "faint", "plain"]


@dataclass(frozen=True)
class _Edge:
    src: str
    dst: str
    weight: float
    kind: EdgeKind  # bound: inside the highlighted match; faint: outside it; plain: no match


def draw_graph(
    graph: NeuronGraph, highlight: Mapping[str, str] | None = None, title: str | None = None
) -> Svg:
    """Draw ``graph``; ``highlight`` maps pattern variables to unit ids (a match's bindings).

    Highlighted units are labelled ``var = id``. When the graph holds more than the
    highlighted units (a whole model around a match), the match is drawn bold and the rest
    faded; when it holds only them (the match's own sub-network), everything is drawn in full.
    """
    names = {uid: var for var, uid in (highlight or {}).items()}
    unknown = [uid for uid in names if uid not in graph]
    if unknown:
        raise ValueError(f"highlighted unit {unknown[0]!r} is not in the graph")
    if not len(graph):
        raise ValueError("cannot draw an empty graph")
    context = bool(names) and len(names) < len(graph)
    layout = _layout(graph, names, title)
    font = layout.style.font

    def kind(src: str, dst: str) -> EdgeKind:
        if not context:
            return "plain"
        return "bound" if src in names and dst in names else "faint"

    edges = [
        _Edge(src, u.id, w, kind(src, u.id)) for u in graph.units for src, w in u.inputs.items()
    ]
    dense = sum(e.kind != "faint" for e in edges) > MAX_WEIGHT_LABELS
    strength = _strength(edges, layout.column_of, dense)
    shown = _visible(edges, strength, layout.column_of)
    canvas = _Canvas()
    if title:
        canvas.label(PAD, PAD + font * 1.3, title, font * 1.3, anchor="start", cls="title")
    for c, column in enumerate(layout.columns):
        canvas.label(
            layout.xy[column[0]][0],
            layout.top,
            _header(column, c),
            font,
            colour="#777",
            cls="header",
        )
    _draw_edges(canvas, shown, strength, layout, dense)
    for unit in graph.units:
        _draw_unit(canvas, unit, layout, unit.id in names, context)
    width = max(layout.width, _legend(canvas, layout.bottom, font, _caption(edges, shown)))
    height = layout.bottom + PAD
    return Svg(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" '
        f'height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f"font-family={quoteattr(FONT)}>\n"
        '<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(canvas.parts) + "\n</svg>\n"
    )


def _caption(edges: Sequence[_Edge], shown: Sequence[_Edge]) -> str:
    caption = "width ∝ |weight|"
    if len(shown) < len(edges):
        others = sum(e.kind != "bound" for e in edges)
        drawn = len(shown) - len(edges) + others
        caption += (
            f"; {drawn:,} of {others:,} edges drawn: the strongest "
            f"{drawn / others:.0%} into each layer"
        )
    return caption


def _header(column: Sequence[str], index: int) -> str:
    """A column's module names (its units' source ids without the row), or its index."""
    modules = sorted({uid.rsplit(":", 1)[0] for uid in column})
    return ", ".join(modules) if len(modules) <= 2 else f"layer {index}"


def _strength(
    edges: Sequence[_Edge], column_of: Mapping[str, int], dense: bool
) -> dict[_Edge, float]:
    """How strong each edge is drawn, in [0, 1]: |w| over the largest |w| it is compared with.

    A circuit's own edges, and a sparse picture's, are compared across the whole picture, as
    widths in a paper are. A dense background is compared per target layer: a model's layers
    differ in scale (ACAS Xu's last layer outweighs its first many times over), and each
    layer's strongest edges are what a reader looks for there.
    """

    def group(edge: _Edge) -> tuple[str, int]:
        per_layer = edge.kind == "faint" or (edge.kind == "plain" and dense)
        return edge.kind, column_of[edge.dst] if per_layer else -1

    largest: dict[tuple[str, int], float] = {}
    for edge in edges:
        key = group(edge)
        largest[key] = max(largest.get(key, 0.0), abs(edge.weight))
    return {e: abs(e.weight) / largest[group(e)] if largest[group(e)] else 0.0 for e in edges}


def _visible(
    edges: list[_Edge], strength: Mapping[_Edge, float], column_of: Mapping[str, int]
) -> list[_Edge]:
    """The edges to draw, weakest first so strong ones lie on top: every edge of the match,
    and of the rest about ``MAX_EDGES``, the same strongest share of each layer's edges."""
    rest = [e for e in edges if e.kind != "bound"]
    share = min(1.0, MAX_EDGES / max(len(rest), 1))
    by_layer: dict[int, list[_Edge]] = {}
    for edge in rest:
        by_layer.setdefault(column_of[edge.dst], []).append(edge)
    kept: list[_Edge] = []
    for layer in by_layer.values():
        layer.sort(key=strength.__getitem__)
        kept += layer[len(layer) - round(share * len(layer)) :]
    kept.sort(key=strength.__getitem__)
    return kept + [e for e in edges if e.kind == "bound"]


def _draw_edges(
    canvas: _Canvas,
    edges: list[_Edge],
    strength: Mapping[_Edge, float],
    layout: _Layout,
    dense: bool,
) -> None:
    paths: dict[_Edge, tuple[Point, ...]] = {}
    for edge in edges:
        path = _edge_path(edge, layout)
        paths[edge] = path
        if len(path) == 2:
            d = f"M{_num(path[0][0])},{_num(path[0][1])} L{_num(path[1][0])},{_num(path[1][1])}"
        else:
            d = "M{},{} Q{},{} {},{}".format(*(_num(v) for p in path for v in p))
        relative = strength[edge]
        if edge.kind == "faint":
            stroke, opacity = 0.3 + 1.0 * relative, 0.15
        elif dense:  # many edges in full colour: the weak ones recede
            stroke, opacity = 0.3 + 2.2 * relative, 0.2 + 0.6 * relative
        else:
            stroke, opacity = 0.8 + 4.2 * relative, 0.9
        sign = "pos" if edge.weight >= 0 else "neg"
        tip = f"{edge.src} → {edge.dst}: {weight_text(edge.weight)}"
        canvas.add(
            _tag(
                "path",
                _tag("title", escape(tip)),
                class_=f"edge {sign} {edge.kind}",
                d=d,
                fill="none",
                stroke=POSITIVE if sign == "pos" else NEGATIVE,
                stroke_width=f"{stroke:.2f}",
                stroke_opacity=f"{opacity:.2f}",
                data_src=edge.src,
                data_dst=edge.dst,
                data_weight=repr(edge.weight),
            )
        )
    if not dense:
        for edge in (e for e in edges if e.kind != "faint"):
            _weight_label(canvas, edge, paths[edge], layout.style)


def _edge_path(edge: _Edge, layout: _Layout) -> tuple[Point, ...]:
    """A straight line between adjacent columns; a skip connection bends (a quadratic curve)
    away from the middle, so it does not run through the units of the columns it passes."""
    (x0, y0), (x1, y1) = layout.xy[edge.src], layout.xy[edge.dst]
    if layout.column_of[edge.dst] - layout.column_of[edge.src] <= 1:
        return (x0, y0), (x1, y1)
    bend = SKIP_BEND * layout.style.vspace * (-1.0 if (y0 + y1) / 2 <= layout.middle else 1.0)
    return (x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2 + bend), (x1, y1)


def _point(path: tuple[Point, ...], t: float) -> Point:
    """The point at parameter ``t`` of a line or a quadratic Bézier."""
    if len(path) == 2:
        (x0, y0), (x1, y1) = path
        return x0 + t * (x1 - x0), y0 + t * (y1 - y0)
    (x0, y0), (cx, cy), (x1, y1) = path
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t * t
    return a * x0 + b * cx + c * x1, a * y0 + b * cy + c * y1


def _weight_label(canvas: _Canvas, edge: _Edge, path: tuple[Point, ...], style: _Style) -> None:
    """Write the weight on its edge where it overlaps no other label or unit, trying points
    past the middle first: edges fanning into one unit are furthest apart near it without
    touching it."""
    text = weight_text(edge.weight)
    half = _text_width(text, style.font) / 2 + 2
    candidates = (0.6, 0.45, 0.72, 0.35, 0.52, 0.66, 0.28, 0.8)
    for t in candidates:
        x, y = _point(path, t)
        if canvas.free((x - half, y - style.font * 0.55, x + half, y + style.font * 0.6)):
            break
    else:
        x, y = _point(path, candidates[0])
    canvas.label(
        x,
        y + style.font * 0.35,
        text,
        style.font,
        colour=POSITIVE if edge.weight >= 0 else NEGATIVE,
        cls="weight",
        backed=True,
    )


def _draw_unit(canvas: _Canvas, unit: Unit, layout: _Layout, bound: bool, context: bool) -> None:
    style = layout.style
    x, y = layout.xy[unit.id]
    marked = bound and context
    fill = BOUND_FILL if marked else "white" if unit.kind is UnitKind.HIDDEN else "#e8e8e8"
    tip = f"{unit.id} ({unit.kind}, {unit.activation}, bias {unit.bias:+.3g})"
    circle = _tag(
        "circle",
        cx=_num(x),
        cy=_num(y),
        r=style.radius,
        fill=fill,
        stroke="#333",
        stroke_width="2.4" if marked else "1.2",
    )
    glyph = _glyph(unit, x, y, style.radius) if style.glyphs else ""
    canvas.add(
        _tag(
            "g",
            _tag("title", escape(tip)) + circle + glyph,
            class_="unit bound" if bound else "unit",
            data_id=unit.id,
            data_kind=unit.kind,
            data_activation=unit.activation,
            opacity="0.45" if context and not bound else "1",
        )
    )
    r = style.radius
    canvas.boxes.append((x - r, y - r, x + r, y + r))
    text = layout.label.get(unit.id)
    if text is None:
        return
    font = style.font
    if unit.kind is UnitKind.INPUT:
        canvas.label(x - r - 6, y + font * 0.35, text, font, anchor="end", bold=marked)
    elif unit.kind is UnitKind.OUTPUT:
        canvas.label(x + r + 6, y + font * 0.35, text, font, anchor="start", bold=marked)
    elif style.name_hidden:
        canvas.label(x, y + r + font + 1, text, font, backed=True, bold=marked)
    else:  # a matched unit in a tall column: beside it, where no other unit is
        canvas.label(
            x + r + 4, y + font * 0.35, text, font, anchor="start", backed=True, bold=marked
        )
    if abs(unit.bias) > 1e-9 and style.biases:
        below = y + r + (2.1 if unit.kind is UnitKind.HIDDEN else 1.1) * font + 2
        canvas.label(
            x,
            below,
            f"b {weight_text(unit.bias)}",
            font * 0.9,
            colour="#555",
            cls="bias",
            backed=True,
        )


def _glyph(unit: Unit, x: float, y: float, radius: float) -> str:
    """The unit's activation drawn as its curve over [-2, 2], the way papers sketch a ReLU."""
    if unit.kind is UnitKind.INPUT:
        return ""
    z = np.linspace(-2.0, 2.0, 17)
    a = unit.activation.apply(z, unit.alpha)
    lo, hi = float(a.min()), float(a.max())
    heights = (a - lo) / (hi - lo if hi > lo else 1.0)
    half = radius * 0.55
    points = " ".join(
        f"{_num(x + half * zi / 2)},{_num(y + half - 2 * half * h)}"
        for zi, h in zip(z, heights, strict=True)
    )
    return _tag(
        "polyline",
        points=points,
        fill="none",
        stroke="#333",
        stroke_width=f"{max(1.0, radius / 12):.1f}",
    )


def _legend(canvas: _Canvas, y: float, font: float, caption: str) -> float:
    """The sign key and the caption along the bottom; returns the width they take."""
    x: float = PAD
    for colour, text in ((POSITIVE, "positive"), (NEGATIVE, "negative")):
        canvas.add(
            _tag(
                "line",
                x1=_num(x),
                y1=_num(y - font * 0.35),
                x2=_num(x + 16),
                y2=_num(y - font * 0.35),
                stroke=colour,
                stroke_width="3",
            )
        )
        canvas.label(x + 20, y, text, font, anchor="start", colour="#555", cls="legend")
        x += 20 + _text_width(text, font) + font
    canvas.label(x + font, y, caption, font, anchor="start", colour="#555", cls="caption")
    return x + font + _text_width(caption, font) + PAD


# ---- matches and models --------------------------------------------------------------------


def match_title(match: Match) -> str:
    """A match in one line (circuit, model, error): its pictures' title, and what
    ``circuitql show`` says it drew."""
    return f"{match.circuit} in {match.model} (error {match.error:.1e})"


def draw_match(match: Match, store: Store | None = None) -> Svg:
    """A match's own sub-network; with the ``store`` it came from, the whole model it was
    found in, with the match highlighted."""
    if store is None:
        if match.graph is None:
            raise ValueError("this match carries no sub-network to draw")
        return draw_graph(match.graph, match.bindings, match_title(match))
    return draw_model(store, match.model, match.bindings, match_title(match))


def draw_model(
    store: Store, model: str, highlight: Mapping[str, str] | None = None, title: str | None = None
) -> Svg:
    """A stored model's network, optionally with a match's bindings highlighted.

    The store keeps the canonical form (rescaled, pruned, duplicates merged), so that is what
    is drawn, and the title says so: its weights are not the file's.
    """
    from circuitql.store.base import stored_graph

    if store.get_model(model) is None:
        raise CircuitQLError(
            f"no model named {model!r} in {store.uri}",
            fix="run `circuitql models` for the indexed names",
        )
    return draw_graph(stored_graph(store, model), highlight, f"{title or model}, canonical form")
