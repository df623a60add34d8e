"""alliance-coder: code what clients say about the working alliance.

The library (``pipeline``) holds all logic as plain functions and small classes; ``flows`` wires them
into Prefect flows. See the README for a tour.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
