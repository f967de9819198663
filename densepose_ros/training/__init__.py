"""Offline training of DensePose R-CNN (``densepose train``).

``config`` the YAML training configuration, ``matching`` ground-truth matching and
balanced sampling, ``losses`` the DensePose chart losses, ``detection`` one training step's
losses of every head, ``trainer`` the loop (checkpoints, resume, signals, logs, export of
deployable weights), ``plotting`` the loss and AP curves written as images.
"""
