"""Local engine for Retab-compatible eval, test and experiment runs."""

__version__ = "0.1.0"
