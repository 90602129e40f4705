"""Evaluation: metrics, plots, Grad-CAM, reports and model comparison (imports matplotlib)."""
