# PASCAL Context val without background ('Context-59', 5105 images): the same masks as Context-60, read by mmseg's
# PascalContextDataset59 (reduce_zero_label: background 0 ignored, classes 1-59 -> 0-58). Prompt names: GroupViT's
# Context renames (aeroplane -> airplane, pottedplant -> plant, tvmonitor -> monitor).
_base_ = ['./zeroshot_eval.py']
dataset_type = 'PascalContextDataset59'
data_root = 'data/VOCdevkit/VOC2010'
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt'))
class_names = [
    'airplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat', 'book', 'bottle', 'building', 'bus',
    'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain', 'dog', 'door', 'fence',
    'floor', 'flower', 'food', 'grass', 'ground', 'horse', 'keyboard', 'light', 'motorbike', 'mountain', 'mouse',
    'person', 'plate', 'platform', 'plant', 'road', 'rock', 'sheep', 'shelves', 'sidewalk', 'sign', 'sky', 'snow',
    'sofa', 'table', 'track', 'train', 'tree', 'truck', 'monitor', 'wall', 'water', 'window', 'wood'
]
