# GroupViT zero-shot on COCO-Object val2017 (80 things + background): official protocol (threshold 0.95, slide).
_base_ = ['../_base_/datasets/coco_object.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}), test_cfg=dict(bg_thresh=0.95))
