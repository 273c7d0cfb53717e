"""One module per chapter study: reliance (ch. 2), transfer (ch. 3), robustness (ch. 4).

Each runs a chapter's experiments for its settings and returns tables; the notebooks call them.
"""
