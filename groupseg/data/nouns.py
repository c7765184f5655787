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
# are not already spaCy stop words (colours, size/age/quality adjectives, participles of captioned actions).
NOT_NOUNS = frozenset(
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
        "amazing stunning delicious healthy tasty sweet spicy rustic urban rural seamless "
        # verbs and participles of captioned actions
        "sitting standing walking running looking playing holding wearing lying laying eating drinking riding "
        "smiling posing flying swimming jumping waiting working talking taking making using showing watching "
        "carrying sleeping reading cooking dancing singing driving shopping hanging leaning growing "
        "stands sits looks walks holds shows features shown seen taken set like love want need"
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
    """

    def __init__(self, nlp: Language | None = None):
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

    @classmethod
    def from_spacy(cls, model: str = DEFAULT_MODEL) -> "NounExtractor":
        """The trained pipeline ``model`` (parser and NER excluded: not needed), or the fallback rule if absent."""
        try:
            nlp = spacy.load(model, exclude=["parser", "ner", "senter"])
        except OSError:
            _warn_missing_model(model)
            return cls()
        return cls(nlp)

    def __call__(self, caption: str) -> list[str]:
        doc = self.nlp(caption)
        words = self._tagged(doc) if self.tagged else self._rule(doc)
        return list(dict.fromkeys(w for w in words if len(w) >= 2))

    @staticmethod
    def _tagged(doc) -> list[str]:
        out = []
        for tok in doc:
            is_noun = tok.pos_ in NOUN_POS or (not tok.pos_ and tok.tag_.startswith("NN"))
            if is_noun and tok.is_alpha:
                out.append(tok.lemma_.lower() if tok.lemma_ else singularize(tok.lower_))
        return out

    @staticmethod
    def _rule(doc) -> list[str]:
        out = []
        for tok in doc:
            word = tok.lower_
            if tok.is_alpha and not tok.is_stop and word not in NOT_NOUNS and not _looks_like_participle(word):
                out.append(singularize(word))
        return out

    def __repr__(self) -> str:
        kind = f"spaCy {self.nlp.meta.get('name', '?')} {self.nlp.pipe_names}" if self.tagged else "fallback rule"
        return f"NounExtractor({kind})"


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
def default_noun_extractor() -> NounExtractor:
    """The process-wide default: ``en_core_web_sm`` if installed, else the fallback rule (warned once)."""
    return NounExtractor.from_spacy(DEFAULT_MODEL)
