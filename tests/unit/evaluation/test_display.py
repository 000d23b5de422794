"""What notebook 04 shows: the doctor's table (full text, warnings highlighted), the error analysis
(each item's texts in full) and the comparison bars (value labels above the error bars, inside the plot)."""

import re

import numpy as np
import pandas as pd
import pytest

from sttune_helpers.evaluation import (
    Finding,
    ModelScores,
    TaskSet,
    doctor_table,
    error_analysis,
    error_rows_table,
    error_table,
    plot_comparison,
)
from sttune_helpers.evaluation.doctor import SEVERITY_STYLES


def _findings():
    long_fix = ("set train.batch_sampler=no_duplicates (or auto) so that a repeated text never lands in its own "
                "batch as a negative of itself; then re-run training and the stages after it")
    return [Finding("collapse", False, "mean pairwise cosine 0.31 (base 0.29): the space is spread out"),
            Finding("duplicates in in-batch-negative batches", True,
                    "12 repeated texts (anchor 12) can share a batch under the batch_sampler sampler: each "
                    "would be scored as a negative of itself", long_fix)]


def _cell_styles(html: str) -> dict[str, str]:
    """CSS rule bodies by cell id (``row1_col0``) from a Styler's HTML."""
    styles = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", html):
        for selector in selectors.split(","):
            found = re.search(r"_(row\d+_col\d+)\s*$", selector.strip())
            if found:
                styles[found.group(1)] = styles.get(found.group(1), "") + body
    return styles


def test_doctor_table_shows_every_finding_and_fix_in_full_and_wrapped():
    findings = _findings()
    html = doctor_table(findings).to_html()
    for finding in findings:
        assert finding.message in html and finding.fix in html  # not cut at pandas' 50 characters
    styles = _cell_styles(html)
    finding_column = 2  # check, status, finding, suggested fix
    assert "white-space: pre-wrap" in styles[f"row1_col{finding_column}"]
    assert "white-space: pre-wrap" in styles[f"row1_col{finding_column + 1}"]


def test_doctor_table_highlights_the_rows_of_fired_checks():
    table = doctor_table(_findings())
    assert list(table.data["status"]) == ["ok", "WARN"]
    styles = _cell_styles(table.to_html())
    warning_colour = SEVERITY_STYLES["WARN"].split(";")[0].split(":")[1].strip()
    assert all(warning_colour in styles[f"row1_col{column}"] for column in range(4))
    assert not any(warning_colour in styles.get(f"row0_col{column}", "") for column in range(4))
    assert doctor_table([]).data.empty


def _long_sentence(i: int) -> str:
    return (f"sentence {i}: a premise long enough that pandas would cut it at fifty characters, "
            "so that the part that decides the label would not show")


def test_error_analysis_tables_show_each_items_texts_in_full_and_wrapped():
    n = 6
    items = pd.DataFrame({"sentence1": [_long_sentence(i) for i in range(n)],
                          "sentence2": [_long_sentence(i + n) for i in range(n)], "label": [0, 1, 2, 0, 1, 2]})
    task = TaskSet("pair_class", "test", items, labels=["entailment", "neutral", "contradiction"])
    rng = np.random.default_rng(0)
    scores = {name: ModelScores({}, {}, rng.random(n), rng.random(n)) for name in ("base", "fine_tuned")}
    errors = error_analysis(error_table(task, scores), rows=3)

    for rows in errors.values():
        table = error_rows_table(rows)
        html = table.to_html()
        assert all(text in html for text in rows["sentence1"]) and all(text in html for text in rows["sentence2"])
        styles = _cell_styles(html)
        columns = list(table.data.columns)
        for column in ("sentence1", "sentence2"):
            assert "white-space: pre-wrap" in styles[f"row0_col{columns.index(column)}"], column
        # The class label and the numbers stay narrow.
        for column in ("label", "item", "fine_tuned_error"):
            assert "pre-wrap" not in styles.get(f"row0_col{columns.index(column)}", ""), column


def _report(values_and_intervals):
    models = {name: {"path": "m", "metrics": {"spearman_cosine": {"value": value, "ci95": list(interval)}}}
              for name, (value, interval) in values_and_intervals.items()}
    return {"task": "pair_score", "primary_metric": "spearman_cosine", "n_test": 64, "confidence": 0.95,
            "models": models, "comparisons": [], "reference": {}}


@pytest.mark.parametrize("intervals", [
    {"base": (0.82, (0.78, 0.86)), "fine_tuned": (0.86, (0.83, 0.89))},
    # wide intervals reaching the top of the metric's scale, where the labels need room above 1
    {"base": (0.90, (0.70, 0.99)), "fine_tuned": (0.97, (0.93, 1.0)), "other": (0.5, (0.1, 0.9))},
])
def test_comparison_labels_sit_above_the_error_bar_caps_inside_the_plot(intervals):
    import matplotlib.pyplot as plt

    fig = plot_comparison(_report(intervals))
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    labels = {text.get_text(): text for text in ax.texts}
    assert set(labels) == {f"{value:.4f}" for value, _ in intervals.values()}
    for value, (_, high) in intervals.values():
        label = labels[f"{value:.4f}"].get_window_extent(renderer)
        cap_top = ax.transData.transform((0, high))[1]
        assert label.y0 >= cap_top, f"the label of {value} overlaps its error bar"
        assert label.y1 <= axes_box.y1 + 0.5, f"the label of {value} leaves the plot"
    plt.close(fig)
