"""Training data: image-caption pairs from webdataset shards (pairs), caption nouns (nouns) and multi-label prompts
(prompts), and the synthetic world (synthetic). Submodules import lazily: `from groupseg.data.pairs import ...`."""
