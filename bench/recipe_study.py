"""Recipe study: which fine-tuning techniques beat the plain sentence-transformers recipe on held-out
data AND keep the base model's general ability.

What it measures
----------------
Sets (train / validation / test; nothing is ever chosen on test):
  stsb  STS-B as pair_score: train sts-train, validation sts-dev, test sts-test, score / 5.
  snli  the transfer case: SNLI recast as pair_score (entailment 1, neutral 0.5, contradiction 0),
        trained on snli-dev minus a validation part of 15% of its premises (grouped by premise_id,
        fixed seed, the same for every training seed), tested on snli-test.
  The task metric is the Spearman correlation of the cosine with the gold score.

General-ability reference (never the run's own data), in two disjoint halves, so that the selection
rule never sees the numbers that are reported:
  STS    selection half STS-B dev, report half STS-B test (Spearman of cosine); not for the stsb set,
         where STS-B is the task.
  SQuAD  a fixed seeded sample of questions, 1,000 for selection and 2,000 for the report, each scored
         against the whole 2,067-paragraph corpus (title + " " + text): NDCG@10 of cosine, in numpy.
  drop = base score - candidate score (positive: the candidate lost ability); the general drop is the
  mean over the parts the set has.

Arms (seeds 0,1,2; batch 16, 4 epochs, lr 2e-5, 10% warmup, bf16 autocast on CUDA, fp32 on CPU):
  base          no training
  plain_cos     CosineSimilarityLoss, the plain sentence-transformers recipe
  plain_cosent  CoSENTLoss (sttune's default)
  lr1e-5        CoSENT at lr 1e-5
  cos_lr<lr>    CosineSimilarityLoss at that lr, e.g. cos_lr5e-5
  ep1           CoSENT, 1 epoch
  l2sp_<lam>    CoSENT + lam * sum((theta - theta0)^2) over the trainable weights (L2-SP), lam 0.1 and 1
  anchor_<lam>  CoSENT + lam * mean(1 - cos(e, e0)) over the batch's texts, e0 the frozen base model's
                embedding of the same text (feature-space anchoring, as LDIFS, Mukhoti et al. 2023, on
                the output embedding): the base's geometry kept where the task does not need it moved
  xanchor_<lam> CoSENT + lam * mean(1 - cos(e, e0)) over 16 texts a step drawn from an off-task pool
                (MRPC train sentences, less every text of the STS-B, SNLI and SQuAD families): the base's
                geometry kept on general text the task never sees (self-distillation on replay text)
  xrel_<lam>    the same pool, but lam * mean((C - C0)^2) over the 16 texts' pairwise cosines C (C0 the
                base model's): their relative geometry kept rather than their directions
  prompt        CoSENT on the task's texts with TASK_PROMPT prepended; the task's validation and test are
                encoded with it, the reference without (a task prefix, as E5's "query: ")
  panchor_<lam> prompt, + lam * mean(1 - cos(e, e0)) over 16 of the task's own training texts a step
                WITHOUT the prompt, e0 the base model's: the task is learnt behind the prompt while the
                unprompted text, the model's general use, is held where the base model had it
  lora_r16      CoSENT on LoRA adapters (r 16, alpha 32, dropout 0.1, attention and dense layers of
                every encoder layer), lr 2e-4, merged for evaluation
  <arm>_lg      that arm in length-grouped batches (sttune's LengthGroupedBatchSampler, issue 18);
                cosent_lg is plain_cosent_lg
Post-hoc candidates of plain_cosent and lora_r16 (no extra training):
  wise_<a>      WiSE-FT weights (1 - a) * base + a * fine-tuned, a in 0.3 0.5 0.7 0.85 1.0 (1.0 = last)
  soup3         uniform average of the weights at the end of epochs 2, 3, 4
  select        among {last, soup3, wise_*}: the best validation metric; every candidate whose
                validation metric is within the noise of the best (the half-width of a 95% paired
                bootstrap interval of its difference to the best, 1,000 resamples of the validation
                pairs) is eligible; the eligible one with the smallest general drop on the SELECTION
                halves is picked. Its test metric and REPORT-half drops are what is reported.

How to run
----------
  # on a lent GPU machine (no internet): bench/stage_recipe_study.sh builds .gpu/ here, then run
  # `bash .gpu/run.sh` there with .gpu carried (about 9 minutes)
  # the full study (on a GPU; defaults: both sets, every arm, seeds 0,1,2, seed 0 of everything first)
  python bench/recipe_study.py --data ../shared/data --model PATH --out bench/out/study --device cuda --jobs 8
  # a tiny CPU smoke run
  python bench/recipe_study.py --data ../shared/data --model PATH --out /tmp/study --device cpu --jobs 1 \
      --seeds 0 --limit-train 64 --limit-eval 100 --max-steps 4 --threads 1
  # re-read the job records and rewrite summary.md / summary.json (also done after every job)
  python bench/recipe_study.py --summarise bench/out/study

Outputs in --out: run_info.json (machine, versions, settings), all_jobs.jsonl (one record per finished
job, rewritten after each), jobs/<id>.json (one per job unless --no-job-files), summary.md, summary.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

BATCH = 16
EPOCHS = 4
LR = 2e-5
LORA_LR = 2e-4
WARMUP = 0.1  # a float < 1 is a ratio in transformers 5's warmup_steps (warmup_ratio is gone)
WISE_ALPHAS = (0.3, 0.5, 0.7, 0.85, 1.0)
SPLIT_SEED = 1234  # data splits and samples: fixed, independent of the training seed
VAL_FRACTION = 0.15
SQUAD_SEL, SQUAD_REP = 1000, 2000
BOOTSTRAP = 1000
POSTHOC_ARMS = ("plain_cosent", "lora_r16")
# L2-SP strengths: the plain CoSENT run on STS-B (seed 0, 1,440 steps, fp32 on CPU) ends at a squared
# distance of 3.84 from the base weights with a mean training loss of 4.31, so lam = 0.1 and 1 put the
# penalty at that distance at about 0.1x and 1x the loss.
TASK_PROMPT = "task: "
DEFAULT_ARMS = "base,plain_cos,plain_cosent,lora_r16,l2sp_0.1,l2sp_1,lr1e-5,ep1"
LORA_TARGETS = (r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
                r"|intermediate\.dense|output\.dense)")


# ----------------------------------------------------------------------------------------------
# Arms and jobs


def batch_sampler(arm: dict):
    """The trainer's batch_sampler: plain shuffled batches, or sttune's length-grouped ones."""
    if not arm["length_grouped"]:
        from sentence_transformers.base.sampler import BatchSamplers

        return BatchSamplers.BATCH_SAMPLER
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from sttune_helpers.training.samplers import LengthGroupedBatchSampler

    return LengthGroupedBatchSampler


def parse_arm(name: str) -> dict:
    """The training recipe an arm name stands for."""
    if name == "cosent_lg":
        name = "plain_cosent_lg"
    if name.endswith("_lg") and name != "_lg":  # any arm in length-grouped batches
        return {**parse_arm(name[:-len("_lg")]), "name": name, "posthoc": name in POSTHOC_ARMS, "length_grouped": True}
    arm = {"name": name, "loss": "cosent", "lr": LR, "epochs": EPOCHS, "l2sp": 0.0, "anchor": 0.0, "xanchor": 0.0,
           "xrel": 0.0, "lora_r": 0, "prompt": "", "panchor": 0.0,
           "posthoc": name in POSTHOC_ARMS, "train": name != "base", "length_grouped": False}
    if name in ("base", "plain_cosent"):
        pass
    elif name == "plain_cos":
        arm["loss"] = "cos"
    elif m := re.fullmatch(r"lr([0-9.e-]+)", name):
        arm["lr"] = float(m.group(1))
    elif m := re.fullmatch(r"cos_lr([0-9.e-]+)", name):
        arm["loss"], arm["lr"] = "cos", float(m.group(1))
    elif m := re.fullmatch(r"ep(\d+)", name):
        arm["epochs"] = int(m.group(1))
    elif m := re.fullmatch(r"l2sp_([0-9.e-]+)", name):
        arm["l2sp"] = float(m.group(1))
    elif m := re.fullmatch(r"anchor_([0-9.e-]+)", name):
        arm["anchor"] = float(m.group(1))
    elif m := re.fullmatch(r"xanchor_([0-9.e-]+)", name):
        arm["xanchor"] = float(m.group(1))
    elif m := re.fullmatch(r"xrel_([0-9.e-]+)", name):
        arm["xrel"] = float(m.group(1))
    elif name == "prompt":
        arm["prompt"] = TASK_PROMPT
    elif m := re.fullmatch(r"panchor_([0-9.e-]+)", name):
        arm["prompt"], arm["panchor"] = TASK_PROMPT, float(m.group(1))
    elif m := re.fullmatch(r"lora_r(\d+)", name):
        arm["lora_r"], arm["lr"] = int(m.group(1)), LORA_LR
    else:
        raise ValueError(f"unknown arm {name!r}")
    return arm


def build_jobs(sets: list[str], arms: list[str], seeds: list[int],
               posthoc_arms: tuple[str, ...] = POSTHOC_ARMS) -> list[dict]:
    """Seed-major queue: every set/arm at the first seed before any at the second, so that a run
    cut off at its time limit still covers everything at one seed. base runs once (first seed).
    Only the arms in posthoc_arms score their post-hoc candidates (the costly part on a CPU)."""
    for arm in arms:
        parse_arm(arm)
    jobs = []
    for i, seed in enumerate(seeds):
        for name in sorted(arms, key=lambda a: a != "base"):
            for set_name in sets:
                if name == "base" and i > 0:
                    continue
                jobs.append({"id": f"{set_name}__{name}__s{seed}", "set": set_name, "arm": name,
                             "seed": seed if name != "base" else None, "posthoc": name in posthoc_arms})
    return jobs


# ----------------------------------------------------------------------------------------------
# Data


def read_tsv(path: Path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def pairs_of(frame, score) -> dict:
    return {"s1": frame["sentence1"].tolist(), "s2": frame["sentence2"].tolist(),
            "gold": np.asarray(score, dtype=np.float64)}


def subsample(pairs: dict, limit: int | None, seed: int = SPLIT_SEED) -> dict:
    n = len(pairs["s1"])
    if not limit or n <= limit:
        return pairs
    keep = np.sort(np.random.default_rng(seed).permutation(n)[:limit])
    return {"s1": [pairs["s1"][i] for i in keep], "s2": [pairs["s2"][i] for i in keep],
            "gold": pairs["gold"][keep]}


def load_task(data: Path, name: str, limit_train: int | None, limit_eval: int | None) -> dict:
    """train / val / test pairs of a set, with gold scores in [0, 1]."""
    if name == "stsb":
        split = {s: read_tsv(data / "stsb" / f"sts-{s}.tsv") for s in ("train", "dev", "test")}
        task = {k: pairs_of(split[s], split[s]["score"].astype(float) / 5.0)
                for k, s in (("train", "train"), ("val", "dev"), ("test", "test"))}
    elif name == "snli":
        nli = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}
        dev, test = read_tsv(data / "snli" / "snli-dev.tsv"), read_tsv(data / "snli" / "snli-test.tsv")
        premises = np.array(sorted(dev["premise_id"].unique()))
        held = premises[np.random.default_rng(SPLIT_SEED).permutation(len(premises))]
        held = set(held[: round(VAL_FRACTION * len(premises))])  # whole premises: no premise in both parts
        is_val = dev["premise_id"].isin(held)
        task = {"train": pairs_of(dev[~is_val], dev[~is_val]["label"].map(nli)),
                "val": pairs_of(dev[is_val], dev[is_val]["label"].map(nli)),
                "test": pairs_of(test, test["label"].map(nli))}
    else:
        raise ValueError(f"unknown set {name!r}")
    task["train"] = subsample(task["train"], limit_train)
    task["val"] = subsample(task["val"], limit_eval)
    task["test"] = subsample(task["test"], limit_eval)
    return task


def load_reference(data: Path, limit_eval: int | None) -> dict:
    """The general-ability reference: STS-B dev/test pairs and two disjoint SQuAD question samples."""
    sts = {s: read_tsv(data / "stsb" / f"sts-{s}.tsv") for s in ("dev", "test")}
    ref = {"sts_sel": subsample(pairs_of(sts["dev"], sts["dev"]["score"].astype(float) / 5.0), limit_eval),
           "sts_rep": subsample(pairs_of(sts["test"], sts["test"]["score"].astype(float) / 5.0), limit_eval)}
    squad = data / "squad"
    corpus = [json.loads(line) for line in open(squad / "corpus.jsonl", encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(squad / "queries.jsonl", encoding="utf-8"))}
    qrels = read_tsv(squad / "qrels" / "test.tsv")
    relevant = dict(zip(qrels["query-id"], qrels["corpus-id"]))  # exactly one relevant paragraph each
    qids = sorted(q for q in queries if q in relevant)
    qids = [qids[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(qids))]
    n_sel, n_rep = SQUAD_SEL, SQUAD_REP
    if limit_eval:
        n_sel, n_rep = min(n_sel, limit_eval), min(n_rep, limit_eval)
    halves = {"sel": qids[:n_sel], "rep": qids[n_sel:n_sel + n_rep]}
    doc_ids = [d["_id"] for d in corpus]
    if limit_eval:  # smoke runs only: the relevant paragraphs plus random others, not the whole corpus
        needed = {relevant[q] for h in halves.values() for q in h}
        others = [d for d in doc_ids if d not in needed]
        extra = np.random.default_rng(SPLIT_SEED).permutation(len(others))[: max(0, 2 * limit_eval - len(needed))]
        keep = needed | {others[i] for i in extra}
        corpus = [d for d in corpus if d["_id"] in keep]
        doc_ids = [d["_id"] for d in corpus]
    position = {d: i for i, d in enumerate(doc_ids)}
    ref["squad"] = {"docs": [d["title"] + " " + d["text"] for d in corpus],
                    **{h: {"queries": [queries[q] for q in ids], "rel": np.array([position[relevant[q]] for q in ids])}
                       for h, ids in halves.items()}}
    return ref


# ----------------------------------------------------------------------------------------------
# Evaluation: one encode of every distinct text a candidate needs, then numpy


class Plan:
    """The distinct texts to encode and, per metric, where its items sit among them."""

    def __init__(self, task: dict | None, ref: dict, with_sts: bool, prompt: str = ""):
        self.index: dict[str, int] = {}
        self.pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if task:  # the task's own texts carry the arm's prompt; the reference never does
            self.add_pairs("val", task["val"], prompt)
            self.add_pairs("test", task["test"], prompt)
        if with_sts:
            self.add_pairs("sts_sel", ref["sts_sel"])
            self.add_pairs("sts_rep", ref["sts_rep"])
        squad = ref["squad"]
        self.docs = self.ids(squad["docs"])
        self.queries = {h: (self.ids(squad[h]["queries"]), squad[h]["rel"]) for h in ("sel", "rep")}
        self.texts = list(self.index)

    def ids(self, texts: list[str]) -> np.ndarray:
        return np.array([self.index.setdefault(t, len(self.index)) for t in texts], dtype=np.int64)

    def add_pairs(self, name: str, pairs: dict, prompt: str = "") -> None:
        self.pairs[name] = (self.ids([prompt + t for t in pairs["s1"]]), self.ids([prompt + t for t in pairs["s2"]]),
                            pairs["gold"])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y)[0])


def ndcg_at_10(q: np.ndarray, docs: np.ndarray, rel: np.ndarray) -> float:
    """NDCG@10 with one relevant document per query: 1 / log2(rank + 1) when its rank is <= 10."""
    scores = q @ docs.T
    rank = (scores > scores[np.arange(len(rel)), rel][:, None]).sum(axis=1) + 1
    return float(np.where(rank <= 10, 1.0 / np.log2(rank + 1), 0.0).mean())


def evaluate(model, plan: Plan, batch_size: int) -> tuple[dict, dict]:
    """Metrics of the model's current weights, and the validation cosines (for the bootstrap)."""
    import torch

    # fp32 on purpose: never under the autocast a trainer may have wrapped around a model's forward
    with torch.autocast(device_type=model.device.type, enabled=False):
        emb = model.encode(plan.texts, batch_size=batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    emb = emb.astype(np.float32, copy=False)
    metrics, cosines = {}, {}
    for name, (a, b, gold) in plan.pairs.items():
        cos = (emb[a] * emb[b]).sum(axis=1)
        cosines[name] = cos
        metrics[name] = spearman(cos, gold)
    docs = emb[plan.docs]
    for half, (q, rel) in plan.queries.items():
        metrics[f"squad_{half}"] = ndcg_at_10(emb[q], docs, rel)
    return metrics, cosines


def ref_parts(set_name: str) -> list[str]:
    return ["squad"] if set_name == "stsb" else ["sts", "squad"]


def with_drops(metrics: dict, base_ref: dict, parts: list[str]) -> dict:
    """A candidate's record: task metrics, reference scores and drops vs base (positive = lost)."""
    ref = {f"{p}_{h}": metrics[f"{p}_{h}"] for p in parts for h in ("sel", "rep")}
    drop = {k: base_ref[k] - v for k, v in ref.items()}
    for h in ("sel", "rep"):
        drop[f"general_{h}"] = float(np.mean([drop[f"{p}_{h}"] for p in parts]))
    return {"val": metrics.get("val"), "test": metrics.get("test"), "ref": ref, "drop": drop}


def bootstrap_halfwidths(gold: np.ndarray, cosines: dict, best: str, seed: int) -> dict:
    """Half-width of the 95% paired bootstrap interval of (best - candidate) validation Spearman."""
    from scipy.stats import rankdata

    n = len(gold)
    idx = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP, n))  # the same resamples for all
    g = rankdata(gold[idx], axis=1)  # average ranks: the gold scores have ties
    g -= g.mean(axis=1, keepdims=True)

    def rowwise_spearman(values: np.ndarray) -> np.ndarray:
        r = rankdata(values[idx], axis=1)
        r -= r.mean(axis=1, keepdims=True)
        return (r * g).sum(axis=1) / np.sqrt((r * r).sum(axis=1) * (g * g).sum(axis=1) + 1e-300)

    best_s = rowwise_spearman(cosines[best])
    out = {}
    for name, cos in cosines.items():
        lo, hi = np.percentile(best_s - rowwise_spearman(cos), [2.5, 97.5])
        out[name] = float((hi - lo) / 2)
    return out


def select(records: dict, cosines: dict, gold: np.ndarray, seed: int) -> dict:
    """The proposed default rule over {last, soup3, wise_*}; see the module docstring."""
    pool = [c for c in records if c == "last" or c == "soup3" or c.startswith("wise_")]
    best = max(pool, key=lambda c: records[c]["val"])
    noise = bootstrap_halfwidths(gold, {c: cosines[c] for c in pool}, best, seed)
    eligible = [c for c in pool if records[best]["val"] - records[c]["val"] <= noise[c]]
    picked = min(eligible, key=lambda c: records[c]["drop"]["general_sel"])
    return {**records[picked], "picked": picked, "best_val": best, "eligible": eligible,
            "noise": noise, "rule": "95% paired bootstrap half-width, 1000 resamples"}


# ----------------------------------------------------------------------------------------------
# Models and training


def load_model(path: str, device: str):
    import torch
    from sentence_transformers import SentenceTransformer

    # The carried GPU copy stores fp16 weights: compute in fp32 regardless of what the file holds.
    model = SentenceTransformer(path, device=device, model_kwargs={"dtype": torch.float32}).float()
    assert all(p.dtype == torch.float32 for p in model.parameters()), "the model must compute in fp32"
    return model


def plain_state(model, lora: bool) -> dict:
    """CPU fp32 copy of the weights as the plain (adapter-free) model names them; LoRA merged in."""
    import torch

    with torch.no_grad():
        merged = {}
        if lora:
            from peft.tuners.lora import LoraLayer

            for name, module in model.named_modules():
                if isinstance(module, LoraLayer):
                    merged[name + ".weight"] = module.base_layer.weight + module.get_delta_weight("default")
        out = {}
        for key, value in model.state_dict().items():
            if ".lora_" in key:
                continue
            key = key.replace(".base_layer.", ".")
            out[key] = merged.get(key, value).detach().to("cpu", dtype=torch.float32 if value.is_floating_point()
                                                          else value.dtype, copy=True)
    return out


def mix(states: list[dict], weights: list[float]) -> dict:
    return {k: (sum(w * s[k] for s, w in zip(states, weights)) if states[0][k].is_floating_point() else states[0][k])
            for k in states[0]}


def sq_distance(a: dict, b: dict) -> float:
    return float(sum(((a[k] - b[k]) ** 2).sum().item() for k in a if a[k].is_floating_point()))


def make_l2sp_loss(task_loss, model, lam: float):
    import torch
    from torch import nn

    class L2SPLoss(nn.Module):
        """task loss + lam * sum((theta - theta0)^2) over the trainable weights (L2-SP, Li et al. 2018).
        theta0 are buffers (not parameters), so the optimizer never sees them."""

        def __init__(self):
            super().__init__()
            self.task_loss = task_loss
            self.lam = lam
            self.params = [p for p in model.parameters() if p.requires_grad]  # a plain list: not re-registered
            for i, p in enumerate(self.params):
                self.register_buffer(f"theta0_{i}", p.detach().clone(), persistent=False)

        def penalty(self):
            return torch.stack([(p - getattr(self, f"theta0_{i}")).pow(2).sum()
                                for i, p in enumerate(self.params)]).sum()

        def forward(self, features, labels):
            return self.task_loss(features, labels) + self.lam * self.penalty()

    return L2SPLoss()


def make_anchor_loss(task_loss, model, base_model, lam: float):
    import torch
    from sentence_transformers.base.losses.merged_forward import embed_columns
    from torch import nn

    class FeatureAnchorLoss(nn.Module):
        """task loss + lam * mean(1 - cos(e, e0)) over every text of the batch, e0 the frozen base
        model's embedding of it. The base model is kept off the module tree (not trained, not moved)."""

        def __init__(self):
            super().__init__()
            self.model, self.task_loss, self.lam = model, task_loss, lam
            object.__setattr__(self, "base_model", base_model)
            self.last_drift = 0.0

        def forward(self, features, labels):
            features = list(features)
            inputs = [dict(f) for f in features]  # a forward writes its outputs into the dict it is given
            embeddings = embed_columns(self.model, features)
            with torch.no_grad():
                anchors = embed_columns(self.base_model, inputs)
            drift = torch.stack([(1 - torch.nn.functional.cosine_similarity(e.float(), a.float(), dim=-1)).mean()
                                 for e, a in zip(embeddings, anchors)]).mean()
            self.last_drift = float(drift.detach())
            return self.task_loss.compute_loss_from_embeddings(embeddings, labels) + self.lam * drift

    return FeatureAnchorLoss()


XANCHOR_POOL = 4096  # off-task texts, a seeded sample
XANCHOR_BATCH = 16  # of them a step


def off_task_pool(data: Path, size: int = XANCHOR_POOL) -> list[str]:
    """MRPC train sentences, deduplicated, without any text of the reference families (STS-B holds
    MRPC's MSRpar sentences): general news text the transfer case and the reference never use."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from sttune_helpers.scoring.reference import family_fingerprints, fingerprint

    frame = read_tsv(data / "mrpc" / "mrpc-train.tsv")
    reference = set().union(*(family_fingerprints(part) for part in ("stsb", "snli", "squad")))
    texts = sorted({t.strip() for column in ("sentence1", "sentence2") for t in frame[column] if t.strip()})
    texts = [t for t in texts if fingerprint(t) not in reference]
    keep = np.random.default_rng(SPLIT_SEED).permutation(len(texts))[:size]
    return [texts[i] for i in sorted(keep)]


def make_off_task_anchor_loss(task_loss, model, base_model, pool: list[str], lam: float, seed: int,
                              relational: bool = False):
    import torch
    from torch import nn

    with torch.no_grad():
        anchors = base_model.encode(pool, batch_size=64, convert_to_tensor=True).float()

    class OffTaskAnchorLoss(nn.Module):
        """task loss + lam * mean(1 - cos(e, e0)) over XANCHOR_BATCH pool texts a step, e0 the base
        model's embedding of the text (computed once); relational: lam * the mean squared difference
        of their pairwise cosines from the base model's."""

        def __init__(self):
            super().__init__()
            self.model, self.task_loss, self.lam = model, task_loss, lam
            self.generator = torch.Generator().manual_seed(seed)

        def forward(self, features, labels):
            rows = torch.randint(len(pool), (XANCHOR_BATCH,), generator=self.generator)
            inputs = self.model.preprocess([pool[i] for i in rows.tolist()])
            inputs = {k: v.to(self.model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            embeddings = self.model(inputs)["sentence_embedding"]
            target = anchors[rows].to(embeddings.device)
            if relational:
                unit = torch.nn.functional.normalize(embeddings.float(), dim=-1)
                base_unit = torch.nn.functional.normalize(target, dim=-1)
                drift = (unit @ unit.T - base_unit @ base_unit.T).pow(2).mean()
            else:
                drift = (1 - torch.nn.functional.cosine_similarity(embeddings.float(), target, dim=-1)).mean()
            return self.task_loss(features, labels) + self.lam * drift

    return OffTaskAnchorLoss()


def train(job: dict, arm: dict, task: dict, cfg: dict, base_sd: dict) -> tuple[dict, dict, dict]:
    """Train one arm at one seed; returns (info, last weights, epoch-end weights by epoch)."""
    import tempfile

    import torch
    import transformers
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, CosineSimilarityLoss
    from transformers import PrinterCallback, TrainerCallback

    transformers.set_seed(job["seed"])
    model = load_model(cfg["model"], cfg["device"])
    lora = arm["lora_r"] > 0
    if lora:
        # peft's own injection, not SentenceTransformer.add_adapter: transformers >= 5.2x refuses
        # peft < 0.22 there, and 0.21.2 is the newest release. It freezes everything but the adapters.
        from peft import LoraConfig, inject_adapter_in_model

        inject_adapter_in_model(LoraConfig(r=arm["lora_r"], lora_alpha=2 * arm["lora_r"], lora_dropout=0.1,
                                           target_modules=LORA_TARGETS), model.transformers_model)
    loss = CoSENTLoss(model) if arm["loss"] == "cosent" else CosineSimilarityLoss(model)
    if arm["l2sp"]:
        loss = make_l2sp_loss(loss, model, arm["l2sp"])
    if arm["anchor"]:
        base_model = load_model(cfg["model"], cfg["device"]).eval().requires_grad_(False)
        loss = make_anchor_loss(loss, model, base_model, arm["anchor"])
    if arm["xanchor"] or arm["xrel"]:
        base_model = load_model(cfg["model"], cfg["device"]).eval().requires_grad_(False)
        loss = make_off_task_anchor_loss(loss, model, base_model, off_task_pool(Path(cfg["data"])),
                                         arm["xanchor"] or arm["xrel"], job["seed"], relational=bool(arm["xrel"]))
        del base_model
    train_pairs = task["train"]
    if arm["panchor"]:  # the pool: the task's own training texts, unprompted
        base_model = load_model(cfg["model"], cfg["device"]).eval().requires_grad_(False)
        own = sorted(set(train_pairs["s1"]) | set(train_pairs["s2"]))
        loss = make_off_task_anchor_loss(loss, model, base_model, own, arm["panchor"], job["seed"])
        del base_model
    prompt = arm["prompt"]
    dataset = Dataset.from_dict({"sentence1": [prompt + t for t in train_pairs["s1"]],
                                 "sentence2": [prompt + t for t in train_pairs["s2"]],
                                 "score": train_pairs["gold"].astype(np.float32)})

    snapshots: dict[int, dict] = {}

    class EpochSnapshots(TrainerCallback):
        """Weights at each epoch end, in memory: no trainer checkpoints."""

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            if arm["posthoc"]:
                snapshots[int(round(state.epoch))] = plain_state(model, lora)

    with tempfile.TemporaryDirectory(prefix="recipe_study_") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, num_train_epochs=arm["epochs"], max_steps=cfg["max_steps"] or -1,
            per_device_train_batch_size=BATCH, learning_rate=arm["lr"], warmup_steps=WARMUP,
            bf16=cfg["precision"] == "bf16", seed=job["seed"], use_cpu=cfg["device"] == "cpu",
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
            dataloader_num_workers=0, batch_sampler=batch_sampler(arm))
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                             callbacks=[EpochSnapshots()])
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict of every job
        started = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - started
        steps = trainer.state.global_step
    last = plain_state(model, lora)
    info = {"train_seconds": seconds, "steps": steps, "steps_per_second": steps / seconds,
            "train_loss": float(output.training_loss), "n_train": len(train_pairs["s1"]),
            "sq_distance": sq_distance(last, base_sd), "lr": arm["lr"], "epochs": arm["epochs"],
            "l2sp": arm["l2sp"], "anchor": arm["anchor"], "xanchor": arm["xanchor"], "xrel": arm["xrel"],
            "prompt": arm["prompt"], "panchor": arm["panchor"], "lora_r": arm["lora_r"], "loss": arm["loss"],
            "precision": cfg["precision"]}
    if arm["l2sp"]:
        info["final_penalty"] = arm["l2sp"] * info["sq_distance"]
    del trainer, model, loss
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return info, last, snapshots


# ----------------------------------------------------------------------------------------------
# Worker side: one job in, one record out


_CTX: dict = {}


def init_worker(cfg: dict) -> None:
    import logging
    import warnings

    import torch

    torch.set_num_threads(cfg["threads"])
    warnings.filterwarnings("ignore")
    for name in ("sentence_transformers", "transformers", "datasets", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def context(cfg: dict) -> dict:
    """Per-process cache: data, plans, an evaluation model, the base weights and base reference scores."""
    if not _CTX:  # filled only once complete, so that a failure here is retried by the next job
        init_worker(cfg)
        ref = load_reference(Path(cfg["data"]), cfg["limit_eval"])
        model = load_model(cfg["model"], cfg["device"]).eval()
        base_metrics, _ = evaluate(model, Plan(None, ref, with_sts=True), cfg["batch_size"])
        _CTX.update(ref=ref, eval_model=model, base_sd=plain_state(model, lora=False), tasks={}, plans={},
                    base_ref={k: v for k, v in base_metrics.items() if k.startswith(("sts_", "squad_"))})
    return _CTX


def task_and_plan(ctx: dict, cfg: dict, set_name: str, prompt: str = "") -> tuple[dict, Plan]:
    if set_name not in ctx["tasks"]:
        ctx["tasks"][set_name] = load_task(Path(cfg["data"]), set_name, cfg["limit_train"], cfg["limit_eval"])
    if (set_name, prompt) not in ctx["plans"]:
        ctx["plans"][set_name, prompt] = Plan(ctx["tasks"][set_name], ctx["ref"],
                                              with_sts="sts" in ref_parts(set_name), prompt=prompt)
    return ctx["tasks"][set_name], ctx["plans"][set_name, prompt]


def _run_job(job: dict, cfg: dict) -> dict:
    ctx = context(cfg)
    arm, parts, base_sd = parse_arm(job["arm"]), ref_parts(job["set"]), ctx["base_sd"]
    task, plan = task_and_plan(ctx, cfg, job["set"], arm["prompt"])
    arm["posthoc"] = job.get("posthoc", arm["posthoc"])
    out: dict = {"base_ref": ctx["base_ref"], "ref_parts": parts, "n_val": len(task["val"]["s1"]),
                 "n_test": len(task["test"]["s1"])}
    states = {"last": base_sd}
    if arm["train"]:
        info, last, snapshots = train(job, arm, task, cfg, base_sd)
        out.update(info)
        states = {"last": last}
        if arm["posthoc"]:
            epochs = sorted(snapshots)[-3:]  # epochs 2, 3, 4 of 4 (fewer when --max-steps cuts training short)
            out["soup_epochs"] = epochs
            if epochs:
                states["soup3"] = mix([snapshots[e] for e in epochs], [1 / len(epochs)] * len(epochs))
            for a in WISE_ALPHAS:
                if a < 1.0:  # wise_1.0 is last itself: recorded as a copy, not evaluated twice
                    states[f"wise_{a:g}"] = mix([base_sd, last], [1 - a, a])
    started = time.perf_counter()
    model = ctx["eval_model"]
    records, cosines = {}, {}
    for name, state in states.items():
        model.load_state_dict(state)
        metrics, cos = evaluate(model, plan, cfg["batch_size"])
        records[name], cosines[name] = with_drops(metrics, ctx["base_ref"], parts), cos["val"]
    model.load_state_dict(base_sd)
    if arm["posthoc"]:
        records["wise_1"], cosines["wise_1"] = records["last"], cosines["last"]
        records["select"] = select(records, cosines, task["val"]["gold"], seed=job["seed"])
    out["eval_seconds"] = time.perf_counter() - started
    out["candidates"] = records
    return out


def run_job(job: dict, cfg: dict) -> dict:
    """Run one job; a failure becomes a record with its traceback. Writes jobs/<id>.json if asked."""
    started = time.perf_counter()
    record = {**job, "pid": os.getpid()}
    try:
        record.update(_run_job(job, cfg))
        record["status"] = "ok"
    except Exception:  # noqa: BLE001 -- one failed job must not stop the study
        record["status"] = "failed"
        record["error"] = traceback.format_exc()
    record["wall_seconds"] = time.perf_counter() - started
    if cfg["job_dir"]:
        write_atomic(Path(cfg["job_dir"]) / f"{job['id']}.json", json.dumps(record, indent=1))
    return record


# ----------------------------------------------------------------------------------------------
# Main process


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def machine_info(args) -> dict:
    import importlib.metadata as md

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = None
    if args.device == "cuda":
        import torch

        gpu = torch.cuda.get_device_name(0)
    versions = {}
    for pkg in ("torch", "transformers", "sentence-transformers", "peft", "datasets", "accelerate", "numpy", "scipy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    weights = Path(args.model) / "model.safetensors"
    dtypes = None
    if weights.exists():  # the safetensors header says how the file stores the base weights
        with open(weights, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        dtypes = sorted({v["dtype"] for k, v in header.items() if k != "__metadata__"})
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "versions": versions, "base_weights_dtypes": dtypes, "host": platform.node()}


def expected_steps(jobs: list[dict], args) -> dict:
    """Steps per job from the training-set sizes (cheap: only the sizes are read)."""
    sizes = {s: len(load_task(Path(args.data), s, args.limit_train, 1)["train"]["s1"])
             for s in {j["set"] for j in jobs}}
    steps = {}
    for j in jobs:
        arm = parse_arm(j["arm"])
        n = math.ceil(sizes[j["set"]] / BATCH) * arm["epochs"] if arm["train"] else 0
        steps[j["id"]] = min(n, args.max_steps) if args.max_steps and arm["train"] else n
    return steps


def run_study(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    job_dir = (out / "jobs") if args.job_files else None
    if job_dir:
        job_dir.mkdir(exist_ok=True)
    device = args.device
    precision = args.precision or ("bf16" if device == "cuda" else "fp32")
    cfg = {"data": str(Path(args.data).resolve()), "model": str(Path(args.model).resolve()), "device": device,
           "precision": precision, "limit_train": args.limit_train, "limit_eval": args.limit_eval,
           "max_steps": args.max_steps, "batch_size": 256 if device == "cuda" else 64,
           "threads": args.threads or max(1, (os.cpu_count() or 1) // args.jobs),
           "job_dir": str(job_dir) if job_dir else None}
    jobs = build_jobs(args.sets.split(","), args.arms.split(","), [int(s) for s in args.seeds.split(",")],
                      tuple(a for a in args.posthoc_arms.split(",") if a))
    info = machine_info(args)
    info.update(settings={**cfg, "jobs": args.jobs, "sets": args.sets, "arms": args.arms, "seeds": args.seeds},
                started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    steps = expected_steps(jobs, args)
    info["expected_steps"] = steps
    write_atomic(out / "run_info.json", json.dumps(info, indent=1))
    print(f"machine: {info['cpu']} ({info['cores']} cores), GPU {info['gpu']}, Python {info['python']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"base weights stored as {info['base_weights_dtypes']}; computed in fp32")
    print(f"{len(jobs)} jobs, {sum(steps.values())} training steps, {args.jobs} at a time, "
          f"{precision}, {cfg['threads']} threads each; queue:")
    for i, j in enumerate(jobs):
        print(f"  {i + 1:3d} {j['id']:<32} {steps[j['id']]:>6} steps")
    sys.stdout.flush()

    results: list[dict] = []
    t0 = time.perf_counter()

    def done(record: dict) -> None:
        results.append(record)
        write_atomic(out / "all_jobs.jsonl", "".join(json.dumps(r) + "\n" for r in results))
        if record["status"] == "ok":
            c = record["candidates"]
            detail = (f"test {c['last']['test']:.4f} val {c['last']['val']:.4f}"
                      + (f", select={c['select']['picked']} test {c['select']['test']:.4f}" if "select" in c else "")
                      + (f"; {record['steps']} steps in {record['train_seconds']:.1f}s"
                         f" ({record['steps_per_second']:.1f}/s)" if "steps" in record else "")
                      + f", eval {record['eval_seconds']:.1f}s")
        else:
            detail = "FAILED: " + record.get("error", "").strip().splitlines()[-1]
        print(f"[{time.perf_counter() - t0:7.1f}s] {len(results)}/{len(jobs)} {record['id']}: {detail}", flush=True)
        summarise(out, quiet=True)

    def on_term(signum, frame):
        # `timeout` signals both this process and its group: take the first, ignore the rest, so that
        # the summary below is written in full
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    executor = None
    try:
        if args.jobs == 1:  # in-process: one python process in all
            for job in jobs:
                done(run_job(job, cfg))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            order = {j["id"]: i for i, j in enumerate(jobs)}
            tries: Counter = Counter()
            pending = list(jobs)
            while pending:
                executor = ProcessPoolExecutor(max_workers=min(args.jobs, len(pending)), initializer=init_worker,
                                               initargs=(cfg,), mp_context=multiprocessing.get_context("spawn"))
                futures = {executor.submit(run_job, job, cfg): job for job in pending}
                pending = []
                for future in as_completed(futures):
                    job = futures[future]
                    try:
                        done(future.result())
                    except Exception:  # a worker died (BrokenProcessPool): retry its jobs once in a new pool
                        tries[job["id"]] += 1
                        if tries[job["id"]] < 2:
                            pending.append(job)
                        else:
                            done({**job, "status": "failed", "error": traceback.format_exc()})
                executor.shutdown(wait=True)
                executor = None
                pending.sort(key=lambda j: order[j["id"]])
    finally:
        if executor is not None:
            import multiprocessing

            executor.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():  # only the workers this process started
                child.kill()
        print(f"finished {len(results)}/{len(jobs)} jobs in {time.perf_counter() - t0:.1f}s", flush=True)
        summarise(out)


# ----------------------------------------------------------------------------------------------
# Summary


def read_records(out: Path) -> list[dict]:
    records = {}
    if (out / "jobs").is_dir():
        for path in sorted((out / "jobs").glob("*.json")):
            r = json.loads(path.read_text(encoding="utf-8"))
            records[r["id"]] = r
    if (out / "all_jobs.jsonl").exists():
        for line in (out / "all_jobs.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                records[r["id"]] = r
    return list(records.values())


def stats(values: list[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def fmt(x: float, digits: int = 4, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def beats(row: dict, ref: dict | None) -> str:
    """'yes' when the mean difference exceeds the larger of the two seed sds."""
    if not ref or row is ref or row["n"] < 2 or ref["n"] < 2:
        return "n/a"
    return "yes" if row["test_mean"] - ref["test_mean"] > max(row["test_sd"], ref["test_sd"]) else "no"


def summary_rows(records: list[dict], arm_order: dict) -> tuple[list[dict], dict, list[str]]:
    """One row per (arm, candidate) of one set, over its seeds; drops are on the REPORT halves."""
    base_ref = next((r["candidates"]["last"]["ref"] for r in records if r["arm"] == "base"), records[0]["base_ref"])
    parts = records[0]["ref_parts"]
    groups: dict = defaultdict(list)
    for r in records:
        for cand, rec in r["candidates"].items():
            groups[(r["arm"], cand)].append((r, rec))
    cand_order = ["last", "soup3"] + [f"wise_{a:g}" for a in WISE_ALPHAS] + ["select"]

    def order(key):
        arm, cand = key
        return arm_order.get(arm, 99), cand_order.index(cand) if cand in cand_order else 99

    rows = []
    for arm, cand in sorted(groups, key=order):
        items = groups[(arm, cand)]
        test_mean, test_sd, n = stats([rec["test"] for _, rec in items])
        row = {"label": arm if cand == "last" else f"{arm}+{cand}", "arm": arm, "candidate": cand, "n": n,
               "seeds": sorted(r["seed"] for r, _ in items if r["seed"] is not None),
               "test_mean": test_mean, "test_sd": test_sd, "val_mean": stats([rec["val"] for _, rec in items])[0],
               "train_seconds": stats([r.get("train_seconds") for r, _ in items])[0],
               "steps": stats([r.get("steps") for r, _ in items])[0],
               "sq_distance": stats([r.get("sq_distance") for r, _ in items])[0] if cand == "last" else math.nan}
        for part in parts:
            row[f"drop_{part}"] = stats([base_ref[f"{part}_rep"] - rec["ref"][f"{part}_rep"] for _, rec in items])[0]
        row["drop_general"] = float(np.mean([row[f"drop_{part}"] for part in parts]))
        if cand == "select":
            row["picked"] = dict(Counter(rec["picked"] for _, rec in items))
        rows.append(row)
    by_label = {row["label"]: row for row in rows}
    for plain in ("plain_cos", "plain_cosent"):
        ref = by_label.get(plain)
        for row in rows:
            row[f"delta_{plain}"] = row["test_mean"] - ref["test_mean"] if ref else math.nan
            row[f"beats_{plain}"] = beats(row, ref)
    return rows, base_ref, parts


def header_lines(info: dict, n_ok: int, n_failed: int) -> list[str]:
    lines = ["# Recipe study", ""]
    if info:
        s = info.get("settings", {})
        lines += [f"- Machine: {info.get('cpu')} ({info.get('cores')} cores); GPU: {info.get('gpu') or 'none'}; "
                  f"Python {info.get('python')}; started {info.get('started')}",
                  "- Versions: " + ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items()),
                  f"- Settings: device {s.get('device')}, precision {s.get('precision')}, jobs {s.get('jobs')}, "
                  f"seeds {s.get('seeds')}, limit-train {s.get('limit_train')}, limit-eval {s.get('limit_eval')}, "
                  f"max-steps {s.get('max_steps')}; batch {BATCH}, {EPOCHS} epochs, lr {LR:g} (LoRA {LORA_LR:g}), "
                  f"warmup {WARMUP:g}"]
        if "F16" in (info.get("base_weights_dtypes") or []):
            lines.append("- **Base weights were rounded to fp16** in the model folder used (the same rounded base "
                         "for every arm, base included); everything is computed in fp32 from them.")
    return lines + [
        f"- Records: {n_ok} ok, {n_failed} failed.",
        "- test = task metric on the test split (Spearman of cosine), mean ± sd over seeds (n). "
        "drop = base − candidate on the REPORT halves of the reference (positive = ability lost): "
        "STS = STS-B test Spearman, SQuAD = NDCG@10 on the report-half questions (2,000 unless --limit-eval), "
        "mean = their mean. 'beats' = mean test difference > max(sd of the two rows).", ""]


def set_lines(set_name: str, records: list[dict], rows: list[dict], base_ref: dict, parts: list[str]) -> list[str]:
    lines = [f"## {set_name}", "",
             f"validation {records[0]['n_val']} pairs, test {records[0]['n_test']} pairs; "
             f"reference parts: {', '.join(parts)}; base reference (report half): "
             + ", ".join(f"{p} {base_ref[f'{p}_rep']:.4f}" for p in parts), "",
             "| candidate | n | test | Δ plain_cos | Δ plain_cosent | beats cos | beats cosent | drop STS | "
             "drop SQuAD | drop mean | val | train s | steps | ‖θ−θ0‖² |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [row["label"], row["n"], f"{fmt(row['test_mean'])} ± {fmt(row['test_sd'])}",
                 fmt(row["delta_plain_cos"], signed=True), fmt(row["delta_plain_cosent"], signed=True),
                 row["beats_plain_cos"], row["beats_plain_cosent"], fmt(row.get("drop_sts", math.nan), signed=True),
                 fmt(row["drop_squad"], signed=True), fmt(row["drop_general"], signed=True), fmt(row["val_mean"]),
                 fmt(row["train_seconds"], 1), fmt(row["steps"], 0), fmt(row["sq_distance"], 2)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    plain = next((row for row in rows if row["label"] == "plain_cos"), None)
    winners = [row for row in rows if row["beats_plain_cos"] == "yes"]
    verdict = "no"
    if winners:
        keepers = [row["label"] for row in winners if row["drop_general"] <= plain["drop_general"]]
        verdict = (f"yes: {', '.join(row['label'] for row in winners)} (of these, no larger general drop than "
                   f"plain_cos: {', '.join(keepers) or 'none'})")
    lines += ["", f"Beats plain (plain_cos) beyond the seed spread: {verdict}", ""]
    lines += [f"- {row['label']} picked: " + ", ".join(f"{k} ×{v}" for k, v in sorted(row["picked"].items()))
              for row in rows if "picked" in row]
    return lines + [""]


def no_nan(value):
    """NaN -> None, so that summary.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    return value


def summarise(out: Path, quiet: bool = False) -> dict:
    """Read every job record under OUT and (re)write summary.md and summary.json."""
    out = Path(out)
    records = read_records(out)
    info = json.loads((out / "run_info.json").read_text()) if (out / "run_info.json").exists() else {}
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    arm_order = {a: i for i, a in enumerate((info.get("settings", {}).get("arms") or DEFAULT_ARMS).split(","))}
    summary = {"run_info": info, "n_records": len(records), "n_failed": len(failed), "sets": {}}
    lines = header_lines(info, len(ok), len(failed))
    for set_name in sorted({r["set"] for r in ok}, key=lambda s: (s != "stsb", s)):
        set_records = [r for r in ok if r["set"] == set_name]
        rows, base_ref, parts = summary_rows(set_records, arm_order)
        summary["sets"][set_name] = {"rows": rows, "base_ref": base_ref, "ref_parts": parts}
        lines += set_lines(set_name, set_records, rows, base_ref, parts)
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- {r['id']}: {((r.get('error') or '?').strip().splitlines() or ['?'])[-1]}" for r in failed]
        lines.append("")
    write_atomic(out / "summary.md", "\n".join(lines))
    write_atomic(out / "summary.json", json.dumps(no_nan(summary), indent=1))
    if not quiet:
        print("\n".join(lines), flush=True)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summarise", metavar="OUT", help="only rewrite OUT/summary.md and summary.json")
    parser.add_argument("--data", help="the shared data folder (stsb/, snli/, squad/)")
    parser.add_argument("--model", help="the base model folder")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--sets", default="stsb,snli")
    parser.add_argument("--arms", default=DEFAULT_ARMS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--posthoc-arms", default=",".join(POSTHOC_ARMS),
                        help="arms whose WiSE-FT mixes and soup are scored too ('' for none)")
    parser.add_argument("--jobs", type=int, default=1, help="concurrent training processes (1: in this process)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--precision", choices=["bf16", "fp32"],
                        help="training precision (default bf16 on cuda, fp32 on cpu)")
    parser.add_argument("--threads", type=int, help="torch threads per process (default cores / jobs)")
    parser.add_argument("--limit-train", type=int, help="smoke runs: at most N training pairs")
    parser.add_argument("--limit-eval", type=int, help="smoke runs: at most N pairs / questions per evaluation part")
    parser.add_argument("--max-steps", type=int, help="smoke runs: stop training after N steps")
    parser.add_argument("--job-files", action=argparse.BooleanOptionalAction, default=True,
                        help="also write OUT/jobs/<id>.json per job (all_jobs.jsonl is always written)")
    args = parser.parse_args()
    if args.summarise:
        summarise(Path(args.summarise))
        return 0
    if not (args.data and args.model and args.out):
        parser.error("--data, --model and --out are required (or --summarise OUT)")
    # before torch is imported anywhere (spawned workers inherit these)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # e.g. the trainer's model card "Computing widget examples"
    run_study(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
