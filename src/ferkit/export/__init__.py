"""Export trained models for deployment (ONNX, optionally int8). Needs torch, unlike running the export."""

from ferkit.export.onnx import ExportReport, export_onnx

__all__ = ["ExportReport", "export_onnx"]
