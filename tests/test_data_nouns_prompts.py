"""Noun extraction (spaCy-tagged and fallback) and multi-label prompts."""
import warnings

import numpy as np
import pytest
import spacy
import torch

from groupseg.data import nouns as nouns_mod
from groupseg.data.nouns import NounExtractor, singularize
from groupseg.data.prompts import TEMPLATES, make_prompts


def tagging_pipeline():
    """A real spaCy pipeline that assigns POS and lemmas: blank English + an attribute_ruler with a few rules."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add([[{"LOWER": {"IN": ["dog", "frisbee", "park", "runs"]}}]], {"POS": "NOUN"})
    ruler.add([[{"LOWER": "dogs"}]], {"POS": "NOUN", "LEMMA": "dog"})
    ruler.add([[{"LOWER": "paris"}]], {"POS": "PROPN"})
    ruler.add([[{"LOWER": {"IN": ["catches", "plays", "jumps"]}}]], {"POS": "VERB"})
    ruler.add([[{"LOWER": {"IN": ["red", "happy"]}}]], {"POS": "ADJ"})
    return nlp


def test_spacy_path_takes_the_pipelines_tags():
    extract = NounExtractor(tagging_pipeline())
    assert extract.tagged
    assert extract("A happy dog catches a red frisbee in the park") == ["dog", "frisbee", "park"]
    # lemma from the pipeline, distinct, proper nouns lower-cased
    assert extract("Dogs and a dog in Paris") == ["dog", "paris"]
    # the tagger, not the rule, decides: "jumps" is a VERB here but the fallback rule would call it a noun
    assert extract("the dog jumps") == ["dog"]
    assert NounExtractor()("the dog jumps") == ["dog", "jump"]


def test_noun_phrases_keep_the_adjectives_before_each_noun():
    tagged = NounExtractor(tagging_pipeline(), phrases=True)
    assert tagged("A happy dog catches a red frisbee in the park") == ["happy dog", "red frisbee", "park"]
    # the tagger decides what an adjective is: "big" has no ADJ tag in this pipeline, so it does not join
    assert tagged("a big red dog and the red dogs") == ["red dog"]
    rule = NounExtractor(phrases=True)
    assert rule("Two bright red circles and a wooden box on a striped background, sitting cats") == [
        "bright red circle", "wooden box", "striped background", "cat"
    ]  # fmt: skip
    # a non-adjective between breaks the phrase; the same noun with different adjectives is two phrases
    assert rule("a red and blue ball, a blue ball") == ["blue ball"]
    assert rule("a red cup, a blue cup, a cup") == ["red cup", "blue cup", "cup"]
    # without phrases the same captions give the plain nouns; with "both", each phrase then its noun alone
    assert NounExtractor()("Two bright red circles and a wooden box") == ["circle", "box"]
    assert NounExtractor(phrases="both")("Two bright red circles, a box and a wooden box") == [
        "bright red circle", "circle", "box", "wooden box"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="phrases must be"):
        NounExtractor(phrases="all")


def test_pipeline_without_pos_is_refused():
    with pytest.raises(ValueError, match="part-of-speech"):
        NounExtractor(spacy.blank("en"))


def test_fallback_rule():
    extract = NounExtractor()
    assert not extract.tagged
    assert extract("Two red apples and a wooden box on the table, sitting cats") == ["apple", "box", "table", "cat"]
    assert extract("The children played with puppies in the park") == ["child", "puppy", "park"]
    assert extract("isolated glasses of wine on a bar counter") == ["glass", "wine", "bar", "counter"]
    assert extract("") == [] and extract("   ...  !!") == []


@pytest.mark.parametrize(
    "plural, singular",
    [("cats", "cat"), ("boxes", "box"), ("churches", "church"), ("berries", "berry"), ("glasses", "glass"),
     ("bus", "bus"), ("cactus", "cactus"), ("women", "woman"), ("leaves", "leaf"), ("cookies", "cookie"),
     ("shoes", "shoe"), ("news", "news"), ("dog", "dog")],
)  # fmt: skip
def test_singularize(plural, singular):
    assert singularize(plural) == singular


def test_missing_model_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(nouns_mod, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = NounExtractor.from_spacy("groupseg_no_such_pipeline")
        second = NounExtractor.from_spacy("groupseg_no_such_pipeline")
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1
    assert "groupseg_no_such_pipeline" in messages[0] and "pip install" in messages[0]
    assert not first.tagged and not second.tagged
    assert first("a cat on a sofa") == ["cat", "sofa"]


def test_templates_are_the_80_imagenet_templates():
    assert len(TEMPLATES) == 80
    texts = {t("dog") for t in TEMPLATES}
    assert len(texts) == 80 and "a photo of a dog." in texts and all("dog" in t for t in texts)


def _template_noun(prompt, nouns):
    """(template index, noun) that produced ``prompt``."""
    table = {t(n): (i, n) for i, t in enumerate(TEMPLATES) for n in nouns}
    assert prompt in table, prompt
    return table[prompt]


def test_prompts_sample_distinct_nouns_in_templates():
    nouns = ["dog", "frisbee", "park", "tree", "sky"]
    for seed in range(20):
        prompts = make_prompts("caption", nouns, 3, seed)
        assert len(prompts) == 3
        used = [_template_noun(p, nouns)[1] for p in prompts]
        assert len(set(used)) == 3  # distinct nouns


def test_missing_slots_are_the_caption():
    cap = "a dog in a park"
    one = make_prompts(cap, ["dog", "dog"], 3, 0)  # duplicates count once
    assert one[1:] == [cap, cap] and _template_noun(one[0], ["dog"])
    assert make_prompts(cap, [], 3, 0) == [cap] * 3
    assert make_prompts(cap, ["dog"], 0, 0) == []


def test_prompts_deterministic_for_seed_and_generators():
    nouns = ["dog", "frisbee", "park", "tree", "sky", "grass"]
    assert make_prompts("c", nouns, 3, 7) == make_prompts("c", nouns, 3, np.random.default_rng(7))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert make_prompts("c", nouns, 3, g1) == make_prompts("c", nouns, 3, g2)
    assert len({tuple(make_prompts("c", nouns, 3, s)) for s in range(10)}) > 1


def test_all_templates_and_nouns_get_used():
    rng = np.random.default_rng(0)
    nouns = ["dog", "cat", "tree", "car"]
    table = {t(n): (i, n) for i, t in enumerate(TEMPLATES) for n in nouns}
    used_templates, used_nouns = set(), set()
    for _ in range(1000):
        for p in make_prompts("c", nouns, 2, rng):
            t, n = table[p]
            used_templates.add(t)
            used_nouns.add(n)
    assert used_templates == set(range(80)) and used_nouns == set(nouns)


@pytest.mark.parametrize("phrases", [False, True, "both"])
def test_training_loader_prompts_nouns_or_noun_phrases(tmp_path, phrases):
    """``data.noun_phrases`` reaches the batches tools/train.py trains on: each prompt wraps a noun, or with the
    option the adjective–noun phrase (or, with "both", either), of its own caption."""
    from groupseg.engine.config import training_config
    from groupseg.engine.distributed import DistInfo
    from groupseg.engine.trainer import build_loader
    from groupseg.tokenizer import tokenize
    from helpers_shards import image_bytes, write_shard

    captions = ["a red circle and a blue square", "two green stars on a striped background"]
    write_shard(
        tmp_path / "00000.tar", [dict(key=f"{i:04d}", jpg=image_bytes(i), txt=captions[i % 2]) for i in range(8)]
    )
    cfg = training_config(dict(data=dict(train=str(tmp_path / "00000.tar"), batch_size=4, image_size=32, num_prompts=2,
                                         augment="light", num_workers=0, noun_phrases=phrases),
                               loss=dict(multi_label_weight=1.0), optimizer=dict(lr=1e-3),
                               train=dict(seed=0, max_steps=1)))  # fmt: skip
    batch = next(iter(build_loader(cfg, DistInfo(0, 1, 0), 0, 0, 24, 1)))
    if phrases == "both":
        words = {captions[0]: ["red circle", "circle", "blue square", "square"],
                 captions[1]: ["green star", "star", "striped background", "background"]}  # fmt: skip
    elif phrases:
        words = {captions[0]: ["red circle", "blue square"], captions[1]: ["green star", "striped background"]}
    else:
        words = {captions[0]: ["circle", "square"], captions[1]: ["star", "background"]}
    bare = {tuple(tokenize(t(w), 24)[0].tolist()) for t in TEMPLATES for w in ["circle", "square", "star"]}
    prompted_bare_nouns = 0
    for caption, tokens in zip(batch["captions"], batch["tokens"]):
        wanted = {tuple(tokenize(t(w), 24)[0].tolist()) for t in TEMPLATES for w in words[caption]}
        prompts = [tuple(row.tolist()) for row in tokens[1:]]
        assert all(p in wanted for p in prompts) and len(set(prompts)) == 2
        prompted_bare_nouns += sum(p in bare for p in prompts)
    assert (prompted_bare_nouns > 0) == (phrases is not True)
