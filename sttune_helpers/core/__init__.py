"""The bottom layer: file I/O, the error base class, the machine (device, precision) and reporting.
Nothing here imports from the rest of the package."""
