# Cityscapes val (500 images, 19 classes, no background): leftImg8bit/val/<city>/*_leftImg8bit.png with
# gtFine/val/<city>/*_gtFine_labelTrainIds.png (trainIds 0-18, 255 ignored; tools/convert_cityscapes.py makes them
# from the shipped *_gtFine_labelIds.png). Labels and prompt names: mmseg's CityscapesDataset.
_base_ = ['./zeroshot_eval.py']
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes'
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_gtFine_labelTrainIds.png',
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
class_names = [
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation', 'terrain',
    'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'
]
