"""Utilities shared by train.py, test.py and the metrics (no model code here)."""
