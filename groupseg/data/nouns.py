"""Nouns of a caption, the words that the multi-label loss wraps in prompts ("a photo of a {noun}.").

The reference tagged captions with nltk (`NN`, `NNS`, `NNP` and verb tags). groupseg uses spaCy instead:

* With a trained English pipeline (``en_core_web_sm`` by default), a noun is a token that the pipeline tags
  ``NOUN`` or ``PROPN`` (or, for a pipeline with a tagger but no POS mapping, a Penn tag ``NN*``), taken as its
  lemma when the pipeline lemmatises, lower-cased.
* ``en_core_web_sm`` is not on PyPI (it is a GitHub release asset), so where it is not installed groupseg warns once
  and falls back to a rule over spaCy's blank English tokenizer: a noun is any lower-cased alphabetic token that is
  not a spaCy English stop word, not in ``NOT_NOUNS`` (colour and common adjective words, and the participles
  and verbs that are most frequent in alt-text captions: "a man *sitting* on a *red* bench"), and not a long word
  in "-ed" (past participles: "isolated", "decorated"); plurals are reduced by ``singularize``. The rule keeps
  some non-nouns and loses a few nouns; install the model for real tagging:
  ``pip install https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl``
  (or ``python -m spacy download en_core_web_sm`` where GitHub is reachable).
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Literal

import spacy
from spacy.language import Language

DEFAULT_MODEL = "en_core_web_sm"
NOUN_POS = frozenset({"NOUN", "PROPN"})
# Components that set part-of-speech (attribute_ruler maps tags to POS in the trained pipelines).
POS_FACTORIES = frozenset({"tagger", "morphologizer", "attribute_ruler"})

INSTALL_HINT = (
    "pip install https://github.com/explosion/spacy-models/releases/download/"
    "en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"
)

# Words the fallback rule never takes for nouns. Not exhaustive: the most frequent non-nouns of web alt-text that
# are not already spaCy stop words. Adjectives (colours, size/age/quality) may also lead a noun phrase; verbs and
# participles of captioned actions may not.
ADJECTIVES = frozenset(
    (
        # colours and tones
        "red orange yellow green blue purple violet pink brown black white grey gray golden beige turquoise "
        "colorful colourful dark light bright pale "
        # size, age and quality adjectives
        "big small large little tiny huge giant old new young beautiful pretty cute lovely happy sad funny modern "
        "vintage retro classic good great best nice fine long short tall high low wide open closed wooden metal "
        "fresh hot cold warm cool wet dry clean dirty isolated abstract traditional famous different single "
        "various natural public private local free available sunny cloudy rainy snowy ancient historic historical "
        "simple elegant luxury real true close far central main perfect favorite favourite "
        "amazing stunning delicious healthy tasty sweet spicy rustic urban rural seamless solid shiny flat plain"
    ).split()
)
NOT_NOUNS = ADJECTIVES | frozenset(
    (
        # verbs and participles of captioned actions, and prepositions spaCy does not list as stop words
        "sitting standing walking running looking playing holding wearing lying laying eating drinking riding "
        "smiling posing flying swimming jumping waiting working talking taking making using showing watching "
        "carrying sleeping reading cooking dancing singing driving shopping hanging leaning growing floating "
        "stands sits looks walks holds shows features shown seen taken drawn set like love want need look near"
    ).split()
)

# Plural → singular for words no suffix rule handles, and words that end in "s" but are not plurals.
IRREGULAR_PLURALS = {
    "men": "man", "women": "woman", "children": "child", "people": "person", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "geese": "goose", "oxen": "ox", "leaves": "leaf", "knives": "knife", "wives": "wife",
    "wolves": "wolf", "shelves": "shelf", "halves": "half", "loaves": "loaf", "calves": "calf",
    "thieves": "thief", "lives": "life", "scarves": "scarf", "potatoes": "potato", "tomatoes": "tomato",
    "heroes": "hero", "mangoes": "mango", "cacti": "cactus", "fungi": "fungus",
    "cookies": "cookie", "movies": "movie", "selfies": "selfie", "brownies": "brownie", "hoodies": "hoodie",
    "zombies": "zombie", "smoothies": "smoothie", "calories": "calorie", "ties": "tie", "pies": "pie",
}  # fmt: skip
NOT_PLURALS = frozenset(
    "news lens chaos series species jeans pants shorts trousers scissors clothes physics mathematics politics "
    "economics athletics gymnastics christmas canvas atlas texas bias gas bus yes always".split()
)


def singularize(word: str) -> str:
    """Plural → singular by a few suffix rules (cats, boxes, churches, berries) and an irregular table. Heuristic."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in NOT_PLURALS or len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zzes", "ches", "shes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ous")):
        return word
    return word[:-1]


def _looks_like_participle(word: str) -> bool:
    # "isolated", "painted", but keep "bed", "shed", "seed", "seabed", "watershed".
    return len(word) >= 5 and word.endswith("ed") and not word.endswith(("eed", "bed", "shed", "sled"))


class NounExtractor:
    """``extractor(caption) -> list[str]``: the caption's distinct nouns (lower-case, singular), in order.

    ``NounExtractor(nlp)`` tags with a spaCy pipeline that assigns part-of-speech; ``NounExtractor()`` uses the
    documented fallback rule (module docstring). ``NounExtractor.from_spacy()`` loads ``en_core_web_sm`` when it
    is installed and falls back (warning once) when it is not.

    ``phrases=True`` (a groupseg option; the reference prompts single nouns) keeps the adjectives written right
    before each noun: "two bright red circles" → "bright red circle". A prompt then names an attribute *bound* to
    an object, so the multi-label loss must tell "a red circle" from "a red square" and "a blue circle" in one image,
    which an image embedding that merely averages its parts cannot do. Adjectives are tokens tagged ``ADJ`` (or a
    Penn ``JJ*`` tag); under the fallback rule, words of ``ADJECTIVES`` and participles ("striped").
    ``phrases="both"`` gives each phrase followed by its bare noun ("bright red circle", "circle"): prompts then
    also name the object alone, so an attribute that captions nearly always mention (colour) cannot stand in for it.
    """

    def __init__(self, nlp: Language | None = None, phrases: bool | Literal["both"] = False):
        if phrases not in (True, False, "both"):
            raise ValueError(f"phrases must be True, False or 'both', got {phrases!r}")
        if nlp is not None:
            factories = {nlp.get_pipe_meta(name).factory for name in nlp.pipe_names}
            if not factories & POS_FACTORIES:
                raise ValueError(
                    f"the spaCy pipeline has no part-of-speech component (it has {nlp.pipe_names or 'none'}; "
                    f"need one of {sorted(POS_FACTORIES)}); pass a trained pipeline such as {DEFAULT_MODEL}, or no "
                    "pipeline for the rule-based fallback"
                )
            self.nlp, self.tagged = nlp, True
        else:
            self.nlp, self.tagged = spacy.blank("en"), False
        self.phrases = phrases

    @classmethod
    def from_spacy(cls, model: str = DEFAULT_MODEL, phrases: bool | Literal["both"] = False) -> "NounExtractor":
        """The trained pipeline ``model`` (parser and NER excluded: not needed), or the fallback rule if absent."""
        try:
            nlp = spacy.load(model, exclude=["parser", "ner", "senter"])
        except OSError:
            _warn_missing_model(model)
            return cls(phrases=phrases)
        return cls(nlp, phrases)

    def __call__(self, caption: str) -> list[str]:
        words, modifiers = [], []
        for tok in self.nlp(caption):
            noun = self._noun(tok)
            if noun is not None and len(noun) >= 2:
                if self.phrases and modifiers:
                    words.append(" ".join([*modifiers, noun]))
                if not self.phrases or not modifiers or self.phrases == "both":
                    words.append(noun)
                modifiers = []
            elif self.phrases and self._adjective(tok):
                modifiers.append(tok.lower_)
            else:
                modifiers = []
        return list(dict.fromkeys(words))

    def _noun(self, tok) -> str | None:
        """The token's noun form (lemma or singular), or ``None`` if it is not a noun."""
        if not tok.is_alpha:
            return None
        if self.tagged:
            if tok.pos_ in NOUN_POS or (not tok.pos_ and tok.tag_.startswith("NN")):
                return tok.lemma_.lower() if tok.lemma_ else singularize(tok.lower_)
            return None
        word = tok.lower_
        if tok.is_stop or word in NOT_NOUNS or _looks_like_participle(word):
            return None
        return singularize(word)

    def _adjective(self, tok) -> bool:
        if not tok.is_alpha:
            return False
        if self.tagged:
            return tok.pos_ == "ADJ" or (not tok.pos_ and tok.tag_.startswith("JJ"))
        return tok.lower_ in ADJECTIVES or _looks_like_participle(tok.lower_)

    def __repr__(self) -> str:
        kind = f"spaCy {self.nlp.meta.get('name', '?')} {self.nlp.pipe_names}" if self.tagged else "fallback rule"
        mode = {True: ", phrases", "both": ", phrases and nouns"}.get(self.phrases, "")
        return f"NounExtractor({kind}{mode})"


_warned: set[str] = set()


def _warn_missing_model(model: str) -> None:
    if model in _warned:
        return
    _warned.add(model)
    warnings.warn(
        f"spaCy pipeline {model!r} is not installed, so noun extraction uses groupseg's rule-based fallback "
        f"(see groupseg/data/nouns.py); for part-of-speech tagging install it: {INSTALL_HINT}",
        UserWarning,
        stacklevel=3,
    )


@lru_cache(maxsize=None)
def default_noun_extractor(phrases: bool | Literal["both"] = False) -> NounExtractor:
    """The process-wide default: ``en_core_web_sm`` if installed, else the fallback rule (warned once)."""
    return NounExtractor.from_spacy(DEFAULT_MODEL, phrases)
