"""``DifficultyExplorer``: filter images by difficulty, look at the hardest, send them to relabel."""
from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

import ipywidgets as w
import numpy as np
import pandas as pd

from labkit.widgets._common import safe_action
from labkit.widgets._render import compose

if TYPE_CHECKING:
    from labkit.services.project import Project

log = logging.getLogger("labkit.difficulty")


class DifficultyExplorer(w.VBox):
    """Browse a difficulty table and queue hard images for relabeling.

    Parameters
    ----------
    table : DataFrame
        :func:`labkit.quality.difficulty_table`, indexed by image id.
    project : labkit.Project
    labels : Series, optional
        Given class name per image (for the class filter and captions). Default: the
        project's delivered labels (:func:`labkit.models.pool.labels.project_delivery`,
        the definition every labkit view uses). The widget states the definition, and
        says so when the labels passed differ from the delivered ones.
    probs : ndarray of shape (M, N, K), optional
        The pool's probabilities in ``table``'s row order, to show each model's vote.
    classes : list of str, optional
        Class names for ``probs``' last axis (default: the project's classes).
    gallery_size : int
        How many of the hardest filtered images the gallery shows.

    Examples
    --------
    In a notebook::

        DifficultyExplorer(project_difficulty(project, predictions), project)
    """

    def __init__(self, table: pd.DataFrame, project: Project, *, labels: pd.Series | None = None, probs=None,
                 classes=None, gallery_size: int = 12):
        if not len(table):
            raise ValueError("the difficulty table is empty; score some images first (labkit.quality.difficulty_table)")
        from labkit.models.pool.labels import project_delivery

        self.table = table
        self.project = project
        self.delivery = project_delivery(project)
        delivered = self.delivery.labels.reindex(table.index)
        self.labels: pd.Series = delivered if labels is None else labels.reindex(table.index)
        self.definition = w.HTML(self._definition(delivered))
        self.definition.add_class("labkit-definition")
        self.probs = probs
        self.classes = list(classes) if classes is not None else project.classes()
        self.gallery_size = gallery_size
        given = ["all"] + sorted(self.labels.dropna().unique().tolist(), key=str)
        self.cls = w.Dropdown(options=given, value="all", description="given label")
        c = table["c_perplexity"]
        self.c_range = w.FloatRangeSlider(value=(float(c.min()), float(c.max())), min=float(c.min()),
                                          max=float(c.max()) + 1e-9, step=0.01, description="C range",
                                          continuous_update=False)
        self.x_range = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.05, description="X range",
                                          continuous_update=False)
        sortable = [col for col in table.columns if pd.api.types.is_float_dtype(table[col])]
        self.sort = w.Dropdown(options=sortable, value="x_perplexity" if "x_perplexity" in sortable else sortable[0],
                               description="hardest by")
        self.count = w.HTML()
        self.count.add_class("labkit-count")
        self.hist = w.Output()
        self.gallery = w.GridBox(layout=w.Layout(grid_template_columns="repeat(4, 1fr)", grid_gap="6px"))
        self.gallery.add_class("labkit-gallery")
        names = project.annotators()
        names = names[names["role"] != "viewer"].index.tolist()
        self.annotator = w.Dropdown(options=names, description="annotator")
        self.select_all = w.Button(description="Select all shown")
        self.send_btn = w.Button(description="Send selected to relabel", button_style="warning")
        self.send_btn.add_class("labkit-send")
        self.status = w.HTML()
        self.status.add_class("labkit-status")
        self._checks: dict[int, w.Checkbox] = {}
        super().__init__([w.HBox([self.cls, self.sort]), w.HBox([self.c_range, self.x_range]), self.definition,
                          self.count, self.hist, self.gallery,
                          w.HBox([self.select_all, self.annotator, self.send_btn]), self.status])
        self.add_class("labkit-difficulty")
        for widget in (self.cls, self.sort, self.c_range, self.x_range):
            widget.observe(self._safe(lambda _: self.refresh()), "value")
        self.select_all.on_click(self._safe(lambda _: self._check_all()))
        self.send_btn.on_click(self._safe(lambda _: self.send_to_relabel()))
        self.refresh()

    def _definition(self, delivered: pd.Series) -> str:
        """What "given" means here: the delivered-label definition, or how the caller's labels differ."""
        text = "given label: " + self.delivery.describe()
        same = (self.labels == delivered) | (self.labels.isna() & delivered.isna())
        if not same.all():
            differ = self.labels.index[~same.to_numpy()]
            text = (f"given label: the labels passed in; they differ from the delivered label on {len(differ)} "
                    f"image(s), e.g. {[int(i) for i in differ[:5]]} ({self.delivery.describe()})")
        return f"<small>{html.escape(text)}</small>"

    def _check_all(self) -> None:
        for cb in self._checks.values():
            cb.value = True

    def _safe(self, fn):
        return safe_action(self.status, log)(fn)

    def filtered(self) -> pd.DataFrame:
        """The rows passing the filters, hardest first."""
        t = self.table
        keep = t["c_perplexity"].between(*self.c_range.value)
        if t["x_perplexity"].notna().any():
            keep &= t["x_perplexity"].between(*self.x_range.value)
        if self.cls.value != "all":
            keep &= self.labels == self.cls.value
        return t[keep].sort_values(self.sort.value, ascending=self.sort.value in ("margin", "label_prob"),
                                   kind="stable")

    def refresh(self) -> None:
        from labkit import plots

        rows = self.filtered()
        self.count.value = f"<b>{len(rows)}</b> of {len(self.table)} images match"
        self.hist.clear_output()
        with self.hist:
            from IPython.display import display

            if len(rows):
                display(plots.difficulty_histograms(rows, self.labels, score=self.sort.value))
        cards, self._checks = [], {}
        for image, r in rows.head(self.gallery_size).iterrows():
            img = self.project.read_image(int(image), verify=False)
            thumb = w.Image(value=compose(img, fit=140), format="jpeg",
                            layout=w.Layout(width="100%", height="auto", object_fit="contain"))
            label = self.labels[image]
            tie = " (tie)" if image in self.delivery.ties and label == self.delivery.labels[image] else ""
            given = f"given {html.escape('—' if pd.isna(label) else str(label))}{tie} · "
            caption = w.HTML(f"<small>image {image} · C {r['c_perplexity']:.2f} · X {r['x_perplexity']:.2f}<br>"
                             f"{given}{self._votes(image)}</small>")
            cb = w.Checkbox(value=False, description="relabel", indent=False)
            cb.add_class("labkit-pick")
            self._checks[int(image)] = cb
            cards.append(w.VBox([thumb, caption, cb]))
        self.gallery.children = cards

    def _votes(self, image) -> str:
        """Each model's vote, e.g. ``votes 8×4, 3×1``."""
        if self.probs is None:
            return ""
        j = self.table.index.get_loc(image)
        top = np.asarray(self.probs)[:, j, :].argmax(-1)
        counts = pd.Series([self.classes[k] for k in top]).value_counts()
        return "votes " + ", ".join(f"{html.escape(str(c))}×{n}" for c, n in counts.items())

    @property
    def selected(self) -> list[int]:
        return [i for i, cb in self._checks.items() if cb.value]

    def send_to_relabel(self) -> int:
        """Queue the selected images for the chosen annotator (in the store)."""
        ids = self.selected
        if not ids:
            raise ValueError("tick 'relabel' under at least one image first")
        n = self.project.requeue(ids, self.annotator.value, reason="difficulty review")
        self.status.value = (f"queued {len(ids)} image(s) for {html.escape(self.annotator.value)} "
                             f"({n} new or reopened)")
        return n
