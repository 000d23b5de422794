"""The general-ability reference: the shipped halves, the run's own source left out, overlapping items
dropped, a retrieval part scored like a run's retrieval split."""

import json

import pandas as pd
import pytest

from sttune_helpers.config import RunConfig
from sttune_helpers.rundir import RunDir
from sttune_helpers.scoring.reference import (
    REFERENCE_DIR,
    STSB_TEST,
    family_fingerprints,
    fingerprint,
    general_reference,
    item_texts,
    load_part,
    normalise,
)

SIZES = {("stsb", "selection"): 750, ("stsb", "report"): 1379, ("snli", "selection"): 750,
         ("snli", "report"): 1500, ("squad", "selection"): 1000, ("squad", "report"): 1000}


def texts_of(task) -> set[str]:
    return {normalise(t) for item in item_texts(task) for t in item}


def run_trained_on(tmp_path, frame: pd.DataFrame, shape: str = "pair_score") -> RunDir:
    """A run whose data stage wrote only ``frame`` as its train split."""
    run = RunDir(tmp_path / "run")
    run.data_dir.mkdir(parents=True)
    run.data_report_path.write_text(json.dumps({"shape": shape}))
    frame.to_json(run.split_path("train"), orient="records", lines=True)
    return run


def invented_pairs(n: int) -> pd.DataFrame:
    return pd.DataFrame({"sentence1": [f"zorblat {i} quivers near the fenwick" for i in range(n)],
                         "sentence2": [f"a fenwick {i} hums" for i in range(n)], "score": [0.5] * n})


def test_the_shipped_halves_have_their_sizes_and_stay_small():
    for (part, half), n in SIZES.items():
        task = load_part(part, half)
        assert task.n == n and task.name == f"{part}-{half}"
        if task.shape == "pair_score":
            assert task.items["score"].between(0, 1).all() and task.items["score"].nunique() > 2
        else:
            assert all(wanted <= set(task.corpus) for wanted in task.relevant)
    # Each SQuAD half is every paragraph of its 24 articles, so the two read drops alike.
    assert (len(load_part("squad", "selection").corpus), len(load_part("squad", "report").corpus)) == (1021, 1046)
    assert sum(p.stat().st_size for p in REFERENCE_DIR.iterdir()) < 3_500_000


@pytest.mark.parametrize("part", ["stsb", "snli", "squad"])
def test_selection_and_report_halves_share_no_text(part):
    selection, report = load_part(part, "selection"), load_part(part, "report")
    assert not texts_of(selection) & texts_of(report)
    if part == "squad":
        article = lambda doc: doc.split("-p")[0]  # noqa: E731
        assert not {article(d) for d in selection.corpus} & {article(d) for d in report.corpus}
        assert len({article(d) for d in report.corpus}) == 24


def test_family_fingerprints_cover_the_shipped_texts_and_only_their_family():
    stsb, snli = family_fingerprints("stsb"), family_fingerprints("snli")
    assert {fingerprint(t) for t in texts_of(load_part("stsb", "report"))} <= stsb
    assert {fingerprint(t) for t in texts_of(load_part("snli", "selection"))} <= snli
    assert fingerprint("Two women are embracing while holding to go packages.") in snli  # SNLI is tokenised
    assert not {fingerprint(t) for t in texts_of(load_part("squad", "report"))} & stsb


def test_no_run_gives_stsb_and_squad_with_nothing_excluded_and_caps_the_items():
    reference = general_reference(None, RunConfig(), "selection")
    assert [p.name for p in reference.parts] == ["stsb-selection", "squad-selection"] and reference.excluded == []
    capped = general_reference(None, RunConfig().with_overrides(["eval.reference_max_pairs=30"]), "report")
    assert [p.n for p in capped.parts] == [30, 30] and len(capped.parts[1].corpus) == 1046


def test_reference_corpus_size_cuts_the_retrieval_corpus_and_keeps_every_relevant_document():
    config = RunConfig().with_overrides(["eval.reference_max_pairs=30", "eval.reference_corpus_size=200"])
    sts, squad = general_reference(None, config, "report").parts
    whole = general_reference(None, RunConfig().with_overrides(["eval.reference_max_pairs=30"]), "report").parts[1]
    assert sts.corpus is None and squad.n == whole.n == 30
    assert len(squad.corpus) == 200 and set(squad.corpus) < set(whole.corpus)
    assert set().union(*squad.relevant) <= set(squad.corpus)  # no query lost its answer
    assert all(squad.corpus[d] == whole.corpus[d] for d in squad.corpus)
    again = general_reference(None, config, "report").parts[1]
    assert list(again.corpus) == list(squad.corpus)  # seeded: the same documents every time


def test_a_run_trained_on_stsb_gets_snli_and_the_record_says_why(tmp_path):
    train = pd.read_csv(STSB_TEST.with_name("sts-train.tsv"), sep="\t", dtype=str, keep_default_na=False)
    train = train.sample(n=300, random_state=0)  # 2% of these texts also occur in SNLI: below FAMILY_OVERLAP
    run = run_trained_on(tmp_path, train.assign(score=train["score"].astype(float) / 5))
    reference = general_reference(run, RunConfig(), "report")
    assert [p.name for p in reference.parts] == ["snli-report", "squad-report"]
    own = [e for e in reference.excluded if e["items"] == "all"]
    assert own == [{"part": "stsb", "kind": "sts", "items": "all",
                    "reason": "100% of the run's training texts are STS-B texts: the run's own source"}]


def test_a_run_on_other_data_keeps_stsb_and_drops_the_pairs_it_trained_on(tmp_path):
    report = load_part("stsb", "report").items
    leaked = report.head(3)[["sentence1", "sentence2", "score"]]
    run = run_trained_on(tmp_path, pd.concat([invented_pairs(100), leaked], ignore_index=True))
    leaked_texts = {normalise(t) for t in (*leaked["sentence1"], *leaked["sentence2"])}
    expected = sum(normalise(a) in leaked_texts or normalise(b) in leaked_texts
                   for a, b in zip(report["sentence1"], report["sentence2"]))
    reference = general_reference(run, RunConfig(), "report")
    stsb = reference.parts[0]
    assert stsb.name == "stsb-report" and stsb.n == len(report) - expected and expected >= 3
    assert not texts_of(stsb) & leaked_texts
    assert reference.excluded == [{"part": "stsb", "kind": "sts", "items": expected,
                                   "reason": f"{expected} pairs share a text with the run's training data"}]


def test_a_run_trained_on_squad_has_no_retrieval_part(tmp_path):
    queries = load_part("squad", "selection")
    train = pd.DataFrame({"anchor": list(queries.items["query"]),
                          "positive": [queries.corpus[next(iter(w))] for w in queries.relevant]})
    reference = general_reference(run_trained_on(tmp_path, train, shape="retrieval"), RunConfig(), "report")
    assert [p.name for p in reference.parts] == ["stsb-report"]
    parts = [(e["part"], e["kind"]) for e in reference.excluded]
    assert parts == [("squad", "retrieval"), (None, "retrieval")]
    assert "SQuAD texts: the run's own source" in reference.excluded[0]["reason"]


def test_a_retrieval_part_scores_with_score_model(tmp_path):
    from helpers.tiny_model import build_tiny_model_folder
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.scoring.models import score_model
    from sttune_helpers.scoring.reference import PRIMARY

    model = SentenceTransformer(str(build_tiny_model_folder(tmp_path / "tiny")), device="cpu")
    config = RunConfig().with_overrides(["eval.reference_max_pairs=20"])
    squad = general_reference(None, config, "selection").parts[1]
    scores = score_model(squad, model, Bootstrap.draw(squad.n, 20, 0.95, seed=0), batch_size=64)
    ndcg = scores.metrics[PRIMARY["retrieval"]]
    assert PRIMARY["retrieval"] == "cosine_ndcg@10" and 0.0 <= ndcg["value"] <= 1.0
    assert ndcg["ci95"][0] <= ndcg["value"] <= ndcg["ci95"][1]
