# GroupViT zero-shot on COCO-Stuff 164k val2017 (171 classes, no background): slide 448/224.
_base_ = ['../_base_/datasets/coco_stuff164k.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}))
