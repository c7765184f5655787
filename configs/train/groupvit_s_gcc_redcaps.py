# The released GroupViT-S (CC3M + CC12M + RedCaps12M): trained with the multi-label loss off.
_base_ = ["../_base_/models/groupvit_s.py", "../_base_/train_reference.py"]
data = dict(
    train=[
        dict(shards="data/gcc3m/{00000..00331}.tar"),
        dict(shards="data/gcc12m/{00000..01242}.tar"),
        dict(shards="data/redcaps12m/{00000..01186}.tar"),
    ],
    samples_per_epoch=2_890_000 + 11_160_000 + 11_870_000,
    num_prompts=0,
)
loss = dict(multi_label_weight=0.0)
