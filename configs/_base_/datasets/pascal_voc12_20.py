# PASCAL VOC 2012 val without background ('VOC-20', 1449 images): VOC's own masks read with background 0 ignored and
# the 20 objects as labels 0-19 (groupseg's PascalVOC20Dataset, as TCL's PascalVOCDataset20). Prompt names: GroupViT's
# VOC renames (diningtable -> table, pottedplant -> plant, tvmonitor -> monitor).
_base_ = ['./zeroshot_eval.py']
dataset_type = 'PascalVOC20Dataset'
data_root = 'data/VOCdevkit/VOC2012'
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt'))
class_names = [
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'table', 'dog', 'horse',
    'motorbike', 'person', 'plant', 'sheep', 'sofa', 'train', 'monitor'
]
