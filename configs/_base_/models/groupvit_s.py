# GroupViT-S as released by NVlabs: 16x16 patches at 224, width 384, depths [6, 3, 3], groups 64 -> 8,
# text transformer 256 x 12 layers, projection 4096 -> 256. See groupseg.models.PRESETS.
model = dict(preset="groupvit-s")
