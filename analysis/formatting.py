"""Render result tables as Markdown and LaTeX, with the paper's best/second-best marks.

A `DisplayTable` is rows x columns of `Value`s (mean, optional spread) or plain text. A column
that says which direction is better gets its best value in bold and its second-best underlined,
as in the paper's Table 1 (HD95: lower is better). Ties as printed share a mark: marks are
decided on the values rounded to the printed number of decimals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Value:
    mean: float
    sd: float = float("nan")  # spread over seeds; NaN = one seed, printed without "±"

    def text(self, decimals: int) -> str:
        if self.mean is None or math.isnan(self.mean):
            return "–"
        body = f"{self.mean:.{decimals}f}"
        if not math.isnan(self.sd):
            body += f" ± {self.sd:.{decimals}f}"
        return body


@dataclass(frozen=True)
class Column:
    name: str
    group: str = ""  # spanning header (e.g. the setting); "" for none
    higher_is_better: bool | None = None  # None: no best/second marks
    decimals: int = 2


@dataclass
class DisplayTable:
    row_header: str
    rows: list[str]
    columns: list[Column]
    cells: list[list[object]]  # rows x columns of Value or str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if len(self.cells) != len(self.rows) or any(len(r) != len(self.columns) for r in self.cells):
            raise ValueError("DisplayTable cells must be len(rows) x len(columns)")

    def marks(self) -> list[list[str]]:
        """'best', 'second' or '' per cell."""
        out = [["" for _ in self.columns] for _ in self.rows]
        for j, col in enumerate(self.columns):
            if col.higher_is_better is None:
                continue
            printed = {}
            for i, row in enumerate(self.cells):
                v = row[j]
                if isinstance(v, Value) and v.mean is not None and not math.isnan(v.mean):
                    printed[i] = round(v.mean, col.decimals)
            distinct = sorted(set(printed.values()), reverse=col.higher_is_better)
            for rank, label in zip(distinct[:2], ("best", "second")):
                for i, p in printed.items():
                    if p == rank:
                        out[i][j] = label
        return out


def _cell_text(v: object, col: Column) -> str:
    return v.text(col.decimals) if isinstance(v, Value) else str(v)


def _arrow(col: Column) -> str:
    if col.higher_is_better is None:
        return ""
    return "↑" if col.higher_is_better else "↓"


def to_markdown(table: DisplayTable) -> str:
    """Pipe table; spanning groups are folded into the header ('ACDC 5% Dice↑')."""
    marks = table.marks()
    header = [table.row_header] + [
        (f"{c.group} " if c.group else "") + c.name + _arrow(c) for c in table.columns
    ]
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join([":---"] + ["---:"] * len(table.columns)) + "|",
    ]
    for name, row, row_marks in zip(table.rows, table.cells, marks):
        texts = []
        for v, col, mark in zip(row, table.columns, row_marks):
            text = _md_escape(_cell_text(v, col))
            if mark == "best":
                text = f"**{text}**"
            elif mark == "second":
                text = f"<u>{text}</u>"
            texts.append(text)
        lines.append("| " + " | ".join([_md_escape(name)] + texts) + " |")
    for note in table.notes:
        lines.append("")
        lines.append(note)
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


_LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
                   "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "✓": r"\checkmark", "–": "--"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(table: DisplayTable, caption: str = "", label: str = "") -> str:
    """booktabs tabular; groups become \\multicolumn headers; marks become \\textbf / \\underline."""
    marks = table.marks()
    ncol = len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines.append(r"\begin{tabular}{l" + "c" * ncol + "}")
    lines.append(r"\toprule")
    if any(c.group for c in table.columns):
        spans, rules, start = [""], [], 0
        while start < ncol:
            group = table.columns[start].group
            end = start
            while end + 1 < ncol and table.columns[end + 1].group == group:
                end += 1
            width = end - start + 1
            spans.append(r"\multicolumn{%d}{c}{%s}" % (width, latex_escape(group)) if width > 1 else latex_escape(group))
            if group:
                rules.append(r"\cmidrule(lr){%d-%d}" % (start + 2, end + 2))
            start = end + 1
        lines.append(" & ".join(spans) + r" \\")
        if rules:
            lines.append(" ".join(rules))
    lines.append(" & ".join([latex_escape(table.row_header)] + [latex_escape(c.name + _arrow(c)) for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    for name, row, row_marks in zip(table.rows, table.cells, marks):
        texts = []
        for v, col, mark in zip(row, table.columns, row_marks):
            text = latex_escape(_cell_text(v, col))
            if mark == "best":
                text = r"\textbf{" + text + "}"
            elif mark == "second":
                text = r"\underline{" + text + "}"
            texts.append(text)
        lines.append(" & ".join([latex_escape(name)] + texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in table.notes:
        lines.append(r"\par\smallskip{\footnotesize " + latex_escape(note) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
