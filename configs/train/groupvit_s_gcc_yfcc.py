# The released GroupViT-S (CC3M + CC12M + YFCC14M), multi-label loss on (K = 3).
# Shard paths follow data/README.md (img2dataset webdataset output); counts from groupvit-facts.md.
_base_ = ["../_base_/models/groupvit_s.py", "../_base_/train_reference.py"]
data = dict(
    train=[
        dict(shards="data/gcc3m/{00000..00331}.tar"),
        dict(shards="data/gcc12m/{00000..01242}.tar"),
        dict(shards="data/yfcc14m/{00000..01888}.tar"),
    ],
    samples_per_epoch=2_890_000 + 11_160_000 + 14_620_000,
)
