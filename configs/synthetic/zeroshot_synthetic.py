# Zero-shot segmentation of the synthetic world's held-out set with the same segmentor, head and IoUMetric as VOC.
# The set is in PASCAL VOC layout (JPEGImages, SegmentationClass, ImageSets/Segmentation/val.txt); it is read with
# mmseg's BaseSegDataset, the class PascalVOCDataset builds on (that one fixes VOC's 21 names), and the vocabulary
# names its labels. Images are evaluated whole at their native 32 px, the resolution the model was trained at.
# Background: a segment whose best cosine similarity to the class prompts is below 0.45 (bg_score='cosine', a
# deviation from the official softmax-score rule; README, "The synthetic world"). Like GroupViT's per-dataset
# thresholds, each vocabulary has its own, chosen on a separate dev world (docs/synthetic_world.md); the colours
# vocabulary is zeroshot_synthetic_colours.py.
_base_ = ['../zeroshot/groupvit_custom.py']
data_root = 'data/synthetic/val'
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
class_names = ['background', 'circle', 'square', 'triangle', 'star', 'cross', 'heart']  # = val/classes.txt
model = dict(vocabulary=dict(classes=class_names), test_cfg=dict(mode='whole', bg_thresh=0.45, bg_score='cosine'))
