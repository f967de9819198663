"""Offline training of DensePose R-CNN: losses (the trainer itself comes later)."""
