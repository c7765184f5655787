# The synthetic world's held-out set labelled by colour ("red shape", ...; val/colours.txt, masks in
# SegmentationClassColour), with the background threshold chosen for this vocabulary on a separate dev world
# (docs/synthetic_world.md): 0.35 (the shapes vocabulary: 0.45). Everything else as zeroshot_synthetic.py.
_base_ = ['./zeroshot_synthetic.py']
test_dataloader = dict(dataset=dict(data_prefix=dict(seg_map_path='SegmentationClassColour')))
class_names = ['background', 'red shape', 'green shape', 'blue shape', 'yellow shape', 'purple shape', 'orange shape',
               'pink shape']  # = val/colours.txt
model = dict(vocabulary=dict(classes=class_names), test_cfg=dict(bg_thresh=0.35))
