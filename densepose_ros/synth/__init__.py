"""Synthetic DensePose data from the Anny parametric body (CC0 assets, Apache-2.0 code).

Modules:
- ``charts``: the 24 DensePose charts on the Anny surface (asset loader, mirror map).
- ``make_charts``: regenerates the chart and geodesic assets from ``anny`` (needs anny).
- ``geodesic``: geodesic distances between surface samples, for GPS evaluation.
- ``body``: posed and shaped Anny bodies (pose/shape sampling, skinning, COCO keypoints).
- ``raster``: the CPU z-buffer rasteriser (numba).
- ``scene``: multi-person scenes, camera, appearance and the rendered maps.
- ``writer``: DensePose-COCO annotations and the dataset writer behind ``densepose synth``.
- ``preview``: preview sheets of images with their I, U, V maps.
"""
