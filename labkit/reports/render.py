"""Render an executed notebook to one offline HTML file without code cells.

nbconvert's ``lab`` template loads require.js, MathJax, mermaid and the widget manager
from CDNs; the template here (a ``DictLoader`` extending ``lab/index.html.j2``) drops
those blocks, adds labkit's CSS and a provenance footer. :func:`external_resources`
lists anything in a page that would still be fetched from the network.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._html import CSS, esc

_TEMPLATE = r"""
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.labkit_css }}</style>{%- endblock extra_css -%}
{% block body_footer %}
{{ resources.labkit_footer }}
</main>
</body>
{% endblock body_footer %}
"""

# a resource the browser fetches by itself: <script src>, <link href>, <img src>, <iframe src>,
# CSS url(...) and @import, ES module import(...) — to http(s) or protocol-relative URLs
_EXTERNAL = re.compile(
    r"""<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|url\(\s*["']?(?:https?:)?//[^)]+\)"""
    r"""|@import\s+["'](?:https?:)?//[^"']+"""
    r"""|\bimport\(\s*["'](?:https?:)?//[^"']+""", re.IGNORECASE)


def external_resources(page: str) -> list[str]:
    """Every reference in ``page`` that a browser would fetch from the network (empty: offline)."""
    return [m.group(0)[:160] for m in _EXTERNAL.finditer(page)]


def footer_html(record: dict[str, Any]) -> str:
    """The visible provenance footer: version, time, parameters and data hashes."""
    data = record.get("data") or {}
    files = ", ".join(f"{k} <code>{esc(v[:16])}…</code>" for k, v in (data.get("files") or {}).items())
    images = data.get("images") or {}
    ann = data.get("annotations") or {}
    params = ", ".join(f"<code>{esc(k)}={esc(repr(v))}</code>" for k, v in record.get("parameters", {}).items())
    env = record.get("environment", {})
    parts = [
        f"<b>labkit {esc(env.get('labkit'))}</b> · report <code>{esc(record.get('report'))}</code> · "
        f"run {esc(record.get('started_at'))} → {esc(record.get('finished_at'))} (UTC) · "
        f"status <b>{esc(record.get('status'))}</b>",
        f"parameters: {params or 'defaults'}",
        f"data: {esc(data.get('project', ''))}"
        + (f" · {files}" if files else "")
        + (f" · {images.get('count')} images, hashes "
           f"<code>{esc(str(images.get('sha256_of_hashes', ''))[:16])}…</code>"
           if images else "")
        + (f" · {ann.get('count')} annotations <code>{esc(str(ann.get('sha256_of_versions', ''))[:16])}…</code>"
           if ann else ""),
        f"python {esc(env.get('python'))}, papermill {esc(env.get('papermill'))}, nbconvert "
        f"{esc(env.get('nbconvert'))} · full record: <code>{esc(record.get('sidecar_name', ''))}</code>",
    ]
    return '<div class="lk"><div class="footer">' + "<br>".join(parts) + "</div></div>"


def render_html(notebook: str | Path, html_path: str | Path, *, record: dict[str, Any]) -> Path:
    """Write ``notebook`` (executed) as offline HTML without inputs or prompts.

    Raises
    ------
    RuntimeError
        If the page would still load something from the network.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"labkit_report.html.j2": _TEMPLATE})],
                            template_file="labkit_report.html.j2")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    title = record.get("title") or record.get("report", "report")
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb, resources={"labkit_css": CSS, "labkit_footer": footer_html(record),
                                                         "metadata": {"name": title}})
    found = external_resources(body)
    if found:
        raise RuntimeError(f"the rendered report would load {len(found)} resource(s) from the network, "
                           f"e.g. {found[0]!r}; it must read offline")
    html_path = Path(html_path)
    html_path.write_text(body, encoding="utf-8")
    return html_path
