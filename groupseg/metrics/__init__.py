"""Metrics as pure numpy functions of predictions and ground truth (no model, no dataset): few-shot FG-IoU, ...

Submodules import lazily: ``from groupseg.metrics.few_shot import FewShotIoU``.
"""
