"""Small HTML building blocks for reports: verdict banner, clause table, sections, tables.

Everything is self-contained (inline CSS, images as data URIs), so a rendered report
reads offline. Report cells display :class:`Html` objects.
"""
from __future__ import annotations

import base64
import html
import io
import numbers
from collections.abc import Iterable
from typing import Any

import pandas as pd

STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "NOT EVALUATED": "na", "INCOMPLETE": "na"}
DIMENSION_TITLES = {
    "accuracy": "Accuracy", "completeness": "Completeness", "diversity": "Diversity",
    "consistency": "Consistency", "annotation_quality": "Annotation quality",
    "cleanliness": "Cleanliness", "model_validation": "Model-based validation",
    "prelabeling": "Pre-labeling: machine proposals and their review",
}

CSS = """
:root { --lk-pass:#1a7f37; --lk-fail:#c62828; --lk-na:#9a6700; --lk-ink:#1f2328; --lk-mute:#59636e;
        --lk-line:#d8dee4; --lk-soft:#f6f8fa; }
body.jp-Notebook { background:#fff; }
main { max-width: 1100px; margin: 0 auto; padding: 8px 24px 40px; }
.lk { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
      color: var(--lk-ink); font-size: 14px; line-height: 1.45; }
.lk h1 { font-size: 26px; margin: 18px 0 4px; border: 0; }
.lk h2 { font-size: 20px; margin: 26px 0 8px; padding-bottom: 6px; border-bottom: 2px solid var(--lk-line); }
.lk h3 { font-size: 15px; margin: 16px 0 6px; color: var(--lk-ink); }
.lk .sub { color: var(--lk-mute); }
.lk .meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 4px;
            color: var(--lk-mute); }
.lk .meta b { color: var(--lk-ink); font-weight: 600; }
.lk .banner { display: flex; align-items: center; gap: 22px; border-radius: 10px; padding: 18px 24px;
              margin: 14px 0 10px; color: #fff; }
.lk .banner.pass { background: var(--lk-pass); } .lk .banner.fail { background: var(--lk-fail); }
.lk .banner.na { background: var(--lk-na); }
.lk .banner .word { font-size: 40px; font-weight: 800; letter-spacing: 1px; }
.lk .banner .why { font-size: 15px; opacity: .95; }
.lk .pill { display: inline-block; min-width: 64px; text-align: center; padding: 2px 8px; border-radius: 999px;
            font-size: 12px; font-weight: 700; color: #fff; white-space: nowrap; }
.lk .pill.pass { background: var(--lk-pass); } .lk .pill.fail { background: var(--lk-fail); }
.lk .pill.na { background: var(--lk-na); }
.lk table.lk-table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; width: auto; }
.lk table.lk-table th { background: var(--lk-soft); text-align: left; font-weight: 600;
                         border-bottom: 1px solid var(--lk-line); padding: 5px 10px; }
.lk table.lk-table td { border-bottom: 1px solid var(--lk-line); padding: 5px 10px; vertical-align: top;
                         text-align: left; max-width: 520px; }
.lk table.lk-table tbody tr:nth-child(odd) { background: #fff; }
.lk table.lk-table tbody tr:nth-child(even) { background: #fafbfc; }
.lk table.lk-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.lk table.lk-table tr.fail td { background: #fff5f5; }
.lk table.lk-table td.fail { background: #fde2e1; color: var(--lk-fail); font-weight: 700; }
.lk .note { border-left: 4px solid var(--lk-line); background: var(--lk-soft); padding: 8px 12px; margin: 8px 0; }
.lk .note.na { border-color: var(--lk-na); } .lk .note.fail { border-color: var(--lk-fail); }
.lk .note.pass { border-color: var(--lk-pass); }
.lk .gallery { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 12px; }
.lk figure { margin: 0; width: 168px; border: 1px solid var(--lk-line); border-radius: 6px; padding: 4px;
             background: #fff; }
.lk figure.pair { width: 340px; }
.lk figure img { display: block; max-width: 100%; image-rendering: auto; border-radius: 3px; }
.lk figure.pair .imgs { display: flex; gap: 4px; }
.lk figure.pair .imgs img { width: 164px; }
.lk figcaption { font-size: 12px; color: var(--lk-mute); margin-top: 3px; word-wrap: break-word; }
.lk figcaption b { color: var(--lk-ink); }
.lk .plot img { max-width: 100%; }
.lk .footer { margin-top: 36px; padding-top: 10px; border-top: 1px solid var(--lk-line); color: var(--lk-mute);
              font-size: 12px; }
.lk .footer code, .lk code { font-size: 12px; background: var(--lk-soft); padding: 0 3px; border-radius: 3px; }
.jp-OutputArea-output { overflow-x: auto; }
"""


class Html:
    """A piece of HTML a notebook displays (``_repr_html_``) and a test can read (``str``)."""

    def __init__(self, body: str):
        self.body = body

    def _repr_html_(self) -> str:
        return self.body

    def __str__(self) -> str:
        return self.body

    def __repr__(self) -> str:
        return f"Html({len(self.body)} characters)"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def block(*parts: str) -> Html:
    """Parts wrapped in one ``div.lk`` (the CSS scope)."""
    return Html('<div class="lk">' + "".join(parts) + "</div>")


def pill(status: str) -> str:
    return f'<span class="pill {STATUS_CLASS.get(status, "na")}">{esc(status)}</span>'


def note(text: str, kind: str = "") -> str:
    return f'<div class="note {kind}">{text}</div>'


def fmt(value: Any, *, percent: bool = False, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if percent and isinstance(value, numbers.Real):
        return f"{float(value):.1%}"
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(df: pd.DataFrame, *, index: bool = False, percent: Iterable[str] = (), max_rows: int = 50,
          row_class: pd.Series | None = None, cell_class: pd.DataFrame | None = None,
          raw: Iterable[str] = ()) -> str:
    """A DataFrame as an escaped HTML table; ``percent`` columns as percentages; at most ``max_rows``."""
    percent, raw = set(percent), set(raw)
    shown = df.iloc[:max_rows]
    cols = ([shown.index.name or ""] if index else []) + [str(c) for c in shown.columns]
    out = ['<table class="lk-table"><thead><tr>' + "".join(f"<th>{esc(c)}</th>" for c in cols)
           + "</tr></thead><tbody>"]
    for pos, (idx, row) in enumerate(shown.iterrows()):
        rc = f' class="{row_class.iloc[pos]}"' if row_class is not None and row_class.iloc[pos] else ""
        cells = [f"<th>{esc(idx)}</th>"] if index else []
        for c in shown.columns:
            v = row[c]
            num = isinstance(v, numbers.Real) and not isinstance(v, bool)  # numpy numbers too
            extra = cell_class.iloc[pos][c] if cell_class is not None else ""
            klass = " ".join(k for k in ("num" if num else "", extra) if k)
            text = str(v) if c in raw else esc(fmt(v, percent=c in percent))
            cells.append(f'<td class="{klass}">{text}</td>' if klass else f"<td>{text}</td>")
        out.append(f"<tr{rc}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if len(df) > max_rows:
        out.append(f'<div class="sub">… {len(df) - max_rows} more rows (every row is in verdict.json, '
                   "integrity_findings.csv or the executed notebook next to this report)</div>")
    return "".join(out)


def figure(fig: Any, *, dpi: int = 110) -> str:
    """A matplotlib figure as an embedded PNG (then closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - figure made without pyplot
        pass
    return ('<div class="plot"><img alt="plot" src="data:image/png;base64,'
            + base64.b64encode(buf.getvalue()).decode() + '"></div>')


def section(dimension: str, intro: str, *parts: str, clauses: pd.DataFrame | None = None) -> Html:
    """A report section: heading, one line of intro, the clauses it judges, then the parts.

    ``clauses`` are rows of a verdict table; a ``required`` column (plain text) states each
    requirement as the verdict table does, else the bare ``rule`` is shown.
    """
    title = DIMENSION_TITLES.get(dimension, dimension)
    head = f'<h2 id="{esc(dimension)}">{esc(title)}</h2><p class="sub">{intro}</p>'
    if clauses is not None and len(clauses):
        head += "".join(note(f"{pill(r.status)} <b>{esc(c)}</b> required: "
                             f"{esc(r.required if 'required' in clauses.columns else r.rule)} — {esc(r.evidence)}",
                             STATUS_CLASS.get(r.status, "na")) for c, r in clauses.iterrows())
    return block(head, *parts)
