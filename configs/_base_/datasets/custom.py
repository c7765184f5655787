# Your own labelled images: data/custom/images/*.jpg with label PNGs data/custom/annotations/*.png (same stem; pixel
# value = label id, 255 = ignore). No class names here: the vocabulary (--vocab) defines the labels, in id order.
_base_ = ['./zeroshot_eval.py']
dataset_type = 'BaseSegDataset'
data_root = 'data/custom'
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='images', seg_map_path='annotations')))
class_names = None
