# What every zero-shot evaluation set shares: short side 448 (long side at most 2048), batch 1, mmseg's IoUMetric.
# Dataset configs set test_dataloader.dataset's type, data_root, data_prefix and split file.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    # one epoch: persistent workers buy nothing and, left alive, cost ~10 s each time a finished run's loader is
    # garbage-collected in a process that evaluates again (the quickstart, sweeps, the tests)
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
