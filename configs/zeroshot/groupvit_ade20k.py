# GroupViT zero-shot on ADE20K val (150 classes, no background): slide 448/224.
_base_ = ['../_base_/datasets/ade20k.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}))
