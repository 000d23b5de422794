"""Model selection after training, on validation only: the candidates (the last model, the best
checkpoint, a uniform soup of the last validation points' weights (those of the last third of
training), and the best of these mixed
with the base weights, WiSE-FT), scored on the validation split and on the selection half of the
general-ability reference; the rule names the model that is saved as model/."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, get_args, get_type_hints

from transformers import TrainerCallback

from .. import shapes
from ..config import ConfigError, RunConfig, check_value
from ..config.schema import EvalConfig
from ..core.progress import Progress, number
from ..core.reporting import get_logger
from ..core.statistics import Bootstrap, paired_comparison
from ..data import read_report
from ..rundir import RunDir
from ..scoring.embedding_cache import cache_directory
from .candidate_scoring import CandidateScorer
from .weights import State, average_states, mix_states, same_weights, snapshot

log = get_logger(__name__)

# A soup averages the validation points of the last third of training only: on SciFact, where the validation
# budget leaves two points half a run apart, their average scored 0.027-0.042 NDCG@10 below the best
# checkpoint on validation in every run, at ~25 s of scoring each (bench/RESULTS.md, sessions 34-36); the
# soups of STS-B and MRPC, whose last three points span a quarter of the run, were within the noise of the
# best and chosen at times.
SOUP_SPAN = 1 / 3

class WeightHistory(TrainerCallback):
    """CPU snapshots of the weights at the last ``keep`` validation points (for the soup and the
    last model). A resumed run has only the points after the resume."""

    def __init__(self, keep: int):
        self.points: deque[tuple[int, State]] = deque(maxlen=max(1, keep))

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is not None and (not self.points or self.points[-1][0] != state.global_step):
            self.points.append((state.global_step, snapshot(model)))


@dataclass
class Candidate:
    """One model the rule may choose: a point of training (last, best, soup) mixed with the base
    weights at ``alpha`` (1: the point itself)."""

    name: str
    point: str
    alpha: float
    validation: float | None = None
    # paired bootstrap of best - this candidate on the validation items
    gap_to_best: float | None = None
    gap_ci95: list[float | None] = field(default_factory=lambda: [None, None])
    within_noise: bool = False
    # paired bootstrap of this candidate - the pure fine-tuned model on the validation items: its 95%
    # interval, and the interval at gain_confidence, the family-wise level over every candidate put to
    # the fine-tuned model (Bonferroni); beats it where that interval lies above 0 (fine_tuned_unless_beaten)
    gain_over_fine_tuned: float | None = None
    gain_ci95: list[float | None] = field(default_factory=lambda: [None, None])
    gain_confidence: float | None = None
    gain_ci_family: list[float | None] = field(default_factory=lambda: [None, None])
    beats_fine_tuned: bool = False
    reference: dict[str, float] = field(default_factory=dict)  # part -> its primary metric
    forgetting: float | None = None  # the largest drop from the base over the parts (negative: a gain)


def training_points(final: State, history: WeightHistory, best_state: State | None, soup_size: int) -> dict[str, State]:
    """The points of training to choose from, the pure fine-tuned model (``final``, train.restore_best's
    choice) first under its own name: last (the last validation point), best (the best checkpoint)
    where it is other weights, and soup (soup_members averaged, where there are two). Snapshots with
    another layout than the final model's (a model that trained LoRA adapters) are left out."""
    snapshots = [state for _, state in history.points if state.keys() == final.keys()]
    fine_tuned = "best" if best_state is not None and same_weights(final, best_state) else "last"
    points = {fine_tuned: final}
    if fine_tuned == "best" and snapshots and not same_weights(snapshots[-1], final):
        points["last"] = snapshots[-1]
    if fine_tuned == "last" and best_state is not None and best_state.keys() == final.keys() and not same_weights(
            best_state, final):
        points["best"] = best_state
    members = soup_members(history, soup_size, final.keys())
    if len(members) >= 2:
        points["soup"] = average_states([state for _, state in members])
    return points


def soup_members(history: WeightHistory, soup_size: int, keys) -> list[tuple[int, State]]:
    """The validation points a soup averages: the last ``soup_size`` with the final model's layout
    (``keys``), less those before the last third of the steps trained (SOUP_SPAN)."""
    recent = [(step, state) for step, state in history.points if state.keys() == keys][-soup_size:] \
        if soup_size >= 2 else []
    return [(step, state) for step, state in recent if step >= recent[-1][0] * (1 - SOUP_SPAN)]


def choose(candidates: list[Candidate], max_forgetting: float | None, rule: str,
           fine_tuned: str | None = None) -> tuple[Candidate, str]:
    """The rule (eval.selection_rule), subject to the forgetting budget.
    fine_tuned_unless_beaten: the pure fine-tuned model (``fine_tuned``, the first candidate where not
    named), unless candidates beat it on validation beyond the noise: then the best of those on
    validation. Where it breaks the budget, as best_validation.
    most_general: the best validation metric; among the candidates within its noise, the one that
    keeps the most general ability (mean of the reference parts). Where no candidate within the noise
    keeps to the budget, the best validation metric among those that do.
    best_validation: the best validation metric among the candidates that keep to the budget.
    Under each, where none keeps to it, the one that forgets least."""
    scored = [c for c in candidates if c.validation is not None]
    best = max(scored, key=lambda c: c.validation)
    budget = "" if max_forgetting is None else f", forgetting at most {max_forgetting:.3f} (eval.max_forgetting)"
    over_budget = None  # the fine-tuned model, where it breaks the budget: the reason says what keeping to it cost
    if rule == "fine_tuned_unless_beaten":
        default = next((c for c in scored if c.name == fine_tuned), scored[0])
        if default.forgetting is None or max_forgetting is None or default.forgetting <= max_forgetting:
            affordable = [c for c in scored if c.beats_fine_tuned and (
                max_forgetting is None or c.forgetting is None or c.forgetting <= max_forgetting)]
            if not affordable:
                return default, (f"{default.name}: the fine-tuned model (validation {default.validation:.4f}); no "
                                 f"candidate beats it on validation beyond the noise{budget}")
            chosen = max(affordable, key=lambda c: c.validation)
            return chosen, (f"{chosen.name}: beats the fine-tuned model ({default.name}) on validation beyond the "
                            f"noise ({chosen.validation:.4f}, +{chosen.gain_over_fine_tuned:.4f}, "
                            f"{chosen.gain_confidence:.1%} interval [{chosen.gain_ci_family[0]:+.4f}, "
                            f"{chosen.gain_ci_family[1]:+.4f}], family-wise over {len(scored) - 1} candidates){budget}")
        rule, over_budget = "best_validation", default
    near = [c for c in scored if c.within_noise] or [best]
    with_reference = [c for c in near if c.forgetting is not None]
    if not with_reference:
        return best, f"{best.name} has the best validation metric ({best.validation:.4f}); no reference to weigh"

    def general(c: Candidate) -> tuple[float, float]:
        return sum(c.reference.values()) / len(c.reference), c.validation

    measured = [c for c in scored if c.forgetting is not None]
    if rule == "best_validation":
        kept = [c for c in measured if max_forgetting is None or c.forgetting <= max_forgetting]
        if kept:
            chosen = max(kept, key=lambda c: c.validation)
            if over_budget is not None:
                return chosen, (f"{chosen.name}: the fine-tuned model ({over_budget.name}, validation "
                                f"{over_budget.validation:.4f}) loses {over_budget.forgetting:+.4f} on the reference, "
                                f"more than eval.max_forgetting={max_forgetting:.3f}; {chosen.name} is the best on "
                                f"validation that keeps to it ({chosen.validation:.4f}, "
                                f"{chosen.validation - over_budget.validation:+.4f}; largest reference drop "
                                f"{chosen.forgetting:+.4f}); eval.max_forgetting=null keeps the fine-tuned model, "
                                f"and training behind train.task_prompt with train.general_anchor may keep both")
            return chosen, (f"{chosen.name}: the best validation metric ({chosen.validation:.4f}){budget}; "
                            f"largest reference drop {chosen.forgetting:+.4f}")
    else:
        kept = [c for c in with_reference if max_forgetting is None or c.forgetting <= max_forgetting]
        if kept:
            chosen = max(kept, key=general)
            return chosen, (f"{chosen.name}: validation {chosen.validation:.4f}, within the noise of the best "
                            f"({best.name}, {best.validation:.4f}), keeps the most general ability{budget}; "
                            f"largest reference drop {chosen.forgetting:+.4f}")
        affordable = [c for c in measured if c.forgetting <= max_forgetting]
        if affordable:
            chosen = max(affordable, key=lambda c: c.validation)
            return chosen, (f"{chosen.name}: no candidate within the validation noise of the best ({best.name}, "
                            f"{best.validation:.4f}) keeps the reference drop within {max_forgetting:.3f} "
                            f"(eval.max_forgetting); {chosen.name} is the best on validation that does "
                            f"({chosen.validation:.4f}, largest reference drop {chosen.forgetting:+.4f})")
    chosen = min(measured, key=lambda c: (c.forgetting, -c.validation))
    log.warning(f"no candidate keeps the reference drop within eval.max_forgetting={max_forgetting}: "
                f"kept {chosen.name}, which forgets least ({chosen.forgetting:+.4f})")
    return chosen, (f"{chosen.name}: no candidate keeps the reference drop within {max_forgetting:.3f} "
                    f"(eval.max_forgetting); {chosen.name} forgets least ({chosen.forgetting:+.4f})")


def select_model(run: RunDir, config: RunConfig, model, history: WeightHistory, base_state: State,
                 best_state: State | None, scorer: CandidateScorer) -> dict[str, Any] | None:
    """Score the candidates with ``scorer`` (which may hold the best and last models' validation
    scores already) and load the chosen one's weights into ``model``; returns the record for
    training.json (None where the shape has no labelled validation items to choose by)."""
    shape = shapes.get(read_report(run)["shape"])
    if shape.measured_on_reference:
        return None
    started = time.perf_counter()
    points = training_points(snapshot(model), history, best_state, config.eval.soup_size)
    fine_tuned = next(iter(points))
    candidates: list[Candidate] = []
    item_scores: dict[str, Any] = {}
    states: dict[str, State] = {}

    task = Progress("model selection", total=len(points) + len(config.eval.selection_alphas), unit="candidates")

    def add(name: str, point: str, alpha: float, state: State) -> None:
        scores = scorer.validation_scores(state)
        candidates.append(Candidate(name, point, alpha, validation=scores.metrics[scorer.metric]["value"]))
        item_scores[name], states[name] = scores, state
        task.milestone(len(candidates), f"{name}: validation {scorer.metric} {number(candidates[-1].validation)}")

    for point, state in points.items():
        add(point, point, 1.0, state)
    anchor = max(candidates, key=lambda c: c.validation)
    budget, rule = config.eval.max_forgetting, config.eval.selection_rule

    def add_mix(alpha: float) -> None:
        add(f"{anchor.point}@{alpha:g}", anchor.point, float(alpha), mix_states(base_state, states[anchor.name], alpha))

    # fine_tuned_unless_beaten wants only a mix that beats the fine-tuned model: down the alphas, the
    # validation metric of WiSE-FT's mixes is concave in alpha, so past a mix below the one above it
    # the rest fall further and are left unscored (unless the fine-tuned model breaks the budget).
    lazy = rule == "fine_tuned_unless_beaten" and not config.eval.selection_plot_all
    unscored = sorted(config.eval.selection_alphas, reverse=True)
    above = anchor.validation
    while unscored:
        add_mix(unscored.pop(0))
        if lazy and candidates[-1].validation < above:
            break
        above = candidates[-1].validation
    planned = len(points) + len(config.eval.selection_alphas)

    # most_general weighs every candidate within the noise, as the task-vs-general plot draws them
    # (eval.selection_plot_all); best_validation needs only the top of the validation ranking.
    near_best = config.eval.selection_rule == "most_general" or config.eval.selection_plot_all
    on_reference = Progress("model selection on the general reference", unit="models", total=2)
    # The base's scores repeat in every run on this reference: cached (the candidates' never repeat).
    base_cache = cache_directory(run.root.parent) if config.eval.cache_embeddings else None
    base_reference = scorer.reference_scores(base_state, base_cache) if scorer.parts else {}

    def measure(c: Candidate) -> None:
        if c.forgetting is not None:
            return
        on_reference.total = max(on_reference.total, on_reference.done + 1)
        c.reference = scorer.reference_scores(states[c.name])
        c.forgetting = max(base_reference[p] - v for p, v in c.reference.items())
        on_reference.milestone(on_reference.done + 1, f"{c.name}: largest drop from the base {c.forgetting:+.4f}")

    if scorer.parts:
        on_reference.milestone(1, "base scored")
    if unscored and scorer.parts and budget is not None:
        default = next(c for c in candidates if c.name == fine_tuned)
        measure(default)
        if default.forgetting > budget:  # the lower mixes forget less: the rule may need them
            while unscored:
                add_mix(unscored.pop(0))
    # the family-wise level counts every planned candidate: a skipped mix does not make a win cheaper
    mark_noise(candidates, item_scores, scorer.metric, scorer.boot, fine_tuned, family_size=planned - 1)
    on_reference.total = max(on_reference.done, 1 + (sum(c.within_noise for c in candidates) if near_best else 1))
    if scorer.parts:
        for c in candidates:
            if near_best and c.within_noise:
                measure(c)
        if rule == "fine_tuned_unless_beaten":
            default = next(c for c in candidates if c.name == fine_tuned)
            measure(default)
            # Those that beat it, down the validation ranking until one keeps to the budget; where
            # the fine-tuned model itself breaks the budget, every candidate, as best_validation.
            keeps = budget is None or default.forgetting <= budget
            for c in sorted((c for c in candidates if c.beats_fine_tuned or not keeps), key=lambda c: -c.validation):
                measure(c)
                if budget is None or c.forgetting <= budget:
                    break
        elif rule == "best_validation":
            # Down the validation ranking until one keeps to the budget: every candidate better on
            # validation than the choice has been measured (all of them where none keeps to it).
            for c in sorted(candidates, key=lambda c: -c.validation):
                measure(c)
                if budget is None or c.forgetting <= budget:
                    break
        elif budget is not None and not any(c.within_noise and c.forgetting <= budget for c in candidates):
            for c in candidates:  # the fallback needs every candidate's reference
                measure(c)
    chosen, reason = choose(candidates, budget, rule, fine_tuned)
    model.load_state_dict(states[chosen.name])
    seconds = round(time.perf_counter() - started, 1)
    task.total = len(candidates)  # the mixes left unscored are not work left undone
    skipped = f"; {len(unscored)} lower mix{'es' if len(unscored) > 1 else ''} not scored" if unscored else ""
    task.end(detail=f"chose {chosen.name}{skipped}")
    log.info(f"model selection ({seconds:.0f} s): {reason}")
    reference = scorer.reference
    return {"metric": scorer.metric, "n_validation": scorer.validation.n, "precision": scorer.precision,
            "max_forgetting": budget, "rule": rule,
            "chosen": chosen.name, "point": chosen.point, "alpha": chosen.alpha, "reason": reason,
            "fine_tuned": fine_tuned, "differs_from_fine_tuned": chosen.name != fine_tuned,
            "reference": {"parts": [p.name for p in scorer.parts], "base": base_reference,
                          "excluded": reference.excluded if reference is not None else []},
            "candidates": [asdict(c) for c in candidates], "seconds": seconds,
            # the steps the soup averaged; fewer than two: no soup (eval.soup_size, SOUP_SPAN)
            "soup_steps": [step for step, _ in soup_members(history, config.eval.soup_size, points[fine_tuned].keys())],
            # mixes below a mix scored above them were not scored (fine_tuned_unless_beaten)
            "unscored": [f"{anchor.point}@{alpha:g}" for alpha in unscored]}


def mark_noise(candidates: list[Candidate], item_scores: dict[str, Any], metric: str, boot: Bootstrap,
               fine_tuned: str, family_size: int | None = None) -> None:
    """Paired bootstraps on the validation items (``item_scores``: name -> ModelScores): best -
    candidate (within the noise where the 95% interval reaches 0), and candidate - the fine-tuned
    model (beats it where the interval lies above 0 at the family-wise level: with five candidates
    each put to the fine-tuned model at 95%, one of them beats it by chance far more often than one
    time in twenty; bench/RESULTS.md, session 19). ``family_size``: the candidates planned, where some
    were left unscored."""
    best = max(candidates, key=lambda c: c.validation)
    values = {name: s.metrics for name, s in item_scores.items()}
    dists = {name: s.resampled for name, s in item_scores.items()}
    challengers = sum(c.name != fine_tuned for c in candidates)
    family = boot.family_wise(max(challengers, family_size or 0))
    for c in candidates:
        if c.name != fine_tuned:
            gain = paired_comparison(c.name, fine_tuned, metric, values, dists, boot)
            c.gain_over_fine_tuned, c.gain_ci95 = gain["difference"], gain["ci95"]
            c.gain_confidence = family.confidence
            c.gain_ci_family = paired_comparison(c.name, fine_tuned, metric, values, dists, family)["ci95"]
            c.beats_fine_tuned = c.gain_ci_family[0] is not None and c.gain_ci_family[0] > 0
        if c is best:
            c.within_noise, c.gap_to_best = True, 0.0
            continue
        comparison = paired_comparison(best.name, c.name, metric, values, dists, boot)
        c.gap_to_best, c.gap_ci95 = comparison["difference"], comparison["ci95"]
        c.within_noise = comparison["ci95"][0] is not None and comparison["ci95"][0] <= 0


def check_selection_settings(config: RunConfig) -> None:
    """Refuse selection settings out of their range (config/ranges.py), before training starts: for a
    config edited in code (one read from YAML or overrides was checked when it was built)."""
    for name in ("selection_alphas", "soup_size", "max_forgetting"):
        check_value(f"eval.{name}", getattr(config.eval, name))
    rules = get_args(get_type_hints(EvalConfig)["selection_rule"])
    if config.eval.selection_rule not in rules:  # choose() would treat an unknown name as most_general
        raise ConfigError(f"eval.selection_rule: {config.eval.selection_rule!r} is not a rule; expected one of "
                          + ", ".join(map(repr, rules)))
