"""``AgreementDashboard``: agreement numbers and plots, a disagreement gallery, adjudication."""
from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

import ipywidgets as w
import pandas as pd

from labkit.widgets._common import safe_action
from labkit.widgets._render import PALETTE, compose, rgb

if TYPE_CHECKING:
    from labkit.quality.agreement import AgreementInterval
    from labkit.quality.delivered import Delivery
    from labkit.services.project import Project

log = logging.getLogger("labkit.agreement")
CONSENSUS = "consensus"


class AgreementDashboard(w.VBox):
    """Agreement between a project's annotators, with review and adjudication.

    Image-level labels are the votes of the project's delivered labels
    (:func:`labkit.models.pool.labels.project_delivery`, the definition every labkit view
    uses): one label per annotator and image, reference annotators and consensus left out,
    so its alpha is the audit report's. The numbers state the definition.

    Parameters
    ----------
    project : labkit.Project
    adjudicator : str
        Who decides (recorded with every decision); default: the project's user.
    kind : str
        Annotation kind to start with (``label``, ``box``, ``mask``, ...).
    gallery_size : int
        How many of the most disputed images the gallery shows.

    Examples
    --------
    In a notebook::

        AgreementDashboard(Project.open("demo_project"), adjudicator="demo-admin")
    """

    def __init__(self, project: Project, *, adjudicator: str | None = None, kind: str = "label",
                 gallery_size: int = 12):
        self.project = project
        self.adjudicator = adjudicator or project.user
        self.gallery_size = gallery_size
        self.decisions: list = []
        self.delivery: Delivery  # set by refresh(): the delivered labels and their votes
        self.alpha: AgreementInterval | None = None  # Krippendorff's alpha shown (labels only)
        kinds = sorted(set(project.annotations()["kind"])) or ["label"]
        self.kind = w.Dropdown(options=kinds, value=kind if kind in kinds else kinds[0], description="kind")
        self.cls = w.Dropdown(options=["all", *project.classes()], value="all", description="class")
        self.workers = w.SelectMultiple(options=[], rows=4, description="annotators")
        self.numbers = w.HTML()
        self.numbers.add_class("labkit-agreement-numbers")
        self.plots = w.Tab(children=[w.Output(), w.Output(), w.Output()],
                           titles=("Pairwise", "Per class", "Annotators vs consensus"))
        self.gallery = w.GridBox(layout=w.Layout(grid_template_columns="repeat(4, 1fr)", grid_gap="6px"))
        self.gallery.add_class("labkit-gallery")
        self.review_image = w.Image(format="jpeg", layout=w.Layout(width="360px", height="auto",
                                                                     object_fit="contain"))
        self.legend = w.HTML()
        self.choice = w.RadioButtons(options=[], layout=w.Layout(width="auto"))
        self.choice.add_class("labkit-choice")
        self.decide_btn = w.Button(description="Decide", button_style="success")
        self.undo_btn = w.Button(description="Undo last decision")
        self.redraw_btn = w.Button(description="Redraw in the Labeler")
        for name in ("decide", "undo", "redraw"):
            getattr(self, f"{name}_btn").add_class(f"labkit-{name}")
        self.status = w.HTML()
        self.status.add_class("labkit-status")
        self.labeler_box = w.VBox()
        self.review = w.VBox([w.HTML("<b>Adjudication</b>"), w.HBox([self.review_image, w.VBox(
            [self.legend, self.choice, w.HBox([self.decide_btn, self.undo_btn, self.redraw_btn])])]),
            self.labeler_box])
        self.review.layout.display = "none"
        self.image_id: int | None = None
        super().__init__([w.HBox([self.kind, self.cls, self.workers]), self.numbers, self.plots,
                          w.HTML("<b>Most disputed images</b> (click one to adjudicate)"), self.gallery,
                          self.review, self.status])
        self.add_class("labkit-agreement")
        for widget in (self.kind, self.cls):
            widget.observe(self._safe(lambda _: self.refresh()), "value")
        self.workers.observe(self._safe(lambda _: self.refresh(reset_workers=False)), "value")
        self.decide_btn.on_click(self._safe(lambda _: self.decide()))
        self.undo_btn.on_click(self._safe(lambda _: self.undo()))
        self.redraw_btn.on_click(self._safe(lambda _: self.redraw()))
        self.refresh()

    # ------------------------------------------------------------------ data --
    def _safe(self, fn):
        return safe_action(self.status, log)(fn)

    def data(self) -> pd.DataFrame:
        """The annotations under the current filters (consensus and reference annotators excluded).

        Labels are the votes of the delivered labels: one per annotator and image (the latest).
        """
        if self.kind.value == "label":
            df = self.delivery.votes
        else:
            df = self.project.annotations(kind=self.kind.value)
            df = df[(df["source"] != "consensus") & ~df["worker"].isin(self.delivery.references)]
        if self.cls.value != "all" and self.kind.value != "label":
            df = df[df["label"] == self.cls.value]
        if self.workers.value:
            df = df[df["worker"].isin(self.workers.value)]
        return df

    def _colours(self, workers) -> dict:
        return {wk: rgb(PALETTE[i % len(PALETTE)]) for i, wk in enumerate(sorted(workers))}

    # --------------------------------------------------------------- display --
    def refresh(self, *, reset_workers: bool = True) -> None:
        """Recompute numbers, plots and the gallery for the current filters."""
        from labkit import plots
        from labkit import quality as q
        from labkit.models.pool.labels import project_delivery
        from labkit.quality.disagreement import disagreement_by_task

        self.delivery = project_delivery(self.project)
        if reset_workers:
            if self.kind.value == "label":
                names = list(self.delivery.voters)
            else:
                all_workers = self.project.annotations(kind=self.kind.value)
                keep = (all_workers["source"] != "consensus") & ~all_workers["worker"].isin(self.delivery.references)
                names = sorted(set(all_workers.loc[keep, "worker"]))
            self.workers.unobserve_all("value")
            self.workers.options = names
            self.workers.value = ()
            self.workers.observe(self._safe(lambda _: self.refresh(reset_workers=False)), "value")
        df = self.data()
        long = df[["task", "worker", "label"]]
        long = long[long.groupby("task")["worker"].transform("nunique").to_numpy() >= 2]  # as the audit
        self.colours = self._colours(df["worker"].unique())
        outs = self.plots.children
        for o in outs:
            o.clear_output()
        rows = []
        self.alpha = None
        if self.kind.value == "label" and len(long):
            alpha = self.alpha = q.confidence_interval("krippendorff_alpha", long, n_boot=500)
            rows = [("Krippendorff's alpha (95% CI)", f"{alpha.estimate:.3f} [{alpha.low:.3f}, {alpha.high:.3f}]"),
                    ("Fleiss' kappa", f"{q.fleiss_kappa(long):.3f}"),
                    ("Percent agreement", f"{q.percent_agreement(long):.1%}")]
            if self.cls.value != "all":
                per = q.per_class_intervals(long, n_boot=500)
                if self.cls.value in per.index:
                    r = per.loc[self.cls.value]
                    rows.append((f"kappa for {self.cls.value}", f"{r['kappa']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"))
            with outs[0]:
                _show(plots.pairwise_heatmap(q.pairwise(long)))
            with outs[1]:
                _show(plots.per_class_agreement_plot(q.per_class_intervals(long, n_boot=500)))
            with outs[2]:
                ds = q.DawidSkene().fit_predict(long)
                _show(plots.consensus_confusion(long, ds, classes=self.project.classes()))
        elif len(df) and self.kind.value != "label":
            pairs = q.geometric_agreement(df, kind=self.kind.value)
            if len(pairs):
                rows = [("Mean F1 of matched objects", f"{pairs['f1'].mean():.3f}"),
                        ("Mean IoU of matched objects", f"{pairs['mean_iou'].mean():.3f}"),
                        ("Annotator pairs x images", f"{len(pairs)}")]
                with outs[0]:
                    _show(plots.iou_distribution(pairs))
        rows.append(("Images with 2+ annotators", str(long["task"].nunique())))
        if self.kind.value == "label":
            definition = self.delivery.describe()
        else:
            definition = ("reference " + ", ".join(map(repr, self.delivery.references)) + " excluded"
                          if self.delivery.references else "")
        self.numbers.value = "<table>" + "".join(
            f"<tr><td style='padding-right:1em'>{html.escape(k)}</td><td><b>{v}</b></td></tr>"
            for k, v in rows) + "</table>" + (
            f"<small class='labkit-definition'>{html.escape(definition)}</small>" if definition else "")
        self.scores = disagreement_by_task(df, kind=self.kind.value) if len(df) else pd.DataFrame()
        self._fill_gallery(df)

    def _overlay_rows(self, df: pd.DataFrame) -> list[dict]:
        return [{"id": int(i), "kind": r["kind"], "label": r["label"], "geometry": r["geometry"],
                 "colour": self.colours.get(r["worker"], (0, 0, 0))}
                for i, r in df.iterrows() if r["kind"] != "label"]

    def _fill_gallery(self, df: pd.DataFrame) -> None:
        cards = []
        for task, r in self.scores.head(self.gallery_size).iterrows():
            mine = df[df["task"] == task]
            img = self.project.read_image(int(task), verify=False)
            thumb = w.Image(value=compose(img, self._overlay_rows(mine), fit=160), format="jpeg",
                            layout=w.Layout(width="100%", height="auto", object_fit="contain"))
            labels = ", ".join(f"{wk}: {lab}" for wk, lab in zip(mine["worker"], mine["label"]))
            btn = w.Button(description=f"image {task} · {r['disagreement']:.2f}", layout=w.Layout(width="auto"),
                           tooltip=labels)
            btn.add_class("labkit-review")
            btn.on_click(self._safe(lambda _, t=int(task): self.show(t)))
            cards.append(w.VBox([thumb, btn]))
        self.gallery.children = cards

    def show(self, image: int) -> None:
        """Open ``image`` for adjudication: each annotator's answer, and the consensus."""
        df = self.data()
        mine = df[df["task"] == image]
        self.image_id = image
        img = self.project.read_image(image, verify=False)
        self.review_image.value = compose(img, self._overlay_rows(mine), fit=360)
        swatch = "".join(f"<span style='color:rgb{c}'>■</span> {html.escape(wk)} &nbsp;"
                         for wk, c in self.colours.items() if wk in set(mine["worker"]))
        final = self.project.annotations(image=image, kind=self.kind.value, annotator=CONSENSUS)
        now = (f"<br>current decision: {', '.join(final['label'])} (by "
               f"{html.escape(str(final.iloc[0]['provenance'].get('adjudicated_by', 'consensus run')))})"
               if len(final) else "")
        self.legend.value = f"<b>Image {image}</b><br>{swatch}{now}"
        options = [(f"{wk}: {', '.join(g['label'])}", wk) for wk, g in mine.groupby("worker")]
        self._consensus = self._compute_consensus(mine)
        if self._consensus:
            options.append((f"consensus: {', '.join(o['label'] for o in self._consensus)}", CONSENSUS))
        self.choice.options = options
        self.review.layout.display = None

    def _compute_consensus(self, mine: pd.DataFrame) -> list[dict]:
        from labkit import quality as q

        kind = self.kind.value
        if mine.empty:
            return []
        if kind == "label":  # the delivered-label rule on these votes: majority, ties to the first class
            label = q.deliver(mine, self.project.classes(), find=False).labels.iloc[0]
            return [{"label": label, "inputs": [int(i) for i in mine.index]}]
        if kind == "box":
            fused = q.fuse_boxes(mine)
            return [{"label": r["label"], "geometry": r["geometry"], "score": r.get("score"),
                     "inputs": list(r["members"])} for r in fused.to_dict("records")]
        if kind == "mask":
            fused = q.fuse_masks(mine, method="staple")
            return [{"label": r["label"], "geometry": r["geometry"], "score": r.get("score"),
                     "inputs": list(r["members"])} for r in fused.to_dict("records")]
        return []

    # -------------------------------------------------------------- decisions --
    def decide(self) -> None:
        """Store the chosen answer as the image's final annotation."""
        from labkit.services.adjudication import adjudicate

        if self.image_id is None or self.choice.value is None:
            raise ValueError("open an image from the gallery and choose an answer first")
        objects = self._consensus if self.choice.value == CONSENSUS else None
        d = adjudicate(self.project, self.image_id, kind=self.kind.value, choose=self.choice.value,
                       by=self.adjudicator, objects=objects)
        self.decisions.append(d)
        self.status.value = (f"decided image {d.image}: {html.escape(d.choice)}'s answer is final "
                             f"(annotations {d.added}; undo available)")
        self.show(self.image_id)

    def undo(self) -> None:
        """Reverse the last decision made here."""
        from labkit.services.adjudication import undo_adjudication

        if not self.decisions:
            raise ValueError("no decision to undo")
        d = self.decisions.pop()
        undo_adjudication(self.project, d, by=self.adjudicator)
        self.status.value = f"undid the decision on image {d.image}"
        if self.image_id == d.image:
            self.show(d.image)

    def redraw(self) -> None:
        """Open the Labeler on this image, for the adjudicator to draw the answer."""
        from labkit.widgets.labeler import Labeler

        if self.image_id is None:
            raise ValueError("open an image from the gallery first")
        if self.adjudicator not in self.project.annotators().index:
            self.project.add_annotator(self.adjudicator, role="admin")
        self.labeler = Labeler(self.project, annotator=self.adjudicator, queue=[self.image_id], blind=False)
        self.labeler_box.children = [self.labeler]


def _show(fig) -> None:
    from IPython.display import display

    display(fig)
