# A few-minute CPU run of the whole training path on any img2dataset shards (default: the synthetic world).
_base_ = ["../_base_/train_reference.py"]
model = dict(preset="groupvit-tiny", context_length=32)
data = dict(train="data/synthetic/train/{00000..00003}.tar", batch_size=32, image_size=32, augment="light",
            num_workers=1, samples_per_epoch=None)  # fmt: skip
optimizer = dict(lr=2e-3, warmup_epochs=0, warmup_steps=10, scale_lr=False)
train = dict(epochs=2, precision="auto", log_interval=5, ckpt_interval=50)
