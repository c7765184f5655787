"""Training data: image-caption pairs from webdataset shards (pairs), caption nouns (nouns) and multi-label prompts
(prompts); the synthetic world lives in groupseg.synthetic. Submodules import lazily: `from groupseg.data.pairs import ...`."""
