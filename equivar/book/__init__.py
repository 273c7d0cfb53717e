"""Running and rendering the book: chapter notebooks (papermill), figures, generated pages.

The top layer below the command line; nothing else in equivar imports it.
"""
