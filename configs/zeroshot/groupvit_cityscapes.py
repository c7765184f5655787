# GroupViT zero-shot on Cityscapes val (19 classes, no background): short side 448, slide 448/224 (the GroupViT and
# TCL protocol; `--protocol sclip` evaluates at short side 560 with slide 224/112 instead).
_base_ = ['../_base_/datasets/cityscapes.py', '_base_/groupvit.py']
model = dict(vocabulary=dict(classes={{_base_.class_names}}))
