# Your own labelled images: data/custom/images/*.jpg with label PNGs data/custom/annotations/*.png (same stem; pixel
# value = label id, 255 = ignore). No class names here: the vocabulary (--vocab) defines the labels, in id order.
dataset_type = 'BaseSegDataset'
data_root = 'data/custom'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='images', seg_map_path='annotations'),
        pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
class_names = None
