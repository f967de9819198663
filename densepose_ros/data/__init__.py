"""Training and evaluation data: DensePose-COCO files, augmentation, batching.

``coco`` parses annotation files, ``symmetry`` holds the left/right chart symmetry,
``transforms`` the augmentation, ``dataset`` the datasets and their mixing, ``batching``
the ``collate_samples`` that turns samples into a ``TrainingBatch``.
"""

from densepose_ros.data.coco import AnnotationError, DensePoseCocoFile, load_densepose_coco

__all__ = ["AnnotationError", "DensePoseCocoFile", "load_densepose_coco"]
