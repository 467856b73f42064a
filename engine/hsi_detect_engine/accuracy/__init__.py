"""Accuracy assessment of a score or binary map against a ground truth."""
