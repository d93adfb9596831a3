"""Simulation-based inference: neural posterior estimation and its diagnostics."""
