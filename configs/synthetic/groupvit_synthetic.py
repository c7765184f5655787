# A small GroupViT trained on the synthetic world (tools/make_synthetic.py) on 2 CPU cores, with the same
# tools/train.py, losses and data pipeline as the real recipes. 32 px images, 2 px patches (16 x 16 tokens), a single
# grouping stage of 4 groups straight on the patch tokens (no block before or after it: local tokens), a one-layer
# text tower (captions are short and simple), prompts of noun phrases and of nouns alone ("a photo of a red circle.",
# "a photo of a circle."), and three deviations from the reference (docs/synthetic_world.md): segments hold only their
# own tokens (group_token_residual=False), the multi-label loss scores each prompt against its best segment, and it
# weighs twice the image-text loss.
# Precision is fp32 on every machine (not 'auto'), so that the main job trains the same model on CPUs with and without
# native bf16.
model = dict(
    image_size=32, patch_size=2, vision_width=96, vision_depths=[0, 0], vision_heads=3,
    num_group_tokens=[4, 0], num_output_groups=[4], drop_path_rate=0.0, group_token_residual=False,
    text_width=64, text_layers=1, text_heads=1, context_length=24, embed_dim=128, proj_hidden_dim=512,
)  # fmt: skip
data = dict(
    train="data/synthetic/train/{00000..00011}.tar",  # 60k pairs as make_synthetic.py writes them by default
    samples_per_epoch=None,  # counted from the shards' _stats.json
    batch_size=128,
    image_size=32,
    num_prompts=3,
    noun_phrases="both",  # each adjective-noun phrase ("red circle"), then its noun alone ("circle")
    nouns="rule",  # groupseg's noun rule on every machine, with or without spaCy's en_core_web_sm: the same prompts
    augment=dict(base="light", scale=(1.0, 1.0), ratio=(1.0, 1.0)),  # flips only: crops would cut named objects
    # One loader worker beside one training thread: on a quiet 2-core machine two training threads without a worker
    # are ~17 % faster, but any other busy process then slows every step several-fold (docs/synthetic_world.md).
    num_workers=1,
)
# The multi-label (segment-level) loss weighs twice the image-text one (the reference: equal): the segments it shapes
# are what zero-shot segmentation reads. Seeds 0 / 1 / 2 at weight 1 -> 2: colours 58.9 / 73.0 / 60.8 -> 70.5 / 78.7 /
# 74.3, shapes 41.0 / 49.5 / 46.6 -> 47.8 / 57.1 / 49.6 (docs/synthetic_world.md, 2026-12-03).
loss = dict(multi_label_weight=2.0, multi_label_on="groups")
# lr 1e-3: at 2e-3 two seeds of three spiked (gradient norms 50-150) and stalled on an AMD EPYC with native bf16
# (shapes 12.4 / 31.9); at 1e-3 all three learned (docs/synthetic_world.md, 2026-12-02 evening).
optimizer = dict(lr=1e-3, weight_decay=0.05, warmup_steps=50, warmup_lr=1e-5, min_lr=4e-5, clip_grad=5.0,
                 scale_lr=False)  # fmt: skip
# 1000 steps: seeds 0 / 1 / 2 shapes 42.4 / 39.1 / 40.7, colours 73.9 / 73.9 / 67.8 in ~3.1 min on an AMD EPYC Zen 4
# (1400 steps: 47.8 / 57.1 / 49.6 and 70.5 / 78.7 / 74.3 in 4.2-4.7 min; 1200: 45.8 / 45.7 / 45.2 in ~4.1), so that a
# 2.0 GHz Xeon without bf16 fits the main job in 12 minutes (estimated 9-10.5; docs/synthetic_world.md, 2026-12-03).
train = dict(max_steps=1000, time_budget_minutes=30, seed=0, precision="fp32", log_interval=20, ckpt_interval=250,
             keep_last=2)  # fmt: skip
