"""Vocabularies: the label names a zero-shot segmentor predicts, and the text prompts behind each name.

A vocabulary is written as a list of entries, a comma-separated string, or a text file with one entry a line::

    # lines starting with '#' are comments
    template: a photo of a {}.        # optional; replaces the default template (repeat the line for several)
    background                        # optional; only as the first entry: the thresholded background (no prompt)
    person: man, woman, child         # a name with synonyms: one label, prompts for all four words, averaged
    cat

In a string, separate entries with ';' to give synonyms inline: ``"background; person: man, woman; cat"``; a string
of several lines is read like a file (a text box in the demo app holds the same syntax as a file).
Label ``i`` of the prediction is entry ``i``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

BACKGROUND = "background"
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)  # the single template GroupViT segments with


class VocabularyError(ValueError):
    """A vocabulary that cannot be used as given: empty, duplicated, malformed, or not fitting the dataset."""


@dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]  # label names; index = label id
    words: tuple[tuple[str, ...], ...]  # per label the words to prompt with: the name, then its synonyms
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    @property
    def with_background(self) -> bool:
        """Label 0 is the background, decided by a threshold rather than by a prompt (the official protocol)."""
        return self.names[0] == BACKGROUND

    @property
    def prompted_words(self) -> tuple[tuple[str, ...], ...]:
        """The words of every prompted (non-background) label, in label order."""
        return self.words[1:] if self.with_background else self.words

    def to_config(self) -> dict[str, Any]:
        """The plain-data form that configs hold (``parse_vocabulary`` reads it back)."""
        entries = [n if len(w) == 1 else f"{n}: {', '.join(w[1:])}" for n, w in zip(self.names, self.words)]
        return dict(classes=entries, templates=list(self.templates))

    def __len__(self) -> int:
        return len(self.names)


VocabularySpec = Union[Vocabulary, dict, Sequence[str], str, os.PathLike]


def parse_vocabulary(
    spec: VocabularySpec, templates: Sequence[str] | None = None, add_background: bool = False
) -> Vocabulary:
    """A :class:`Vocabulary` from a list, a comma/semicolon-separated string, a file path, or a config dict.

    ``templates`` overrides the default ``"a photo of a {}."`` (a file's ``template:`` lines do the same; giving
    both is an error). ``add_background`` puts ``"background"`` first if the entries do not start with it.
    """
    if isinstance(spec, Vocabulary):
        vocab_templates, entries = list(spec.templates), list(spec.to_config()["classes"])
    elif isinstance(spec, dict):
        unknown = sorted(set(spec) - {"classes", "templates"})
        if unknown:
            raise VocabularyError(f"unknown vocabulary keys {unknown}; use 'classes' and 'templates'")
        entries, vocab_templates = _as_list(spec.get("classes"), "classes"), spec.get("templates")
        if vocab_templates is not None:
            vocab_templates = _as_list(vocab_templates, "templates")
    elif isinstance(spec, (str, os.PathLike)):
        entries, vocab_templates = _read_text_spec(spec)
    elif isinstance(spec, Iterable):
        entries, vocab_templates = _as_list(spec, "classes"), None
    else:
        raise VocabularyError(f"cannot read a vocabulary from {type(spec).__name__}: {spec!r}")

    if templates is not None and vocab_templates:
        raise VocabularyError("templates are given twice: in the vocabulary and as an argument; keep one")
    templates = _check_templates(list(templates if templates is not None else vocab_templates or DEFAULT_TEMPLATES))

    names, words = [], []
    for entry in entries:
        name, synonyms = _split_entry(entry)
        names.append(name)
        words.append((name, *synonyms))
    if not names:
        raise VocabularyError("the vocabulary is empty: give at least one class name")
    if add_background and names[0] != BACKGROUND:
        names.insert(0, BACKGROUND)
        words.insert(0, (BACKGROUND,))
    _check_names(names, words)
    if len(names) < 2:
        raise VocabularyError(
            f"the vocabulary has one label ({names[0]!r}); a segmentation needs at least two (add 'background' first)"
        )
    return Vocabulary(names=tuple(names), words=tuple(words), templates=tuple(templates))


def check_fits_dataset(vocab: Vocabulary, dataset_classes: Sequence[str], dataset: str = "the dataset") -> None:
    """Fail unless the vocabulary has exactly one entry per dataset label (predicted ids must mean the same thing)."""
    if len(vocab) == len(dataset_classes):
        return
    hint = ""
    if dataset_classes and dataset_classes[0] == BACKGROUND and not vocab.with_background:
        hint = " (its label 0 is 'background': start the vocabulary with 'background')"
    raise VocabularyError(
        f"the vocabulary has {len(vocab)} classes but {dataset} has {len(dataset_classes)} labels{hint}; "
        f"give one class per label, in label order"
    )


def _as_list(value: Any, what: str) -> list[str]:
    if value is None:
        raise VocabularyError(f"the vocabulary has no {what}")
    if isinstance(value, str):
        return [value]
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise VocabularyError(f"vocabulary {what} must be strings; got {type(item).__name__}: {item!r}")
    return items


def _read_text_spec(spec: str | os.PathLike) -> tuple[list[str], list[str] | None]:
    text = str(spec)
    if isinstance(spec, str) and "\n" in text:  # the file syntax, typed in (e.g. the demo app's text box)
        return _read_lines(text, source=None)
    path = Path(spec)
    if isinstance(spec, os.PathLike) or path.suffix in (".txt", ".vocab") or os.sep in text:
        if not _is_file(path):
            raise VocabularyError(f"vocabulary file {path} does not exist")
    if _is_file(path):
        return _read_lines(path.read_text(encoding="utf-8"), source=str(path))
    sep = ";" if ";" in text else ","
    if sep == "," and ":" in text:
        raise VocabularyError(
            f"cannot tell classes from synonyms in {text!r}: separate classes with ';' "
            "(e.g. 'person: man, woman; cat') or use a file with one class a line"
        )
    return [e for e in (e.strip() for e in text.split(sep)) if e], None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a long inline class list is no valid file name (ENAMETOOLONG)
        return False


def _read_lines(text: str, source: str | None) -> tuple[list[str], list[str] | None]:
    """Entries and ``template:`` lines of the file syntax; ``source`` (a file name) is named in errors."""
    entries, templates = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower().startswith("template:"):
            template = line.split(":", 1)[1].strip()
            if not template:
                where = f"{source}:{number}" if source else f"line {number}"
                raise VocabularyError(f"{where}: empty template")
            templates.append(template)
        else:
            entries.append(line)
    return entries, templates or None


def _split_entry(entry: str) -> tuple[str, list[str]]:
    name, colon, rest = entry.partition(":")
    name = " ".join(name.split())
    if not name:
        raise VocabularyError(f"vocabulary entry {entry!r} has no class name")
    synonyms = []
    if colon:
        synonyms = [" ".join(s.split()) for s in rest.split(",")]
        if not all(synonyms):
            raise VocabularyError(f"vocabulary entry {entry!r}: give synonyms as 'name: word, word'")
        if name == BACKGROUND:
            raise VocabularyError("'background' is decided by a threshold, not prompted: it takes no synonyms")
    return name, synonyms


def _check_names(names: list[str], words: list[tuple[str, ...]]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = name.lower()  # the CLIP tokenizer lower-cases, so 'Cat' and 'cat' prompt the same
        if key in seen:
            raise VocabularyError(f"duplicate class name {name!r} in the vocabulary")
        seen[key] = name
    if BACKGROUND in names[1:]:
        raise VocabularyError("'background' can only be the first class (label 0)")


def _check_templates(templates: list[str]) -> list[str]:
    if not templates:
        raise VocabularyError("give at least one prompt template")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise VocabularyError(f"prompt template {template!r} must contain '{{}}' exactly once")
    return templates
