"""JupyterLab widgets: ``widgets.py`` holds the config panels (sliders bound to a RunConfig), the
sweep panel and the interpolation picker."""
