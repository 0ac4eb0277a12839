"""The sections of the contract audit report, one function per quality dimension of the contract.

Each takes a :class:`~labkit.reports.audit.QualityAudit` and returns an
:class:`~labkit.reports._html.Html` block: the clauses the section judges, then the
tables, plots and evidence thumbnails behind them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from labkit.quality import composition as comp
from labkit.quality import integrity as integ
from labkit.quality.acceptance import metric_title
from labkit.reports._html import (
    DIMENSION_TITLES,
    Html,
    block,
    esc,
    figure,
    fmt,
    note,
    pill,
    section,
    table,
)
from labkit.reports.audit import evidence as ev

#: Clauses whose values and thresholds are shares, shown in percent.
_PERCENT = ("key_error_rate", "annotation_error_rate", "completeness_rate", "scenario_coverage",
            "label_issue_rate", "geometry_error_rate", "unreviewed_proposal_rate")


def _clauses(a, dimension: str) -> pd.DataFrame:
    """The verdict rows of one dimension, with ``required`` (plain text) as the verdict table states it."""
    t = a.verdict_.table
    t = t[t["dimension"] == dimension]
    return t.assign(required=[_required(a, k, r) for k, r in t.iterrows()])


def _read(a, image: int) -> np.ndarray | None:
    try:
        return a.project.read_image(int(image), verify=False)
    except Exception:  # missing or corrupt: the caller shows a placeholder
        return None


def _card(a, image: int, caption: str, objects=()) -> str:
    img = _read(a, image)
    if img is None:
        status = a.file_report["status"].get(image, "unreadable")
        return ev.unreadable_card(image, str(status).replace("_", " "))
    return ev.figure_card(ev.thumbnail(img, objects), caption)


def _none(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def _iso_plan(a, clause: str):
    """The ISO 2859-1 plan whose acceptance number decides ``clause``, or None (a rate rule decides)."""
    if a.contract.get("sampling", "decision", "iso2859") != "iso2859":
        return None
    return a.plans.get(clause)


def _measured(a, clause: str, r) -> str:
    """HTML: the value with its interval; for a clause an ISO 2859-1 plan decides, the plan's outcome first."""
    pct = clause in _PERCENT
    if _none(r.measured):
        return "—"

    def num(x: Any) -> str:  # agreement with three decimals, as its evidence
        return f"{float(x):.3f}" if clause == "agreement" else fmt(float(x), percent=pct)

    text = num(r.measured)
    if not _none(r.low):
        text += f" <span class='sub'>[{num(r.low)}, {num(r.high)}]</span>"
    if r.judged_on == "plan" and r.decision:
        return f"{esc(r.decision)}<br><span class='sub'>sample rate {text}</span>"
    return text


def _required(a, clause: str, r) -> str:
    """Plain text: the requirement as it is judged (an acceptance number, a bound of an interval, a value)."""
    plan = _iso_plan(a, clause)
    if plan is not None:
        return plan.rule()
    value = f"{'≤' if r.rule.startswith('<=') else '≥'} {fmt(float(r.threshold), percent=clause in _PERCENT)}"
    if clause == "agreement" or r.judged_on == "low":
        return f"lower bound of its {float(a.contract.get('agreement', 'level', 0.95)):.0%} interval {value}"
    if r.judged_on == "high" or (clause in a.plans
                                 and a.contract.get("sampling", "decision", "iso2859") == "upper_bound"):
        return f"upper bound of its 95% interval {value}"
    return value


# --------------------------------------------------------------------- header --
def header(a) -> Html:
    c = a.contract
    info = a.info
    parties = "".join(f"<span>{esc(k)}</span><b>{esc(v)}</b>" for k, v in c.parties.items())
    meta = (f'<div class="meta"><span>project</span><b>{esc(info["location"])}</b>'
            f'<span>contract</span><b>{esc(c.name)}</b>{parties}'
            f'<span>data</span><b>{info["images"]:,} images · {len(a.classes)} classes · '
            f'{a.annotations["worker"].nunique()} annotators · {len(a.annotations):,} annotations</b>')
    if a.excluded_workers:
        meta += f'<span>not audited</span><b>{esc(", ".join(a.excluded_workers))} (reference annotators)</b>'
    meta += "</div>"
    return block(f"<h1>{esc(a.title)}</h1>", meta)


# -------------------------------------------------------------------- verdict --
def verdict(a) -> Html:
    v = a.verdict_
    t = v.table
    c = v.counts
    klass = {"PASS": "pass", "FAIL": "fail"}.get(v.overall, "na")
    why = {"PASS": "Every clause of the contract is met.",
           "FAIL": f"{c.get('FAIL', 0)} of {len(t)} clauses fail: "
                   + ", ".join(t.index[t["status"] == "FAIL"]) + ".",
           "INCOMPLETE": f"No clause fails, but {c.get('NOT EVALUATED', 0)} could not be evaluated: "
                         + ", ".join(t.index[t["status"] == "NOT EVALUATED"]) + "."}[v.overall]
    banner = (f'<div class="banner {klass}"><div class="word">{esc(v.overall)}</div>'
              f'<div class="why">{esc(why)}<br>{c.get("PASS", 0)} pass · {c.get("FAIL", 0)} fail · '
              f'{c.get("NOT EVALUATED", 0)} not evaluated</div></div>')
    rows = pd.DataFrame({
        "clause": [f"<b>{esc(k)}</b><br><span class='sub'>{esc(r.description)}</span>" for k, r in t.iterrows()],
        "dimension": [DIMENSION_TITLES[d] for d in t["dimension"]],
        "required": [esc(_required(a, k, r)) for k, r in t.iterrows()],
        "measured": [_measured(a, k, r) for k, r in t.iterrows()],
        "verdict": [pill(s) for s in t["status"]],
        "evidence": [esc(e) for e in t["evidence"]],
    })
    rc = pd.Series(["fail" if s == "FAIL" else "" for s in t["status"]])
    body = table(rows, raw=rows.columns, row_class=rc, max_rows=100)
    iso = [k for k in t.index if _iso_plan(a, k) is not None]
    how = ""
    if iso:
        how = (f" {' and '.join(iso)} {'is' if len(iso) == 1 else 'are'} judged by ISO 2859-1 sampling "
               "inspection: the lot is accepted when the sample holds at most Ac (the plan's acceptance number) "
               "defective images. The AQL is the quality level the plan is built to accept, not a cap on the "
               "sample's rate, so a sample rate above it can pass (see Accuracy).")
    return block('<h2 id="verdict">Verdict</h2>', banner, body,
                 f'<p class="sub">Values in brackets are 95% intervals.{esc(how)} Each dimension below shows '
                 'the evidence behind its clauses.</p>')


# ------------------------------------------------------------------- accuracy --
def accuracy(a) -> Html:
    parts = []
    if a.plans:
        plans = pd.DataFrame([{"clause": k, "lot (images)": p.lot_size, "AQL (%)": p.aql,
                               "inspection level": p.level, "code letter": p.letter,
                               "plan of letter": p.plan_letter, "sample size n": p.sample_size,
                               "accept with ≤ (Ac)": p.accept, "reject with ≥ (Re)": p.reject}
                              for k, p in a.plans.items()])
        parts += ["<h3>Sampling plan (ISO 2859-1:1999, single sampling, normal inspection)</h3>", table(plans),
                  f'<p class="sub">{len(a.sample)} images drawn at random from the lot of {len(a.images):,} '
                  f'(random seed {a.seed}: the same draw can be repeated); each clause inspects the first n '
                  f'images of the draw. Inspection sheet: '
                  f'<code>{esc(a.sheet_path.name if a.sheet_path else "")}</code></p>']
        if a.contract.get("sampling", "decision", "iso2859") == "iso2859":
            parts.append('<p class="sub">How to read it: the lot is accepted when the n sampled images hold at '
                         'most Ac defective ones (the acceptance number) and rejected with Re or more. The AQL '
                         '(acceptance quality limit) is the worst process average the plan accepts most of the '
                         'time, so a lot can be accepted with a sample rate above the AQL. A contract that '
                         'bounds the rate itself sets <code>decision = "upper_bound"</code> in its '
                         '<code>[sampling]</code> table.</p>')
    else:
        parts.append(note("The contract sets no error rate to inspect, so no sample is drawn.", "na"))
    if a.sheet is None:
        if a.plans:
            parts.append(note(f"<b>Not evaluated</b>: no inspection has been recorded. Open "
                              f"<code>{esc(a.sheet_path)}</code>, mark each sampled image <code>ok</code> or "
                              "<code>defect</code> (defect_type <code>key</code> or <code>minor</code>) and "
                              "run the report again with <code>-p inspection</code> set to that file.", "na"))
    else:
        s = a.sheet
        done = s[s["verdict"] != ""]
        counts = pd.DataFrame([{"inspected": len(done), "ok": int((done["verdict"] == "ok").sum()),
                                "key defects": int((done["defect_type"] == "key").sum()),
                                "minor defects": int((done["defect_type"] == "minor").sum()),
                                "inspectors": ", ".join(sorted(set(done.get("inspector", pd.Series(dtype=str)))
                                                               - {""})) or "—"}])
        parts += ["<h3>Inspection results</h3>", table(counts)]
        defects = done[done["verdict"] == "defect"]
        cards = [_card(a, int(r.image), f"<b>image {int(r.image)}</b> · {esc(r.defect_type)} defect · label "
                                        f"{esc(a.delivered.get(int(r.image), '—'))}<br>{esc(r.note)}")
                 for _, r in defects.iloc[:a.max_evidence].iterrows()]
        parts += ["<h3>Defective samples</h3>", ev.gallery(cards, empty="No defect among the inspected images.")]
    return section("accuracy", "Labels reflect the image content, judged by manual sampling inspection "
                   "with an agreed plan.", *parts, clauses=_clauses(a, "accuracy"))


# --------------------------------------------------------------- completeness --
def completeness(a) -> Html:
    rep = a.file_report
    status = rep["status"].value_counts().rename_axis("file status").rename("images").reset_index()
    f = a.findings[a.findings["dimension"] == "completeness"]
    counts = a.class_counts.rename_axis("class").rename("images").reset_index()
    minimum = a.contract.thresholds.get("images_per_class")
    cells, legend = None, ""
    if minimum is not None:
        cells = pd.DataFrame({"class": "", "images": ["fail" if n < minimum else "" for n in counts["images"]]})
        legend = (f'<p class="sub">Red: fewer than {fmt(minimum)} images, the minimum per main class of the '
                  'contract (clause images_per_class).</p>')
    parts = ["<h3>Files</h3>", table(status),
             "<h3>Images per main class</h3>", table(counts, cell_class=cells, max_rows=60), legend]
    if len(f):
        shown = f[["rule", "image", "detail"]].copy()
        shown["rule"] = shown["rule"].str.replace("_", " ")
        parts += ["<h3>Incomplete images</h3>", table(shown, max_rows=30)]
        bad_files = f[f["rule"].isin(["missing_file", "unreadable_file", "hash_changed"])]
        cards = [_card(a, int(r.image), f"<b>image {int(r.image)}</b> · {esc(r.rule.replace('_', ' '))}")
                 for _, r in bad_files.iloc[:a.max_evidence].iterrows()]
        parts.append(ev.gallery(cards))
    else:
        parts.append(note("Every image file is present, readable and unchanged, with its required "
                          "annotations and attributes.", "pass"))
    return section("completeness", "Classes covered, no corrupt or missing files, every image with its "
                   "required annotations and attributes.", *parts, clauses=_clauses(a, "completeness"))


# ------------------------------------------------------------------ diversity --
def _shares_figure(shares: pd.DataFrame):
    from matplotlib.figure import Figure

    attrs = [x for x in shares["attribute"].unique() if (shares["attribute"] == x).sum() <= 12]
    if not attrs:
        return None
    fig = Figure(figsize=(8, 0.45 * len(attrs) + 0.8))
    ax = fig.subplots()
    cmap = [f"C{i}" for i in range(10)]
    for row, attr in enumerate(attrs):
        left = 0.0
        for i, r in enumerate(shares[shares["attribute"] == attr].itertuples()):
            ax.barh(row, r.percent, left=left, color=cmap[i % 10], edgecolor="white")
            if r.percent >= 7:
                ax.text(left + r.percent / 2, row, f"{str(r.value)[:12]}\n{r.percent:.0f}%", ha="center",
                        va="center", fontsize=7, color="white")
            left += r.percent
    ax.set_yticks(range(len(attrs)), attrs)
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.set_xlabel("share of images (%)")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def diversity(a) -> Html:
    shares = a.shares
    parts = ["<h3>Composition</h3>"]
    fig = _shares_figure(shares)
    if fig is not None:
        parts.append(figure(fig))
    parts.append(table(shares.rename(columns={"percent": "share"}).assign(share=shares["percent"] / 100),
                       percent=["share"], max_rows=60))
    minimum = int(a.contract.get("coverage", "min_images", 1))
    scenarios = a.contract.get("coverage", "scenarios", {}) or {}
    per_class = list(a.contract.get("coverage", "per_class", []) or [])
    plain = [(attr, str(v)) for attr, values in scenarios.items() if attr not in per_class for v in values]
    if plain:
        have = {(x, str(v)): int(n) for x, v, n in zip(shares["attribute"], shares["value"], shares["images"])}
        req = pd.DataFrame({"attribute": [x for x, _ in plain], "value": [v for _, v in plain],
                            "images": [have.get(k, 0) for k in plain]})
        flags = pd.DataFrame({"attribute": "", "value": "",
                              "images": ["fail" if n < minimum else "" for n in req["images"]]})
        parts += [f"<h3>Required scenarios (at least {minimum} images each)</h3>",
                  table(req, cell_class=flags, max_rows=60),
                  '<p class="sub">Red: a scenario the contract requires with fewer images (clause '
                  'scenario_coverage).</p>']
    shown = [x for x in a.attributes.columns if 2 <= a.attributes[x].nunique() <= 12 and x not in per_class
             and len(a.class_labels)]
    for attr in per_class + shown:
        m = a.coverage(attr)
        if m.empty:
            continue
        flags = pd.DataFrame("", index=m.index, columns=m.columns)
        if attr in per_class:
            need = [str(v) for v in scenarios.get(attr, [])]
            for col in need:
                flags.loc[m[col] < minimum, col] = "fail"
            gaps = int((flags == "fail").to_numpy().sum())
            legend = (f"Red: a main class with fewer than {minimum} images in a value of {attr} that the "
                      f"contract requires for every main class ({', '.join(need)}; clause scenario_coverage): "
                      f"{gaps} of {len(m) * len(need)} cells. Other cells are counts for information.")
        else:
            legend = (f"Counts for information: the contract sets no number of images per class and {attr} "
                      "value, so no cell is coloured.")
        parts += [f"<h3>Images per class × {esc(attr)}</h3>", table(m, index=True, cell_class=flags, max_rows=40),
                  f'<p class="sub">{esc(legend)}</p>']
    return section("diversity", "Viewpoints, conditions and other scenarios are covered: the share of "
                   "every attribute value, the scenarios the contract requires, and images per class and "
                   "attribute value.", *parts,
                   clauses=_clauses(a, "diversity"))


# ---------------------------------------------------------------- consistency --
def consistency(a) -> Html:
    parts = []
    if a.interval is not None:
        i = a.interval
        parts.append(table(pd.DataFrame([{"metric": metric_title(i.metric), "estimate": round(i.estimate, 3),
                                          "interval": f"[{i.low:.3f}, {i.high:.3f}] ({i.level:.0%})",
                                          "images": a.agreement_tasks, "resamples": i.n_boot}])))
    else:
        parts.append(note("Agreement on image-level labels is not evaluated: fewer than two annotators "
                          "labeled the same images.", "na"))
    parts.append(f'<p class="sub">Agreement is computed over the votes of the delivered labels; '
                 f'{esc(a.delivery.describe())}.</p>')
    if a.pairwise is not None and len(a.pairwise):
        pw = a.pairwise.reset_index() if not isinstance(a.pairwise.index, pd.RangeIndex) else a.pairwise
        pw = pw.rename(columns={"worker": "annotator"})
        parts += ["<h3>Pairwise agreement (Cohen's kappa)</h3>", table(pw.round(3), max_rows=30)]
    lab = a.annotations[(a.annotations["kind"] == "label") & (a.annotations["source"] != "consensus")]
    if len(lab) and len(a.delivered):
        ref = a.delivered.reindex(lab["task"]).to_numpy()
        per = (lab.assign(agrees=lab["label"].to_numpy() == ref).groupby("worker")
               .agg(labels=("label", "size"), agrees=("agrees", "mean")))
        per = per.reset_index().rename(columns={"worker": "annotator", "agrees": "agrees with delivered label"})
        parts += ["<h3>Annotators against the delivered labels</h3>",
                  table(per, percent=["agrees with delivered label"])]
    if a.geometric is not None:
        g = a.geometric.reset_index()[["worker_a", "worker_b", "matched", "unmatched", "f1", "mean_iou"]]
        g = g.rename(columns={"worker_a": "annotator A", "worker_b": "annotator B", "f1": "F1",
                              "mean_iou": "mean IoU"})
        parts += ["<h3>Box agreement between annotators (matched at IoU ≥ 0.5)</h3>", table(g.round(3))]
    return section("consistency", "One annotation style and rule set across the dataset: chance-corrected "
                   "agreement between annotators, judged on the lower bound of its interval.", *parts,
                   clauses=_clauses(a, "consistency"))


# ---------------------------------------------------------- annotation quality --
def annotation_quality(a) -> Html:
    f = a.findings[a.findings["dimension"] == "annotation_quality"]
    parts = []
    if len(f):
        by_rule = integ.summarize_findings(f).reset_index()[["rule", "description", "findings", "images"]]
        parts += ["<h3>Findings by rule</h3>", table(by_rule.assign(rule=by_rule["rule"].str.replace("_", " ")))]
        by_id = a.annotations
        cards = []
        for _, r in f.drop_duplicates("annotation").iloc[:a.max_evidence].iterrows():
            objs = []
            if pd.notna(r.annotation) and int(r.annotation) in by_id.index:
                row = by_id.loc[int(r.annotation)]
                objs.append((row["kind"], row["geometry"]))
                if pd.notna(r.related) and int(r.related) in by_id.index:
                    other = by_id.loc[int(r.related)]
                    objs.append((other["kind"], other["geometry"]))
            cards.append(_card(a, int(r.image), f"<b>{esc(r.rule.replace('_', ' '))}</b> · image {int(r.image)}, "
                                                f"annotation {fmt(r.annotation)} ({esc(r.worker)}, "
                                                f"{esc(r.label)})<br>{esc(r.detail)}", objs))
        parts += ["<h3>Evidence</h3>", ev.gallery(cards),
                  "<h3>All findings</h3>",
                  table(f[["rule", "image", "annotation", "worker", "label", "detail"]]
                        .assign(rule=f["rule"].str.replace("_", " ")).rename(columns={"worker": "annotator"}),
                        max_rows=30)]
    else:
        parts.append(note("No geometry problem, unknown class or overlapping instance mask was found.", "pass"))
    return section("annotation_quality", "Boxes tight and inside the image, polygons valid, masks non-empty "
                   "and not overlapping, labels in the taxonomy.", *parts,
                   clauses=_clauses(a, "annotation_quality"))


# ---------------------------------------------------------------- pre-labeling --
def prelabeling(a) -> Html:
    """How much of the delivery machines proposed and people verified; how proposals fared in review."""
    made = a.provenance_counts
    clauses = a.verdict_.table.loc[[c for c in a.verdict_.table.index if c == "unreviewed_proposal_rate"]]
    intro = ("Annotations a model (SAM, GrabCut, the model pool) or a vendor proposed count as delivered only "
             "once a person accepted them; an edited proposal is delivered as the person's replacement.")
    if not len(a.proposals):
        return section("prelabeling", intro, note("No machine proposals in this project: every delivered "
                                                  "annotation was made (or imported) as it is.", "na"),
                       clauses=clauses.assign(required=[_required(a, k, r) for k, r in clauses.iterrows()]))
    r = a.prelabel
    shares = made.assign(share=made["annotations"] / max(1, int(made.loc[made["delivered"], "annotations"].sum())))
    shares.loc[~shares["delivered"], "share"] = np.nan
    parts = ["<h3>Where the delivered annotations come from</h3>",
             table(shares.reset_index().drop(columns="delivered"), percent=["share"]),
             "<h3>Review of the proposals, by source</h3>",
             table(r.by_source.reset_index().round(3), percent=["acceptance_rate", "edit_rate", "rejection_rate"]),
             "<h3>By proposed class</h3>",
             table(r.by_class.reset_index().round(3), percent=["acceptance_rate", "edit_rate", "rejection_rate"],
                   max_rows=30),
             "<h3>Seconds per object: reviewing a proposal against drawing from scratch</h3>",
             table(r.seconds.reset_index().round(2))]
    if len(r.edits):
        parts += ["<h3>Edited proposals: how far the person's object is from the proposal</h3>",
                  table(r.edits.reset_index().round(3), max_rows=30)]
    return section("prelabeling", intro, *parts,
                   clauses=clauses.assign(required=[_required(a, k, r) for k, r in clauses.iterrows()]))


# ---------------------------------------------------------------- cleanliness --
def cleanliness(a) -> Html:
    parts = []
    dup = a.findings[a.findings["rule"].isin(["duplicate_label_conflict", "duplicate_image"])]
    parts.append(f"<h3>Duplicates ({len(a.duplicates)} pair(s), perceptual hash)</h3>")
    cards = []
    for _, r in dup.sort_values("severity").iloc[:a.max_evidence].iterrows():
        ia, ib = _read(a, r.image), _read(a, r.related)
        if ia is None or ib is None:
            continue
        la, lb = a.image_classes.get(int(r.image), set()), a.image_classes.get(int(r.related), set())
        cap = (f"<b>{esc(r.rule.replace('_', ' '))}</b> · images {int(r.image)} "
               f"({esc(', '.join(sorted(la)) or '—')}) "
               f"and {int(r.related)} ({esc(', '.join(sorted(lb)) or '—')})")
        cards.append(ev.figure_card([ev.thumbnail(ia), ev.thumbnail(ib)], cap))
    parts.append(ev.gallery(cards, empty="No duplicate images."))
    parts.append("<h3>Label-error candidates from the model pool</h3>")
    if a.issues is None:
        parts.append(note(f"<b>Not evaluated</b>: {esc(a.model_reason)}.", "na"))
    else:
        p = a.preds
        if a.pool_untrusted:
            parts.append(note(f"<b>Not evaluated</b>: {esc(a.pool_untrusted)}. The candidates below are shown "
                              "for reference only.", "na"))
        parts.append(f'<p class="sub">{len(a.issues)} of {len(a.labeled_for_model):,} labeled images are '
                     f'candidates; predictions: {esc(p.source)}, {p.probs.shape[0]} models. Given label: '
                     f'{esc(a.delivery.describe())}.</p>')
        cols = ["given_label", "suggested_label", "score", "x_perplexity", "c_perplexity", "reason"]
        shown = a.issues[cols].reset_index().rename(columns={
            "sample": "image", "given_label": "given label", "suggested_label": "pool suggests",
            "x_perplexity": "X-perplexity", "c_perplexity": "C-perplexity"})
        parts += [table(shown.round(3), max_rows=20),
                  '<p class="sub">X-perplexity: the share of the pool\'s models whose top class is not the given '
                  'label (0 to 1). C-perplexity: how confused the pool is, from 1 (every model sure) up to the '
                  'number of classes. Score: the mean of the X-perplexity and one minus the pool\'s probability '
                  'of the given label (0 to 1; higher: more likely a label error).</p>']
        cards = [_card(a, int(i), f"<b>image {int(i)}</b> · labeled {esc(r.given_label)}, pool says "
                                  f"<b>{esc(r.suggested_label)}</b> (score {r.score:.2f})")
                 for i, r in a.issues.iloc[:a.max_evidence].iterrows()]
        parts.append(ev.gallery(cards))
        cols = [c for c in ("c_perplexity", "x_perplexity", "mutual_information", "label_prob", "c_confusion")
                if c in a.difficulty.columns]
        hard = a.difficulty.sort_values(["c_perplexity", "x_perplexity"], ascending=False).head(10)[cols]
        hard.insert(0, "label", a.delivered.reindex(hard.index).to_numpy())
        if "c_confusion" in hard.columns:
            hard["c_confusion"] = hard["c_confusion"].astype(str).str.replace("|", " and ", regex=False)
        hard = hard.reset_index().rename(columns={
            "sample": "image", "c_perplexity": "C-perplexity", "x_perplexity": "X-perplexity",
            "mutual_information": "mutual information", "label_prob": "pool probability of the label",
            "c_confusion": "classes confused"})
        parts += ["<h3>Hardest images (C-perplexity: how confused the pool is, 1 = sure)</h3>",
                  table(hard.round(3), max_rows=10),
                  '<p class="sub">Mutual information: how much the models disagree with one another (0: they '
                  'agree). Classes confused: the two classes that carry most of the pool\'s uncertainty.</p>']
    return section("cleanliness", "Noisy, wrong, duplicated or conflicting samples found and handled.", *parts,
                   clauses=_clauses(a, "cleanliness"))


# ----------------------------------------------------------- model validation --
def _mask_pairs(a) -> list[tuple[Any, Any]]:
    masks = a.annotations[a.annotations["kind"] == "mask"]
    machine = masks[masks["source"].isin(["sam", "grabcut"])]
    ref = masks[masks["source"] == "consensus"]
    pairs = []
    from labkit.geometry import mask_iou

    for (task, label), g in machine.groupby(["task", "label"]):
        r = ref[(ref["task"] == task) & (ref["label"] == label)]
        if r.empty:
            continue
        iou = mask_iou(list(g["geometry"]), list(r["geometry"]))
        for k in range(len(g)):
            pairs.append((g["geometry"].iloc[k], r["geometry"].iloc[int(iou[k].argmax())]))
    return pairs


def model_validation(a) -> Html:
    base = a.contract.sections.get("validation", {})
    rows = []
    if a.preds is not None:
        acc_value, n = a.pool_accuracy
        folded = a.preds.fold is not None and (np.asarray(a.preds.fold) >= 0).any()
        split = (f"cross-fitted: every image scored by models that did not train on it "
                 f"({int(np.asarray(a.preds.fold).max()) + 1} folds)" if folded else "as given in the predictions file")
        rows.append({"metric": "accuracy vs delivered labels", "model": f"pool mean ({a.preds.probs.shape[0]} models)",
                     "split": split, "n": n, "baseline": base.get("pool_accuracy"), "measured": acc_value})
    else:
        rows.append({"metric": "accuracy vs delivered labels", "model": "model pool", "split": "—",
                     "baseline": base.get("pool_accuracy"), "measured": None, "note": a.model_reason})
    pairs = _mask_pairs(a)
    if pairs:
        miou, n = comp.mean_iou(pairs)
        rows.append({"metric": "mIoU vs consensus masks", "model": "segmenter (SAM/GrabCut masks)",
                     "split": "images with consensus masks", "n": n, "baseline": base.get("mask_miou"),
                     "measured": miou})
    else:
        rows.append({"metric": "mIoU vs consensus masks", "model": "segmenter", "split": "—",
                     "baseline": base.get("mask_miou"), "measured": None,
                     "note": "no machine-made mask has a consensus mask to compare with"})
    t = comp.validation_table(rows)
    if not t["note"].astype(bool).any():
        t = t.drop(columns="note")
    splits = comp.attribute_shares(a.images[["split"]].fillna("(none)"))
    parts = ["<h3>Models against agreed baselines</h3>", table(t, percent=["baseline", "measured"]),
             "<h3>Splits</h3>", table(splits.rename(columns={"percent": "share"})
                                      .assign(share=splits["percent"] / 100), percent=["share"])]
    return section("model_validation", "Quality read from the performance of models trained and run on the "
                   "data, as a published dataset card reports it: metric, agreed baseline and measured value.",
                   *parts)


# --------------------------------------------------------------- known issues --
def known_issues(a) -> Html:
    t = a.verdict_.table
    open_ = t[t["status"] != "PASS"]
    items = "".join(f"<li>{pill(r.status)} <b>{esc(k)}</b>: {esc(r.evidence)}</li>" for k, r in open_.iterrows())
    summary = integ.summarize_findings(a.findings).reset_index() if len(a.findings) else None
    parts = [f"<ul>{items}</ul>" if items else note("No open issue.", "pass")]
    if summary is not None:
        summary = summary.assign(rule=summary["rule"].str.replace("_", " "),
                                 dimension=summary["dimension"].map(lambda d: DIMENSION_TITLES.get(d, d)))
        parts += ["<h3>Integrity findings</h3>",
                  table(summary[["rule", "dimension", "severity", "findings", "images"]])]
    parts.append('<p class="sub">Written next to this report: <code>integrity_findings.csv</code> (every finding), '
                 '<code>verdict.json</code> (every clause with its evidence ids)'
                 + (f', <code>{esc(a.sheet_path.name)}</code> (the inspection sheet)' if a.sheet_path else "")
                 + ".</p>")
    return block('<h2 id="known-issues">Known issues</h2>', *parts)
