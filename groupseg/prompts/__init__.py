"""Prompts beyond class names: exemplars (an image and a mask) that define a class, in the text embeddings' space.

Submodules import lazily: ``from groupseg.prompts.exemplars import Exemplar``.
"""
