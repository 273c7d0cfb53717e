"""Attacks and defences: crafting perturbations in pixel space, and the reference defences.

Imports learn, core, data and below; never the chapter studies or the book.
"""
