"""Running stages outside a single notebook.

pipeline.py  ``sttune run``: the five notebooks executed with papermill, in one shared kernel
lab_workspace.py  ``sttune lab``'s folder: the user's copies of the notebooks and lab.yaml
sweep.py     ``sttune sweep``: an Optuna study, a run directory per trial, calling the stages directly
time_report.py  where a run's time went (`sttune time`, time_report.json), from the manifest and training.json
worker.py    one rank of a multi-process training run (started by torchrun), calling the training stage
"""
