"""The synthetic world: a procedural image–caption world with held-out segmentation sets, its evaluation vocabularies,
baselines and diagnostics. The embedded default for every capability (no download needed); nothing in the model,
loss, trainer or evaluator knows about it. Submodules import lazily: ``from groupseg.synthetic.world import ...``."""
