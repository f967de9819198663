"""Training and evaluation data: DensePose-COCO files, augmentation, batching."""
