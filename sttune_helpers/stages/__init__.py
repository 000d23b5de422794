"""The five stages, one file each, in the order they run. Each holds the steps its notebook calls,
``start`` (open the run and mark the stage running), ``complete`` (record it done) and ``run``, which
does the whole stage headlessly inside ``RunDir.stage``: the sweep, ``sttune train`` and the
distributed worker call these same functions, so a step is written once.

data_prep.py       01: load, validate, clean, split, augment, mine negatives, write the splits
loss_selection.py  02: the loss plan (and the bake-off)
training.py        03: fine-tune, curves, the kept checkpoint
evaluation.py      04: every model on the test split, the reference, interpolation, errors, doctor
embedding_viz.py   05: UMAP maps, similarity distributions, silhouettes, the projector
lab.py             every notebook's parameters cell: the run from the workspace's lab.yaml, one-line errors

Import the stage you need (``from sttune_helpers.stages import data_prep``): this package imports
none of them, so a notebook loads only its own stage's libraries.
"""
