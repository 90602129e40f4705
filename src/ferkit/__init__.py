"""ferkit: facial expression recognition with EfficientNet transfer learning."""

__version__ = "0.1.0"
