"""Build the general-ability reference sets shipped in sttune_helpers/datasets/reference/ from the
shared data (deterministic: a fixed seed, sorted inputs), so that anyone can rebuild them.

    python bench/build_reference_sets.py [--data ../shared/data] [--out sttune_helpers/datasets/reference]

Every part has two disjoint halves: selection (choosing models during training) and report (the
evaluation stage). No text of a part's selection half occurs in its report half.
  stsb   selection: 750 STS-B dev pairs; report: all of STS-B test (datasets/stsb/sts-test.tsv, not copied)
  snli   SNLI as relatedness (entailment 1, neutral 0.5, contradiction 0); selection: 750 dev pairs,
         report: 1,500 test pairs
  squad  SQuAD v1.1 dev as retrieval; its 48 articles split in two halves, each 1,000 questions against
         every paragraph of its articles (a selection corpus of 400 read drops about 30% smaller than
         the report half's: bench/RESULTS.md, session 25). Document = title + " " + text.
  *-fingerprints.txt  the sorted short hashes of every normalised text of the part's whole source
         family (scoring/reference.py's fingerprint), to recognise a run trained on that source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sttune_helpers.scoring.reference import fingerprint, normalise  # noqa: E402

SEED = 17
STS_SELECTION = 750
SNLI_REPORT = 1500
SQUAD_SELECTION_QUERIES, SQUAD_REPORT_QUERIES = 1000, 1000
NLI_SCORE = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_tsv(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, sep="\t", index=False, lineterminator="\n")


def write_fingerprints(path: Path, texts) -> None:
    path.write_text("".join(h + "\n" for h in sorted({fingerprint(t) for t in texts})), encoding="ascii")


def pair_texts(frame: pd.DataFrame) -> set[str]:
    return {normalise(t) for t in (*frame["sentence1"], *frame["sentence2"])}


def sample_pairs_apart(frame: pd.DataFrame, n: int, avoid: set[str], rng: np.random.Generator) -> pd.DataFrame:
    """``n`` seeded pairs none of whose texts is in ``avoid``, in their original order."""
    free = frame[[normalise(a) not in avoid and normalise(b) not in avoid
                  for a, b in zip(frame["sentence1"], frame["sentence2"])]]
    return free.iloc[np.sort(rng.choice(len(free), size=n, replace=False))]


def build_stsb(data: Path, out: Path, rng: np.random.Generator) -> None:
    splits = {s: read_tsv(data / "stsb" / f"sts-{s}.tsv") for s in ("train", "dev", "test")}
    selection = sample_pairs_apart(splits["dev"], STS_SELECTION, pair_texts(splits["test"]), rng)
    write_tsv(out / "stsb-selection.tsv", selection[["sentence1", "sentence2", "score"]])
    write_fingerprints(out / "stsb-fingerprints.txt", [t for f in splits.values() for t in (*f["sentence1"],
                                                                                            *f["sentence2"])])


def build_snli(data: Path, out: Path, rng: np.random.Generator) -> None:
    def recast(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"sentence1": frame["sentence1"], "sentence2": frame["sentence2"],
                             "score": frame["label"].map(NLI_SCORE)})

    dev, test = (read_tsv(data / "snli" / f"snli-{s}.tsv") for s in ("dev", "test"))
    report = test.iloc[np.sort(rng.choice(len(test), size=SNLI_REPORT, replace=False))]
    selection = sample_pairs_apart(dev, STS_SELECTION, pair_texts(report), rng)
    write_tsv(out / "snli-report.tsv", recast(report))
    write_tsv(out / "snli-selection.tsv", recast(selection))
    write_fingerprints(out / "snli-fingerprints.txt", [t for f in (dev, test) for t in (*f["sentence1"],
                                                                                       *f["sentence2"])])


def build_squad(data: Path, out: Path, rng: np.random.Generator) -> None:
    corpus = read_jsonl(data / "squad" / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "squad" / "queries.jsonl")}
    qrels = read_tsv(data / "squad" / "qrels" / "test.tsv")
    relevant = dict(zip(qrels["query-id"], qrels["corpus-id"]))  # exactly one paragraph per question
    title = {d["_id"]: d["title"] for d in corpus}
    titles = list(dict.fromkeys(d["title"] for d in corpus))
    shuffled = [titles[i] for i in rng.permutation(len(titles))]
    articles = {"selection": set(shuffled[: len(titles) // 2]), "report": set(shuffled[len(titles) // 2:])}

    def questions_of(half: str, avoid: set[str]) -> list[str]:
        return [q for q in queries if title[relevant[q]] in articles[half] and normalise(queries[q]) not in avoid]

    def sample(ids: list[str], n: int) -> list[str]:
        return [ids[i] for i in np.sort(rng.choice(len(ids), size=n, replace=False))]

    report_ids = sample(questions_of("report", set()), SQUAD_REPORT_QUERIES)
    selection_ids = sample(questions_of("selection", {normalise(queries[q]) for q in report_ids}),
                           SQUAD_SELECTION_QUERIES)
    keep = {half: {d["_id"] for d in corpus if d["title"] in articles[half]} for half in articles}
    for half, ids in (("selection", selection_ids), ("report", report_ids)):
        write_jsonl(out / f"squad-{half}-corpus.jsonl", [{"_id": d["_id"], "text": d["title"] + " " + d["text"]}
                                                         for d in corpus if d["_id"] in keep[half]])
        write_jsonl(out / f"squad-{half}-queries.jsonl", [{"_id": q, "text": queries[q], "doc_id": relevant[q]}
                                                          for q in ids])
    write_fingerprints(out / "squad-fingerprints.txt", [*(d["text"] for d in corpus),
                                                        *(d["title"] + " " + d["text"] for d in corpus),
                                                        *queries.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "sttune_helpers" / "datasets" / "reference")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for build in (build_stsb, build_snli, build_squad):
        build(args.data, args.out, np.random.default_rng(SEED))  # one generator each: parts rebuild independently
    for path in sorted(args.out.glob("*")):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
