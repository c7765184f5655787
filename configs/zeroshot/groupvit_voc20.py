# GroupViT zero-shot on PASCAL VOC 2012 val without background (20 classes, background ignored): slide 448/224.
_base_ = ['../_base_/datasets/pascal_voc12_20.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}))
