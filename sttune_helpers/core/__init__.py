"""The bottom layer: file I/O, the error base class, the machine (device, precision), reporting,
progress events, bootstrap statistics and tables that show their text in full. Nothing here imports
from the rest of the package."""
