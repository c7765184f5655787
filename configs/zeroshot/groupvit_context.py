# GroupViT zero-shot on PASCAL Context val (59 classes + background): official protocol (threshold 0.35, slide).
_base_ = ['../_base_/datasets/pascal_context.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}), test_cfg=dict(bg_thresh=0.35))
