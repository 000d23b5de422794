"""Running stages outside a single notebook.

pipeline.py  ``sttune run``: the five notebooks executed with papermill, in one shared kernel
lab_workspace.py  ``sttune lab``'s folder: the user's copies of the notebooks and lab.yaml
console.py   what the kernels print: progress events and warnings to the terminal, the rest to the notebooks
progress_view.py  progress events in the terminal: one updating line, or plain throttled lines when piped
sweep.py     ``sttune sweep``: an Optuna study, a run directory per trial, calling the stages directly
runs.py      ``sttune runs``: each run directory of a runs folder summarised (status, task, metric, time)
compare.py   ``sttune compare``: runs side by side (the settings that differ, metrics, time)
compare_plot.py  the plot of ``sttune compare``: each run's primary test metric with its interval
time_report.py  where a run's time went (`sttune time`, time_report.json), from the manifest and training.json
worker.py    one rank of a multi-process training run (started by torchrun), calling the training stage
"""
