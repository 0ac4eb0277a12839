"""Class proposals from the model pool on real digits: accepting the unanimous ones delivers the pool's predictions."""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.models import prelabel
from labkit.quality import c_perplexity, prelabel_report, x_perplexity


def test_accepting_the_unanimous_reproduces_the_pools_predictions(project_copy, trained):
    pool, predictions = trained
    p = project_copy
    made = prelabel(p, source="pool", progress=False)
    assert len(made) == len(predictions.images) == 300
    assert set(made["source"]) == {"pool"} and set(made["kind"]) == {"label"}
    assert made.attrs["model_id"] == pool.id

    props = p.proposals()
    mean = predictions.mean()  # the pool's mean distribution per image (out of sample)
    predicted = mean.idxmax(axis=1)
    assert props.set_index("task")["label"].equals(predicted.rename("label").rename_axis("task"))
    np.testing.assert_allclose(props["score"], mean.max(axis=1).to_numpy(), rtol=1e-6)
    probs = np.asarray(predictions.probs)
    top = mean.to_numpy().argmax(axis=1)
    prov = pd.DataFrame(list(props["provenance"]), index=props.index)
    np.testing.assert_allclose(prov["x_perplexity"], x_perplexity(probs, top), atol=1e-6)
    np.testing.assert_allclose(prov["c_perplexity"], c_perplexity(probs), atol=1e-6)
    assert (prov["fold"].to_numpy() == np.asarray(predictions.fold)).all() and set(prov["pool"]) == {"default"}

    unanimous = prov.index[prov["x_perplexity"] == 0]
    assert 0 < len(unanimous) < len(props)
    for aid in unanimous:
        p.review(int(aid), "accept", by=p.user)
    accepted = p.proposals("accepted")
    assert accepted.index.tolist() == unanimous.tolist()
    # what is delivered is the pool's prediction, and every member voted for it
    assert accepted.set_index("task")["final_label"].equals(predicted.loc[accepted["task"]].rename("final_label")
                                                             .rename_axis("task"))
    pos = predictions.images.get_indexer(accepted["task"])
    votes = probs[:, pos].argmax(axis=2)
    assert (votes == top[pos][None, :]).all()

    # the report's numbers are these counts
    r = prelabel_report(p.proposals(None))
    row = r.by_source.loc["pool"]
    assert row[["proposals", "reviewed", "accepted", "edited", "rejected", "pending"]].tolist() == \
        [300, len(unanimous), len(unanimous), 0, 0, 300 - len(unanimous)]
    assert row["acceptance_rate"] == 1.0
    by_class = predicted.loc[accepted["task"]].value_counts()
    assert r.by_class["accepted"][r.by_class["accepted"] > 0].sort_index().equals(
        by_class.sort_index().rename("accepted").rename_axis("label"))

    again = prelabel(p, source="pool", progress=False)  # resumable: every image has the pool's proposal
    assert again.empty and len(again.attrs["skipped"]) == 300
