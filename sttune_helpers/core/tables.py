"""Tables that show their text in full: a plain DataFrame in a notebook cuts each cell at pandas'
``display.max_colwidth`` (50 characters), which hides most of a sentence."""

from __future__ import annotations

# Wrapped in full, between a readable minimum and maximum width.
WRAPPED_TEXT_STYLE = {"white-space": "pre-wrap", "overflow-wrap": "anywhere", "text-align": "left",
                      "min-width": "22em", "max-width": "44em"}


def wrapped_text_table(frame, text_columns: list[str]):
    """``frame`` as a pandas Styler (its DataFrame is ``.data``) that shows ``text_columns`` in full,
    wrapped and left-aligned, under left-aligned headers, without the index."""
    missing = [column for column in text_columns if column not in frame.columns]
    if missing:
        raise KeyError(f"no column {missing} in the table (its columns: {list(frame.columns)})")
    return (frame.style
            .set_properties(subset=list(text_columns), **WRAPPED_TEXT_STYLE)
            .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
            .hide(axis="index"))
