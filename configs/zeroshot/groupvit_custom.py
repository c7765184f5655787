# GroupViT zero-shot on your own labelled images; the classes come from --vocab (one per label id, in order).
_base_ = ['../_base_/datasets/custom.py', '_base_/groupvit.py']
model = dict(test_cfg=dict(bg_thresh=0.95))
