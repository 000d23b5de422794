"""The bottom layer: file I/O, the error base class, the machine (device, precision), reporting,
progress events and bootstrap statistics. Nothing here imports from the rest of the package."""
