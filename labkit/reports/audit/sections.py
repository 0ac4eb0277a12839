"""The sections of the contract audit report, one function per seed 000 dimension.

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


def _clauses(a, dimension: str) -> pd.DataFrame:
    t = a.verdict_.table
    return t[t["dimension"] == dimension]


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


def _measured(r) -> str:
    pct = r.name in ("key_error_rate", "annotation_error_rate", "completeness_rate", "scenario_coverage",
                     "label_issue_rate", "geometry_error_rate")
    if r.measured is None or (isinstance(r.measured, float) and np.isnan(r.measured)):
        return "—"
    text = fmt(float(r.measured), percent=pct)
    if r.low is not None and not (isinstance(r.low, float) and np.isnan(r.low)):
        text += f" <span class='sub'>[{fmt(float(r.low), percent=pct)}, {fmt(float(r.high), percent=pct)}]</span>"
    return text


def _threshold(r) -> str:
    pct = r.name in ("key_error_rate", "annotation_error_rate", "completeness_rate", "scenario_coverage",
                     "label_issue_rate", "geometry_error_rate")
    sign = "≤" if r.rule.startswith("<=") else "≥"
    on = {"low": " (lower bound)", "high": " (upper bound)", "plan": " (ISO 2859-1 plan)"}.get(r.judged_on, "")
    return f"{sign} {fmt(float(r.threshold), percent=pct)}{on}"


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
        "required": [_threshold(r) for _, r in t.iterrows()],
        "measured": [_measured(r) for _, r in t.iterrows()],
        "verdict": [pill(s) for s in t["status"]],
        "evidence": [esc(e) for e in t["evidence"]],
    })
    rc = pd.Series(["fail" if s == "FAIL" else "" for s in t["status"]])
    body = table(rows, raw=rows.columns, row_class=rc, max_rows=100)
    return block('<h2 id="verdict">Verdict</h2>', banner, body,
                 '<p class="sub">Measured values in brackets are 95% intervals. Each dimension below shows '
                 'the evidence behind its clauses.</p>')


# ------------------------------------------------------------------- accuracy --
def accuracy(a) -> Html:
    parts = []
    if a.plans:
        plans = pd.DataFrame([{"clause": k, "lot size": p.lot_size, "AQL (%)": p.aql, "level": p.level,
                               "code letter": p.letter, "plan from": p.plan_letter, "sample n": p.sample_size,
                               "Ac": p.accept, "Re": p.reject} for k, p in a.plans.items()])
        parts += ["<h3>Sampling plan (ISO 2859-1:1999, single sampling, normal inspection)</h3>", table(plans),
                  f'<p class="sub">{len(a.sample)} images drawn with seed {a.seed} from the lot of '
                  f'{len(a.images):,}; the first n of the draw are inspected for each clause. Sheet: '
                  f'<code>{esc(a.sheet_path.name if a.sheet_path else "")}</code></p>']
        if a.contract.get("sampling", "decision", "iso2859") == "iso2859":
            parts.append('<p class="sub">How to read it: the AQL is the worst process average the plan accepts '
                         'most of the time, so a lot is accepted with up to Ac defective images even when the '
                         'sample rate exceeds the AQL. For a rule that bounds the rate itself, set '
                         '<code>[sampling] decision = "upper_bound"</code> in the contract.</p>')
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
    cells = None
    if minimum is not None:
        cells = pd.DataFrame({"class": "", "images": ["low" if n < minimum else "" for n in counts["images"]]})
    parts = ["<h3>Files</h3>", table(status),
             "<h3>Images per main class</h3>", table(counts, cell_class=cells, max_rows=60)]
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
    parts.append(table(shares.assign(percent=shares["percent"] / 100), percent=["percent"], max_rows=60))
    labels = pd.Series([c for i in sorted(a.image_classes) for c in sorted(a.image_classes[i])],
                       index=[i for i in sorted(a.image_classes) for _ in a.image_classes[i]])
    minimum = int(a.contract.get("coverage", "min_images", 1))
    for attr in a.attributes.columns:
        if not 2 <= a.attributes[attr].nunique() <= 12 or labels.empty:
            continue
        m = comp.coverage_matrix(labels, a.attributes, attr, classes=a.main_classes)
        flags = m.apply(lambda col: col.map(lambda n: "low" if n < minimum and col.name != comp.MISSING else ""))
        m = m[[c for c in m.columns if c != comp.MISSING] + [c for c in m.columns if c == comp.MISSING]]
        flags = flags[m.columns]
        gaps = int((flags == "low").to_numpy().sum())
        parts += [f"<h3>Class × {esc(attr)} (cells below {minimum} image(s) flagged: {gaps})</h3>",
                  table(m, index=True, cell_class=flags, max_rows=40)]
    return section("diversity", "Viewpoints, conditions and other scenarios are covered; shares of every "
                   "attribute value and a class × attribute coverage matrix.", *parts,
                   clauses=_clauses(a, "diversity"))


# ---------------------------------------------------------------- consistency --
def consistency(a) -> Html:
    parts = []
    if a.interval is not None:
        i = a.interval
        parts.append(table(pd.DataFrame([{"metric": i.metric, "estimate": round(i.estimate, 3),
                                          "interval": f"[{i.low:.3f}, {i.high:.3f}] ({i.level:.0%})",
                                          "images": a.agreement_tasks, "resamples": i.n_boot}])))
    else:
        parts.append(note("Agreement on image-level labels is not evaluated: fewer than two annotators "
                          "labeled the same images.", "na"))
    if a.pairwise is not None and len(a.pairwise):
        pw = a.pairwise.reset_index() if not isinstance(a.pairwise.index, pd.RangeIndex) else a.pairwise
        parts += ["<h3>Pairwise agreement (Cohen's kappa)</h3>", table(pw.round(3), max_rows=30)]
    lab = a.annotations[(a.annotations["kind"] == "label") & (a.annotations["source"] != "consensus")]
    if len(lab) and len(a.delivered):
        ref = a.delivered.reindex(lab["task"]).to_numpy()
        per = (lab.assign(agrees=lab["label"].to_numpy() == ref).groupby("worker")
               .agg(labels=("label", "size"), agrees_with_delivered=("agrees", "mean")))
        parts += ["<h3>Annotators against the delivered labels</h3>",
                  table(per.reset_index(), percent=["agrees_with_delivered"])]
    if a.geometric is not None:
        g = a.geometric.reset_index()[["worker_a", "worker_b", "matched", "unmatched", "f1", "mean_iou"]]
        parts += ["<h3>Box agreement between annotators (matched at IoU ≥ 0.5)</h3>", table(g.round(3))]
    return section("consistency", "One annotation style and rule set across the dataset: chance-corrected "
                   "agreement between annotators, judged on the lower bound of its interval.", *parts,
                   clauses=_clauses(a, "consistency"))


# ---------------------------------------------------------- annotation quality --
def annotation_quality(a) -> Html:
    f = a.findings[a.findings["dimension"] == "annotation_quality"]
    parts = []
    if len(f):
        parts += ["<h3>Findings by rule</h3>", table(integ.summarize_findings(f).reset_index()
                                                     [["rule", "description", "findings", "images"]])]
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
                  "<h3>All findings</h3>", table(f[["rule", "image", "annotation", "worker", "label", "detail"]],
                                                 max_rows=30)]
    else:
        parts.append(note("No geometry problem, unknown class or overlapping instance mask was found.", "pass"))
    return section("annotation_quality", "Boxes tight and inside the image, polygons valid, masks non-empty "
                   "and not overlapping, labels in the taxonomy.", *parts,
                   clauses=_clauses(a, "annotation_quality"))


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
                     f'candidates; predictions: {esc(p.source)}, {p.probs.shape[0]} models.</p>')
        cols = ["given_label", "suggested_label", "score", "x_perplexity", "c_perplexity", "reason"]
        shown = a.issues[cols].reset_index().rename(columns={"sample": "image"})
        parts.append(table(shown.round(3), max_rows=20))
        cards = [_card(a, int(i), f"<b>image {int(i)}</b> · labeled {esc(r.given_label)}, pool says "
                                  f"<b>{esc(r.suggested_label)}</b> (score {r.score:.2f})")
                 for i, r in a.issues.iloc[:a.max_evidence].iterrows()]
        parts.append(ev.gallery(cards))
        cols = [c for c in ("c_perplexity", "x_perplexity", "mutual_information", "label_prob", "c_confusion")
                if c in a.difficulty.columns]
        hard = a.difficulty.sort_values(["c_perplexity", "x_perplexity"], ascending=False).head(10)[cols]
        hard.insert(0, "label", a.delivered.reindex(hard.index).to_numpy())
        parts += ["<h3>Hardest images (C-perplexity: how confused the pool is, 1 = sure)</h3>",
                  table(hard.reset_index().rename(columns={"sample": "image"}).round(3), max_rows=10)]
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
    parts = ["<h3>Models against agreed baselines</h3>", table(t.round(4)),
             "<h3>Splits</h3>", table(splits.assign(percent=splits["percent"] / 100), percent=["percent"])]
    return section("model_validation", "Quality read from the performance of models trained and run on the "
                   "data (seed 004's model-based validation): metric, baseline and measured value.", *parts)


# --------------------------------------------------------------- known issues --
def known_issues(a) -> Html:
    t = a.verdict_.table
    open_ = t[t["status"] != "PASS"]
    items = "".join(f"<li>{pill(r.status)} <b>{esc(k)}</b>: {esc(r.evidence)}</li>" for k, r in open_.iterrows())
    summary = integ.summarize_findings(a.findings).reset_index() if len(a.findings) else None
    parts = [f"<ul>{items}</ul>" if items else note("No open issue.", "pass")]
    if summary is not None:
        parts += ["<h3>Integrity findings</h3>",
                  table(summary[["rule", "dimension", "severity", "findings", "images"]])]
    parts.append('<p class="sub">Written next to this report: <code>integrity_findings.csv</code> (every finding), '
                 '<code>verdict.json</code> (every clause with its evidence ids)'
                 + (f', <code>{esc(a.sheet_path.name)}</code> (the inspection sheet)' if a.sheet_path else "")
                 + ".</p>")
    return block('<h2 id="known-issues">Known issues</h2>', *parts)
