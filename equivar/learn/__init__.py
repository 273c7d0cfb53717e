"""Models and training: the quantum classifiers trained and cached, the classical surrogates.

Imports mechanisms (core, data) and below; never attacks, studies or the book.
"""
