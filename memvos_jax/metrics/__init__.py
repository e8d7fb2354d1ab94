"""Evaluation metrics (DAVIS J&F): see the evaluation issue."""
