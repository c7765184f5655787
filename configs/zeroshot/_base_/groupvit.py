# Zero-shot GroupViT segmentor and the runtime to test it with mmengine's Runner (tools/test.py).
custom_imports = dict(imports=['groupseg.zeroshot'], allow_failed_imports=False)
default_scope = 'mmseg'
model = dict(
    type='GroupViTSegmentor',
    checkpoint=None,  # set by tools/test.py from its CHECKPOINT argument
    vocabulary=dict(classes=None, templates=['a photo of a {}.']),  # the single template GroupViT segments with
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],  # ImageNet statistics, as GroupViT was trained (not CLIP's)
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    test_cfg=dict(mode='slide', crop_size=(448, 448), stride=(224, 224), bg_thresh=0.95, crop_batch_size=4))
test_cfg = dict(type='TestLoop')
env_cfg = dict(
    cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='nccl'))
default_hooks = dict(timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
