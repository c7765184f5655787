# GroupViT zero-shot on PASCAL Context val without background (59 classes, background ignored): slide 448/224.
_base_ = ['../_base_/datasets/pascal_context59.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}))
