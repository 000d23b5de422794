"""Rule-based synthetic pairs: rules given as plain dicts (regex substitutions, keyword swaps, slot
templates, as read from the YAML config) are validated, then make labelled pairs, positive pairs or
triplets, as the shape takes them (``synthesized_rows``)."""

from __future__ import annotations

import itertools
import math
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ... import shapes
from ...core.errors import SettingError, SttuneError
from .common import (
    AUGMENTATION_COLUMN,
    SOURCE_ROW_COLUMN,
    Augmented,
    check_frame,
    combine,
    make_report,
    match_case,
    root_row,
    with_tags,
)

MAX_TEMPLATE_FILLINGS = 10_000


class RuleError(SttuneError, ValueError):
    """A synthetic-pair rule is malformed; the message names the rule's index and field."""


_RULE_FIELDS = {
    "regex": ({"kind", "pattern", "replacement", "label"}, {"name", "ignore_case"}),
    "swap": ({"kind", "words", "label"}, {"name", "ignore_case"}),
    "template": ({"kind", "slots", "label"}, {"name", "template", "templates"}),
}
_LABELS = ("positive", "negative")


@dataclass(frozen=True)
class Rule:
    index: int
    kind: str
    label: str  # "positive" or "negative"
    name: str
    pattern: re.Pattern | None = None
    replacement: str | None = None
    words: tuple[str, str] | None = None
    templates: tuple[str, ...] = ()
    # slot -> groups of interchangeable values (a group is one meaning, its values synonyms)
    slots: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()


def _rule_error(index: int, kind: str | None, field_name: str, message: str) -> RuleError:
    where = f"rule {index}" + (f" ({kind})" if kind else "")
    return RuleError(f"{where}, field {field_name!r}: {message}")


def validate_rules(rules: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """Check rules given as plain dicts (as read from YAML) and return them parsed.

    * ``{"kind": "regex", "pattern": "...", "replacement": "...", "label": "positive"}``: every text
      the pattern matches gives the pair (text, substituted text). Optional ``ignore_case``.
    * ``{"kind": "swap", "words": ["login", "logout"], "label": "negative"}``: every text holding
      either word (whole word, any case) gives (text, text with the two words swapped); "negative"
      for overlapping keywords with a different intent, "positive" for synonyms.
    * ``{"kind": "template", "template": "how do I {action} my {object}", "slots": {...},
      "label": ...}`` (or ``"templates": [...]``, paraphrases sharing the slots). A slot value is a
      word or a list of synonyms, e.g. ``action: [[reset, change], delete]``: one list is one
      meaning. "positive" pairs two different wordings of the same meaning (another template or
      other synonyms, so it needs paraphrase templates or synonym lists); "negative" pairs fillings
      of the same template that differ in one slot's meaning (much word overlap, other intent).

    Every rule may have a ``name`` (used in the tags). Errors name the rule index and the field.
    """
    if isinstance(rules, Mapping) or not isinstance(rules, Sequence):
        raise RuleError(f"rules must be a list of rules (dicts), got {type(rules).__name__}")
    parsed = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise RuleError(f"rule {index}: expected a mapping with a 'kind' field, got {type(rule).__name__}")
        kind = rule.get("kind")
        if kind not in _RULE_FIELDS:
            raise _rule_error(index, None, "kind", f"must be one of {', '.join(_RULE_FIELDS)}, got {kind!r}")
        required, optional = _RULE_FIELDS[kind]
        for name in sorted(required - set(rule)):
            raise _rule_error(index, kind, name, "is missing")
        for name in sorted(set(rule) - required - optional):
            raise _rule_error(index, kind, name, f"is not a field of a {kind} rule; expected "
                                                 f"{', '.join(sorted(required | optional))}")
        label = rule["label"]
        if label not in _LABELS:
            raise _rule_error(index, kind, "label", f"must be 'positive' or 'negative', got {label!r}")
        name = rule.get("name", f"{kind}#{index}")
        if not isinstance(name, str) or not name:
            raise _rule_error(index, kind, "name", f"must be a non-empty string, got {name!r}")
        ignore_case = rule.get("ignore_case", kind == "swap")
        if not isinstance(ignore_case, bool):
            raise _rule_error(index, kind, "ignore_case", f"must be true or false, got {ignore_case!r}")
        flags = re.IGNORECASE if ignore_case else 0
        if kind == "regex":
            parsed.append(_parse_regex_rule(index, rule, label, name, flags))
        elif kind == "swap":
            words = rule["words"]
            if not (isinstance(words, Sequence) and not isinstance(words, str) and len(words) == 2
                    and all(isinstance(w, str) and w.strip() for w in words)
                    and words[0].strip().lower() != words[1].strip().lower()):
                raise _rule_error(index, kind, "words", f"must be a list of two different words, got {words!r}")
            first, second = (w.strip() for w in words)
            pattern = re.compile(rf"(?<!\w)({re.escape(first)}|{re.escape(second)})(?!\w)", flags)
            parsed.append(Rule(index, kind, label, name, pattern=pattern, words=(first, second)))
        else:
            parsed.append(_parse_template_rule(index, rule, label, name))
    return parsed


def _parse_regex_rule(index: int, rule: Mapping[str, Any], label: str, name: str, flags: int) -> Rule:
    pattern, replacement = rule["pattern"], rule["replacement"]
    if not isinstance(pattern, str) or not pattern:
        raise _rule_error(index, "regex", "pattern", f"must be a non-empty string, got {pattern!r}")
    if not isinstance(replacement, str):
        raise _rule_error(index, "regex", "replacement", f"must be a string, got {replacement!r}")
    try:
        compiled = re.compile(pattern, flags)
    except re.error as error:
        raise _rule_error(index, "regex", "pattern", f"is not a valid regular expression: {error}") from None
    try:  # a bad group reference in the replacement shows only on a match: test it on a fake one
        _check_replacement(compiled, replacement)
    except (re.error, IndexError) as error:
        raise _rule_error(index, "regex", "replacement", f"is not a valid replacement for the pattern: {error}") \
            from None
    return Rule(index, "regex", label, name, pattern=compiled, replacement=replacement)


def _check_replacement(compiled: re.Pattern, replacement: str) -> None:
    for ref in re.findall(r"\\g<([^>]*)>|\\(\d+)", replacement):
        group = ref[0] or ref[1]
        if group.isdigit():
            if int(group) > compiled.groups:
                raise re.error(f"invalid group reference {group} (the pattern has {compiled.groups} groups)")
        elif group not in compiled.groupindex:
            raise re.error(f"unknown group name {group!r}")
    re.compile("").sub(re.sub(r"\\g<[^>]*>|\\\d+", "", replacement), "")  # other escape errors


def _parse_template_rule(index: int, rule: Mapping[str, Any], label: str, name: str) -> Rule:
    if ("template" in rule) == ("templates" in rule):
        raise _rule_error(index, "template", "template", "give either 'template' (one string) or 'templates' "
                                                         "(a list of paraphrases), not both or neither")
    templates = [rule["template"]] if "template" in rule else rule["templates"]
    field_name = "template" if "template" in rule else "templates"
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates or \
            not all(isinstance(t, str) and t.strip() for t in templates):
        raise _rule_error(index, "template", field_name, f"must be non-empty text(s), got {templates!r}")
    slots = rule["slots"]
    if not isinstance(slots, Mapping) or not slots:
        raise _rule_error(index, "template", "slots", f"must map slot names to lists of values, got {slots!r}")
    parsed_slots = []
    for slot, values in slots.items():
        where = f"slots.{slot}"
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise _rule_error(index, "template", where, f"must be a non-empty list of values, got {values!r}")
        groups = []
        for value in values:
            group = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, Sequence) else ()
            if not group or not all(isinstance(v, str) and v.strip() for v in group):
                raise _rule_error(index, "template", where,
                                  f"each value must be text or a non-empty list of synonyms (text), got {value!r}")
            groups.append(tuple(v.strip() for v in group))
        parsed_slots.append((str(slot), tuple(groups)))
    slot_names = {slot for slot, _ in parsed_slots}
    for template in templates:
        try:
            fields = {f for _, f, spec, conv in string.Formatter().parse(template) if f is not None}
        except ValueError as error:
            raise _rule_error(index, "template", field_name, f"{template!r} is not a valid template: {error}") \
                from None
        if "" in fields or any(not f.isidentifier() for f in fields):
            raise _rule_error(index, "template", field_name, f"{template!r}: placeholders must be slot names like "
                                                             "{action}")
        if fields - slot_names:
            raise _rule_error(index, "template", field_name, f"{template!r} uses {sorted(fields - slot_names)}, "
                                                             "which are not in 'slots'")
        if slot_names - fields:
            raise _rule_error(index, "template", field_name, f"{template!r} does not use the slots "
                                                             f"{sorted(slot_names - fields)}")
    meanings = math.prod(len(groups) for _, groups in parsed_slots)
    wordings = math.prod(len(g) for _, groups in parsed_slots for g in groups)
    if meanings * len(templates) > MAX_TEMPLATE_FILLINGS or wordings > MAX_TEMPLATE_FILLINGS:
        raise _rule_error(index, "template", "slots", f"gives more than {MAX_TEMPLATE_FILLINGS} fillings; split "
                                                      "the rule")
    if label == "positive" and len(templates) < 2 and all(len(g) < 2 for _, groups in parsed_slots for g in groups):
        raise _rule_error(index, "template", "slots", "a positive template rule pairs different wordings of one "
                          "meaning: give paraphrases in 'templates' or synonym lists as slot values (e.g. "
                          "action: [[reset, change], delete])")
    if label == "negative" and all(len(groups) < 2 for _, groups in parsed_slots):
        raise _rule_error(index, "template", "slots", "a negative template rule pairs fillings that differ in one "
                          "slot: give some slot at least two values")
    return Rule(index, "template", label, name, templates=tuple(templates), slots=tuple(parsed_slots))


def _swap_text(rule: Rule, text: str) -> str:
    first, second = rule.words

    def swap(match: re.Match) -> str:
        word = match.group()
        other = second if word.lower() == first.lower() else first
        return match_case(word, other)

    return rule.pattern.sub(swap, text)


def _template_pairs(rule: Rule, rng: np.random.Generator) -> list[tuple[str, str]]:
    names = [slot for slot, _ in rule.slots]
    groups = [g for _, g in rule.slots]
    pairs: list[tuple[str, str]] = []
    for meaning in itertools.product(*(range(len(g)) for g in groups)):
        if rule.label == "positive":
            options = [groups[s][m] for s, m in enumerate(meaning)]
            wordings = list(dict.fromkeys(
                template.format(**dict(zip(names, choice)))
                for template in rule.templates for choice in itertools.product(*options)))
            pairs += itertools.combinations(wordings, 2)
        else:
            # Pair with each meaning that differs in exactly one slot (later values only, so each
            # unordered pair once). The other slots keep the same word, so the texts overlap most.
            for slot, value in enumerate(meaning):
                for other in range(value + 1, len(groups[slot])):
                    template = rule.templates[int(rng.integers(len(rule.templates)))]
                    words = {n: groups[s][m][int(rng.integers(len(groups[s][m])))]
                             for s, (n, m) in enumerate(zip(names, meaning))}
                    changed = dict(words)
                    changed[names[slot]] = groups[slot][other][int(rng.integers(len(groups[slot][other])))]
                    pairs.append((template.format(**words), template.format(**changed)))
    return pairs


@dataclass
class _Pair:
    first: str
    second: str
    label: str
    rule: Rule
    source_row: int | None


def synthesize_pairs(frame: pd.DataFrame, shape: str, rules: Sequence[Mapping[str, Any]], *,
                     source_columns: Sequence[str] | None = None, label_values: Mapping[str, Any] | None = None,
                     max_pairs_per_rule: int = 500, seed: int = 0) -> Augmented:
    """Add labelled pairs made by ``rules`` (see :func:`validate_rules`) to ``frame``.

    Regex and swap rules rewrite the distinct texts of ``source_columns`` (default: all the shape's
    text columns); template rules need no input text. Each rule keeps at most
    ``max_pairs_per_rule`` pairs (a seeded sample). Pairs of identical texts, pairs already in the
    frame or made twice, and pairs that rules label both ways are dropped and counted.

    Output per shape: pair_binary label 1/0; pair_score score 1.0/0.0; pair_class the class given by
    ``label_values`` (``{"positive": ..., "negative": ...}``, required); retrieval the positives
    only; triplet: for each text that has both a positive and a negative partner (from any rules),
    one triplet (anchor, positive, negative) per positive, cycling through its negatives in a seeded
    order. Unlabeled data has no place for a pair and is refused.
    Added rows are tagged ``rule:<name>`` (triplets ``rule:<positive name>+<negative name>``);
    ``source_row`` is the row a rewritten text came from, empty for templates.
    """
    check_frame(frame, shape)
    task = shapes.get(shape)
    if task.synthesized_rows is None:
        raise SettingError("rule-based pairs need a pair, triplet or retrieval shape; unlabeled data (one text "
                         "column) has no place for a pair or label")
    if max_pairs_per_rule < 1:
        raise SettingError(f"max_pairs_per_rule must be at least 1, got {max_pairs_per_rule}")
    parsed = validate_rules(rules)
    values = _label_values(shape, label_values, frame)
    columns = tuple(source_columns) if source_columns is not None else task.text_columns
    unknown = [c for c in columns if c not in task.text_columns]
    if unknown:
        raise ValueError(f"source_columns {unknown} are not text columns of shape {shape!r}")
    tagged = with_tags(frame)
    text_rows: dict[str, int] = {}
    for position in range(len(tagged)):
        for column in columns:
            text_rows.setdefault(tagged[column].iloc[position], position)

    rng = np.random.default_rng(seed)
    skipped, per_rule, made = Counter(), [], []
    for rule in parsed:
        if rule.kind == "template":
            raw = [(a, b, None) for a, b in _template_pairs(rule, rng)]
        else:
            raw = []
            for text, position in text_rows.items():
                if rule.pattern.search(text) is None:
                    continue
                if rule.kind == "regex":
                    try:
                        new = rule.pattern.sub(rule.replacement, text)
                    except (re.error, IndexError) as error:
                        raise _rule_error(rule.index, "regex", "replacement", str(error)) from None
                else:
                    new = _swap_text(rule, text)
                raw.append((text, new, position))
        changed = [r for r in raw if r[1].strip() and r[0].strip() != r[1].strip()]
        skipped["rewrite left the text unchanged or empty"] += len(raw) - len(changed)
        # A swap turns "a x" into "a y" and "a y" into "a x": one pair; drop repeats before the cap.
        distinct, keys = [], set()
        for r in changed:
            if frozenset(r[:2]) not in keys:
                keys.add(frozenset(r[:2]))
                distinct.append(r)
        skipped["made twice"] += len(changed) - len(distinct)
        raw = distinct
        if len(raw) > max_pairs_per_rule:
            skipped["over max_pairs_per_rule"] += len(raw) - max_pairs_per_rule
            raw = [raw[i] for i in sorted(rng.choice(len(raw), size=max_pairs_per_rule, replace=False).tolist())]
        per_rule.append({"index": rule.index, "name": rule.name, "kind": rule.kind, "label": rule.label,
                         "pairs": len(raw)})
        made += [_Pair(a, b, rule.label, rule, row) for a, b, row in raw]

    pairs = _drop_bad_pairs(made, tagged, shape, skipped)
    if task.synthesized_rows == "positive pairs":
        skipped["negative pair (retrieval keeps positives only)"] += sum(p.label == "negative" for p in pairs)
        pairs = [p for p in pairs if p.label == "positive"]
    if task.synthesized_rows == "triplets":
        added = _triplet_rows(pairs, tagged, rng, skipped)
    else:
        added = _pair_rows(pairs, tagged, shape, values)
    settings = {"rules": len(parsed), "source_columns": list(columns), "max_pairs_per_rule": max_pairs_per_rule,
                "seed": seed, "label_values": {k: _plain(v) for k, v in values.items()} if values else None}
    report = make_report("rules", len(tagged), len(added), skipped, settings, per_rule=per_rule,
                         added_by_tag={k: int(v) for k, v in Counter(added[AUGMENTATION_COLUMN]).items()}
                         if len(added) else {})
    return Augmented(combine(tagged, added), report)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _label_values(shape: str, label_values: Mapping[str, Any] | None, frame: pd.DataFrame) -> dict[str, Any]:
    defaults = shapes.get(shape).rule_label_values
    if label_values is not None:
        missing = [k for k in _LABELS if k not in label_values]
        if missing:
            raise ValueError(f"label_values needs the keys 'positive' and 'negative'; missing {missing}")
        return dict(label_values)
    if defaults is None:
        present = sorted(map(str, frame["label"].dropna().unique()))[:20]
        raise SettingError(f"{shape} labels are classes, so pass label_values={{'positive': <class>, "
                           f"'negative': <class>}} (classes in the data: {present})")
    return dict(defaults)


def _drop_bad_pairs(made: list[_Pair], tagged: pd.DataFrame, shape: str, skipped: Counter) -> list[_Pair]:
    existing = set()
    task = shapes.get(shape)
    if task.synthesized_rows in ("labelled pairs", "positive pairs"):
        first, second = task.text_columns[:2]
        existing = {frozenset(p) for p in zip(tagged[first], tagged[second])}
    labels = defaultdict(set)
    for pair in made:
        labels[frozenset((pair.first, pair.second))].add(pair.label)
    kept, seen = [], set()
    for pair in made:
        key = frozenset((pair.first, pair.second))
        if len(labels[key]) > 1:
            skipped["rules disagree on the label"] += 1
        elif key in existing:
            skipped["already in the data"] += 1
        elif key in seen:
            skipped["made twice"] += 1
        else:
            seen.add(key)
            kept.append(pair)
    return kept


def _empty_rows(tagged: pd.DataFrame, count: int) -> pd.DataFrame:
    # Every column of the input, empty; the caller assigns whole columns, which sets their dtype.
    return pd.DataFrame({column: [None] * count for column in tagged.columns}, index=range(count))


def _pair_rows(pairs: list[_Pair], tagged: pd.DataFrame, shape: str, values: Mapping[str, Any]) -> pd.DataFrame:
    rows = _empty_rows(tagged, len(pairs))
    task = shapes.get(shape)
    first, second = task.text_columns[:2]
    rows[first] = [p.first for p in pairs]
    rows[second] = [p.second for p in pairs]
    if task.label_column is not None:
        rows[task.label_column] = [values[p.label] for p in pairs]
    rows[AUGMENTATION_COLUMN] = [f"rule:{p.rule.name}" for p in pairs]
    rows[SOURCE_ROW_COLUMN] = pd.array([None if p.source_row is None else root_row(tagged, p.source_row)
                                        for p in pairs], dtype="Int64")
    return rows


def _triplet_rows(pairs: list[_Pair], tagged: pd.DataFrame, rng: np.random.Generator,
                  skipped: Counter) -> pd.DataFrame:
    # Pairs are symmetric, so each text of a pair can be the anchor.
    positives, negatives, rows_of = defaultdict(list), defaultdict(list), {}
    for pair in pairs:
        for anchor, other in ((pair.first, pair.second), (pair.second, pair.first)):
            (positives if pair.label == "positive" else negatives)[anchor].append((other, pair))
        if pair.source_row is not None:
            rows_of.setdefault(pair.first, pair.source_row)
    triplets = []
    for anchor in positives:
        if anchor not in negatives:
            continue
        order = rng.permutation(len(negatives[anchor])).tolist()
        for i, (positive, pos_pair) in enumerate(positives[anchor]):
            negative, neg_pair = negatives[anchor][order[i % len(order)]]
            if negative != positive:
                triplets.append((anchor, positive, negative, f"rule:{pos_pair.rule.name}+{neg_pair.rule.name}",
                                 rows_of.get(anchor)))
    paired_texts = {t for t in positives if t in negatives}
    unpaired = {frozenset((p.first, p.second)) for p in pairs
                if p.first not in paired_texts and p.second not in paired_texts}
    skipped["pair with no partner of the other label for a triplet"] += len(unpaired)
    rows = _empty_rows(tagged, len(triplets))
    for i, column in enumerate(("anchor", "positive", "negative")):
        rows[column] = [t[i] for t in triplets]
    rows[AUGMENTATION_COLUMN] = [t[3] for t in triplets]
    rows[SOURCE_ROW_COLUMN] = pd.array([None if t[4] is None else root_row(tagged, t[4]) for t in triplets],
                                       dtype="Int64")
    return rows
