# GroupViT zero-shot on PASCAL VOC 2012 val: official protocol (background threshold 0.95, slide 448/224).
_base_ = ['../_base_/datasets/pascal_voc12.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}), test_cfg=dict(bg_thresh=0.95))
