"""Vocabulary parsing and errors; class embeddings in the official averaging order."""
import pytest
import torch
import torch.nn.functional as F

import groupseg
from groupseg.zeroshot import VocabularyError, check_fits_dataset, class_embeddings, parse_vocabulary


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return groupseg.GroupViT(groupseg.build_config("groupvit-tiny")).eval()


def test_list_string_and_file_give_the_same_vocabulary(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("# my classes\nbackground\ncat\n\n  dog  \ngrass  # lawn too\n")
    as_list = parse_vocabulary(["background", "cat", "dog", "grass"])
    assert parse_vocabulary("background, cat,dog ,grass") == as_list
    assert parse_vocabulary(str(path)) == as_list
    assert parse_vocabulary(path) == as_list
    assert as_list.names == ("background", "cat", "dog", "grass")
    assert as_list.with_background and as_list.prompted_words == (("cat",), ("dog",), ("grass",))
    assert as_list.templates == ("a photo of a {}.",)
    assert parse_vocabulary(as_list.to_config()) == as_list


def test_synonyms_and_templates_from_a_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("template: a photo of a {}.\ntemplate: a drawing of the {}.\nperson: man, woman,  child\ncar\n")
    vocab = parse_vocabulary(path)
    assert vocab.names == ("person", "car") and not vocab.with_background
    assert vocab.words == (("person", "man", "woman", "child"), ("car",))
    assert vocab.templates == ("a photo of a {}.", "a drawing of the {}.")
    assert parse_vocabulary("person: man, woman; car") == parse_vocabulary(["person: man, woman", "car"])
    assert parse_vocabulary(vocab.to_config()) == vocab


def test_a_string_of_several_lines_reads_like_a_file(tmp_path):
    text = ("template: a photo of a {}.\ntemplate: a drawing/painting of the {}.  # a '/' is no path\n"
            "person: man, woman\ncar\n")
    path = tmp_path / "vocab.txt"
    path.write_text(text)
    assert parse_vocabulary(text) == parse_vocabulary(path)
    with pytest.raises(VocabularyError, match="line 2: empty template"):
        parse_vocabulary("cat\ntemplate:\n")


def test_a_long_inline_class_list_is_not_mistaken_for_a_file_name():
    names = [f"class number {i}" for i in range(60)]  # longer than a file name may be
    assert parse_vocabulary(", ".join(names)).names == tuple(names)


def test_add_background_puts_it_first_once():
    assert parse_vocabulary("cat,dog", add_background=True).names == ("background", "cat", "dog")
    assert parse_vocabulary("background,cat", add_background=True).names == ("background", "cat")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ([], "empty"),
        ("cat,dog,Cat", "duplicate"),
        (["cat", "dog", "cat"], "duplicate"),
        ("cat,background", "first"),
        ("cat", "at least two"),
        ("missing/vocab.txt", "does not exist"),
        ("person: man, woman, dog", "separate classes with ';'"),
        (["person: man,,woman"], "synonyms"),
        (["background: void", "cat"], "no synonyms"),
        ([": x", "cat"], "no class name"),
        ({"classes": ["a", "b"], "colour": 1}, "unknown vocabulary keys"),
    ],
)
def test_bad_vocabularies_fail_clearly(spec, message):
    with pytest.raises(VocabularyError, match=message):
        parse_vocabulary(spec)


def test_bad_templates_fail_clearly(tmp_path):
    with pytest.raises(VocabularyError, match="exactly once"):
        parse_vocabulary("cat,dog", templates=["a photo"])
    path = tmp_path / "v.txt"
    path.write_text("template: a {}\ncat\ndog\n")
    with pytest.raises(VocabularyError, match="twice"):
        parse_vocabulary(path, templates=["a {}."])


def test_vocabulary_must_fit_the_dataset_labels():
    voc = ["background"] + [f"c{i}" for i in range(20)]
    check_fits_dataset(parse_vocabulary(voc), voc)
    with pytest.raises(VocabularyError, match="start the vocabulary with 'background'"):
        check_fits_dataset(parse_vocabulary(voc[1:]), voc)
    with pytest.raises(VocabularyError, match="3 classes but .* 21 labels"):
        check_fits_dataset(parse_vocabulary(voc[:3]), voc)


def test_class_embeddings_follow_the_official_order(model):
    """Official: L2-normalise(mean over templates of projected *unnormalised* text embeddings); background skipped."""
    templates = ["a photo of a {}.", "itap of the {}.", "a {} in the wild."]
    vocab = parse_vocabulary(["background", "cat", "traffic light"], templates=templates)
    got = class_embeddings(model, vocab)
    ctx = model.config.context_length
    with torch.no_grad():
        want = []
        for name in ("cat", "traffic light"):
            raw = model.encode_text(groupseg.tokenize([t.format(name) for t in templates], ctx), normalize=False)
            want.append(F.normalize(raw.mean(0), dim=-1))
        mean_of_normalised = F.normalize(
            model.encode_text(groupseg.tokenize([t.format("cat") for t in templates], ctx)).mean(0), dim=-1
        )
    torch.testing.assert_close(got, torch.stack(want), rtol=0, atol=1e-6)
    assert not torch.allclose(got[0], mean_of_normalised, atol=1e-4)  # the order matters for this model


def test_synonyms_average_normalised_word_embeddings(model):
    vocab = parse_vocabulary(["person: man, woman", "car"])
    got = class_embeddings(model, vocab)
    words = class_embeddings(model, parse_vocabulary(["person", "man", "woman", "car"]))
    torch.testing.assert_close(got[0], F.normalize(words[:3].mean(0), dim=-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(got[1], words[3], rtol=0, atol=0)
    assert got.shape == (2, model.config.embed_dim)


def test_class_embeddings_use_running_batchnorm_statistics(model):
    model.train()
    try:
        train_mode = class_embeddings(model, parse_vocabulary("cat,dog"))
        assert model.training  # restored
    finally:
        model.eval()
    torch.testing.assert_close(train_mode, class_embeddings(model, parse_vocabulary("cat,dog")))
