"""Vocabularies: the label names a zero-shot segmentor predicts, and the text prompts behind each name.

A vocabulary is written as a list of entries, a comma-separated string, or a text file with one entry a line::

    # lines starting with '#' are comments
    template: a photo of a {}.        # optional; replaces the default template (repeat the line for several)
    background                        # optional; only as the first entry: the thresholded background (no prompt)
    person: man, woman, child         # a name with synonyms: one label, prompts for all four words, averaged
    cat
    dog: exemplar=dog.jpg mask=dog.png           # a class given by an example: an image and a mask of it
    dog: exemplar=pets.jpg mask=pets.png id=3    # a second exemplar of 'dog': pixels with id 3 of a label PNG

In a string, separate entries with ';' to give synonyms inline: ``"background; person: man, woman; cat"``; a string
of several lines is read like a file (a text box in the demo app holds the same syntax as a file).
Label ``i`` of the prediction is the ``i``-th class name, in order of first appearance.

Exemplars (:class:`groupseg.prompts.exemplars.Exemplar`; in a list, ``Exemplar`` objects). Each entry is one prompt:
a name (with synonyms), or one exemplar ``NAME: exemplar=IMAGE mask=MASK [id=N]`` (paths relative to the vocabulary
file's folder, or to the working directory for strings; quote paths with spaces). Entries that share a name make one
class when any of them is an exemplar: several exemplars of a class are averaged, and a text entry and exemplars of
the same name combine, text and exemplars counting half each (see :func:`groupseg.zeroshot.class_embeddings`). Two
text entries with one name are still a duplicate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

if TYPE_CHECKING:
    from ..prompts.exemplars import Exemplar

BACKGROUND = "background"
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)  # the single template GroupViT segments with


class VocabularyError(ValueError):
    """A vocabulary that cannot be used as given: empty, duplicated, malformed, or not fitting the dataset."""


@dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]  # label names; index = label id
    words: tuple[tuple[str, ...], ...]  # per label the words to prompt with: the name, then its synonyms; () if none
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    exemplars: tuple[tuple[Exemplar, ...], ...] = ()  # per label its exemplars (() for every label: text only)

    def __post_init__(self):
        if not self.exemplars:
            object.__setattr__(self, "exemplars", tuple(() for _ in self.names))

    @property
    def with_background(self) -> bool:
        """Label 0 is the background, decided by a threshold rather than by a prompt (the official protocol)."""
        return self.names[0] == BACKGROUND

    @property
    def prompted_words(self) -> tuple[tuple[str, ...], ...]:
        """The words of every prompted (non-background) label, in label order (``()`` for an exemplar-only label)."""
        return self.words[1:] if self.with_background else self.words

    @property
    def prompted_exemplars(self) -> tuple[tuple[Exemplar, ...], ...]:
        """The exemplars of every prompted (non-background) label, in label order."""
        return self.exemplars[1:] if self.with_background else self.exemplars

    @property
    def has_exemplars(self) -> bool:
        return any(self.exemplars)

    def to_config(self) -> dict[str, Any]:
        """The plain-data form that configs hold (``parse_vocabulary`` reads it back); exemplars of files become
        ``NAME: exemplar=IMAGE mask=MASK [id=N]`` entries with absolute paths, in-memory ones stay objects."""
        entries: list[Any] = []
        for name, words, exemplars in zip(self.names, self.words, self.exemplars):
            if words:
                entries.append(name if len(words) == 1 else f"{name}: {', '.join(words[1:])}")
            entries.extend(e.to_entry() for e in exemplars)
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
    base = None  # the folder relative exemplar paths are read from (a vocabulary file's; None: working directory)
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
        entries, vocab_templates, base = _read_text_spec(spec)
    elif isinstance(spec, Iterable):
        entries, vocab_templates = _as_list(spec, "classes"), None
    else:
        raise VocabularyError(f"cannot read a vocabulary from {type(spec).__name__}: {spec!r}")

    if templates is not None and vocab_templates:
        raise VocabularyError("templates are given twice: in the vocabulary and as an argument; keep one")
    templates = _check_templates(list(templates if templates is not None else vocab_templates or DEFAULT_TEMPLATES))

    names: list[str] = []
    words: list[tuple[str, ...]] = []
    exemplars: list[list[Exemplar]] = []
    label_of: dict[str, int] = {}  # lower-cased name → label (the CLIP tokenizer lower-cases: 'Cat' prompts as 'cat')
    for entry in entries:
        prompt = _parse_entry(entry, base)
        name = prompt[0] if isinstance(prompt, tuple) else prompt.name
        label = label_of.get(name.lower())
        if label is None:
            label = label_of[name.lower()] = len(names)
            names.append(name)
            words.append(())
            exemplars.append([])
        if isinstance(prompt, tuple):
            if words[label]:
                raise VocabularyError(f"duplicate class name {name!r} in the vocabulary")
            words[label] = (names[label], *prompt[1])
        else:
            exemplars[label].append(prompt)
    if not names:
        raise VocabularyError("the vocabulary is empty: give at least one class name")
    if add_background and names[0] != BACKGROUND:
        names.insert(0, BACKGROUND)
        words.insert(0, (BACKGROUND,))
        exemplars.insert(0, [])
    if BACKGROUND in names[1:]:
        raise VocabularyError("'background' can only be the first class (label 0)")
    if len(names) < 2:
        raise VocabularyError(
            f"the vocabulary has one label ({names[0]!r}); a segmentation needs at least two (add 'background' first)"
        )
    return Vocabulary(names=tuple(names), words=tuple(words), templates=tuple(templates),
                      exemplars=tuple(tuple(e) for e in exemplars))  # fmt: skip


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


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        raise VocabularyError(f"the vocabulary has no {what}")
    if isinstance(value, str):
        return [value]
    items = list(value)
    allowed = (str, _exemplar_class()) if what == "classes" else str
    for item in items:
        if not isinstance(item, allowed):
            raise VocabularyError(f"vocabulary {what} must be strings{' or Exemplars' if what == 'classes' else ''}; "
                                  f"got {type(item).__name__}: {item!r}")  # fmt: skip
    return items


def _exemplar_class():
    from ..prompts.exemplars import Exemplar  # imported here: the exemplars module imports this package

    return Exemplar


def _read_text_spec(spec: str | os.PathLike) -> tuple[list[str], list[str] | None, Path | None]:
    """Entries, templates and the folder relative exemplar paths start from."""
    text = str(spec)
    if isinstance(spec, str) and "\n" in text:  # the file syntax, typed in (e.g. the demo app's text box)
        return (*_read_lines(text, source=None), None)
    path = Path(spec)
    entries_like = isinstance(spec, str) and any(c in spec for c in ";,=")  # a list of entries, not a file name
    if isinstance(spec, os.PathLike) or (not entries_like and (path.suffix in (".txt", ".vocab") or os.sep in text)):
        if not _is_file(path):
            raise VocabularyError(f"vocabulary file {path} does not exist")
    if _is_file(path):
        return (*_read_lines(path.read_text(encoding="utf-8"), source=str(path)), path.parent)
    sep = ";" if ";" in text else ","
    if sep == "," and ":" in text:
        raise VocabularyError(
            f"cannot tell classes from synonyms in {text!r}: separate classes with ';' "
            "(e.g. 'person: man, woman; cat') or use a file with one class a line"
        )
    return [e for e in (e.strip() for e in text.split(sep)) if e], None, None


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


EXEMPLAR_KEYS = ("exemplar", "mask", "id")


def _parse_entry(entry: Any, base: Path | None) -> tuple[str, list[str]] | Exemplar:
    """One entry → ``(name, synonyms)`` (a text prompt) or an :class:`Exemplar`."""
    exemplar_class = _exemplar_class()
    if isinstance(entry, exemplar_class):
        if entry.name == BACKGROUND:
            raise VocabularyError("'background' is decided by a threshold, not prompted: it takes no exemplars")
        return entry
    name, colon, rest = entry.partition(":")
    name = " ".join(name.split())
    if not name:
        raise VocabularyError(f"vocabulary entry {entry!r} has no class name")
    if colon and rest.strip().startswith("exemplar="):
        return _parse_exemplar(name, rest, base, entry)
    synonyms = []
    if colon:
        synonyms = [" ".join(s.split()) for s in rest.split(",")]
        if not all(synonyms):
            raise VocabularyError(f"vocabulary entry {entry!r}: give synonyms as 'name: word, word'")
        if name == BACKGROUND:
            raise VocabularyError("'background' is decided by a threshold, not prompted: it takes no synonyms")
    return name, synonyms


def _parse_exemplar(name: str, rest: str, base: Path | None, entry: str) -> Exemplar:
    """``exemplar=IMAGE mask=MASK [id=N]`` (shell-style quoting) → an :class:`Exemplar` (files read and checked)."""
    import shlex

    from ..prompts.exemplars import Exemplar, ExemplarError

    usage = "write 'NAME: exemplar=IMAGE mask=MASK [id=N]'"
    try:
        tokens = shlex.split(rest)
    except ValueError as err:
        raise VocabularyError(f"vocabulary entry {entry!r}: {err}; {usage}") from None
    fields: dict[str, str] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or key not in EXEMPLAR_KEYS or key in fields or not value:
            problem = f"repeated {key!r}" if key in fields else f"cannot read {token!r}"
            raise VocabularyError(f"vocabulary entry {entry!r}: {problem}; {usage}")
        fields[key] = value
    if "mask" not in fields:
        raise VocabularyError(f"vocabulary entry {entry!r} has no mask; {usage}")
    if name == BACKGROUND:
        raise VocabularyError("'background' is decided by a threshold, not prompted: it takes no exemplars")
    mask_id = None
    if "id" in fields:
        try:
            mask_id = int(fields["id"])
        except ValueError:
            raise VocabularyError(f"vocabulary entry {entry!r}: id must be an integer, got {fields['id']!r}") from None
    image, mask = (Path(fields[k]) for k in ("exemplar", "mask"))
    if base is not None:
        image, mask = (p if p.is_absolute() else base / p for p in (image, mask))
    try:
        return Exemplar(name, image, mask, mask_id)
    except ExemplarError as err:
        raise VocabularyError(str(err)) from None


def _check_templates(templates: list[str]) -> list[str]:
    if not templates:
        raise VocabularyError("give at least one prompt template")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise VocabularyError(f"prompt template {template!r} must contain '{{}}' exactly once")
    return templates
