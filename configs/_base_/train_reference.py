# The reference recipe (NVlabs/GroupViT configs/default.yml and the paper, arXiv 2202.11094): 30 epochs, global
# batch 4096 (256 per GPU x 16), AdamW wd 0.05, lr 1.6e-3 scaled linearly by global batch / 4096, 2 warm-up epochs
# from 4e-6, per-step cosine to 4e-5, gradient clip 5.0, mixed precision ('auto': bf16 where the hardware runs it
# natively, fp32 elsewhere); multi-label loss weight 1 with K = 3 noun prompts.
data = dict(
    batch_size=256,  # per rank
    image_size=224,
    num_prompts=3,
    augment="reference",
    num_workers=6,
)
loss = dict(multi_label_weight=1.0)
optimizer = dict(lr=1.6e-3, weight_decay=0.05, warmup_epochs=2, warmup_lr=4e-6, min_lr=4e-5, clip_grad=5.0)
train = dict(epochs=30, seed=0, precision="auto", log_interval=50, ckpt_interval=2000, keep_last=3)
