"""Models: timm backbones with the papers' heads, their preprocessing, saving and loading.

Kept import-light: ``ferkit.models.preprocess`` needs only NumPy and OpenCV.
"""
