"""Mechanisms: ring sampling and the C_N action, symmetry sectors and the twirl, the sector
filters, the circuit simulator and the quantum classifiers, pixels-to-logits pipeline.

Imports only settings and the bottom layer (see the layers contract in pyproject.toml).
"""
