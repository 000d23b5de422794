"""Running stages outside a single notebook: ``pipeline.py`` executes the five notebooks with papermill
in one shared kernel (``sttune run``); ``sweep.py`` runs an Optuna study, a run directory per trial."""
